"""How the meter emulators are run: their shared command line and their serving loops.

Every emulator measures the virtual bench's activity file with an idle and an active level,
optional noise, a seed, and faults for the tests; and every one is a process that prints
where it can be reached (a pty path, a port) and then serves until terminated, which is
what lab.emulator_process waits for. Keeping that here leaves each emulator module with
only its instrument's wire protocol and its measurement.
"""

from __future__ import annotations

import argparse
import os
import socketserver
import threading
import time
import tty
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

#: How often a pty instrument is asked to send what its clock has produced.
TICK_S = 0.01


def emulator_parser(
    description: str, unit: str, idle: float, active: float, drop_count: int | None = None
) -> argparse.ArgumentParser:
    """The options every emulator takes; `unit` is "a" (amps) or "w" (watts), the quantity
    the instrument measures, so flags read `--idle-a` or `--idle-w`. With `drop_count`, the
    faults of an instrument that streams on its own: falling silent, losing a run of samples."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--activity", type=Path, help="virtual device activity file (JSON lines)")
    quantity = "current (A)" if unit == "a" else "power (W)"
    parser.add_argument(f"--idle-{unit}", type=float, default=idle, help=f"idle {quantity}")
    parser.add_argument(f"--active-{unit}", type=float, default=active, help=f"active {quantity}")
    parser.add_argument(f"--noise-{unit}", type=float, default=0.0, help="sigma of reading noise")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--garbage-every", type=int, default=0, metavar="N")
    if drop_count is not None:
        parser.add_argument("--stop-streaming-after", type=float, metavar="S")
        parser.add_argument("--drop-samples-at", type=float, metavar="S")
        parser.add_argument("--drop-count", type=int, default=drop_count)
    return parser


class PtyInstrument(Protocol):
    """A serial instrument behind a pty: it consumes the host's bytes and streams on ticks."""

    def take(self, data: bytes) -> bytes:
        """Act on the host's input; return the tail that is not a whole command yet."""

    def tick(self) -> None:
        """Send whatever the instrument has measured by now."""


def serve_pty(make: Callable[[int], PtyInstrument]) -> int:
    """Run `make(fd)` behind a new raw pty until interrupted; prints the pty's path first."""
    master, slave = os.openpty()
    tty.setraw(slave)
    instrument = make(master)
    print(os.ttyname(slave), flush=True)
    threading.Thread(target=_read_host, args=(master, instrument), daemon=True).start()
    try:
        while True:
            time.sleep(TICK_S)
            instrument.tick()
    except KeyboardInterrupt:
        return 0


def _read_host(fd: int, instrument: PtyInstrument) -> None:
    pending = b""
    while True:
        try:
            data = os.read(fd, 4096)
        except OSError:
            return
        if not data:
            return
        pending = instrument.take(pending + data)


def serve_tcp(server: socketserver.TCPServer, address: str) -> int:
    """Serve until interrupted, having printed `address` (what the driver connects to)."""
    print(address, flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0

"""The virtual MCU's UART: one end of a pty pair, paced like a real wire.

A pty moves bytes instantly whatever baud the host configures, which would make serial
timing untestable. So each byte costs 10 bit times (8N1) at the MCU's baud rate, both ways:
a reader thread stamps when each received byte would have finished arriving (the device
cannot act on a command before its `%` is in), and a transmitter thread hands each queued
line over only once the wire would have carried it (the host cannot see a line before its
last byte arrives) while the firmware goes on working, as with a DMA-driven UART.

The host's side of the pty keeps the termios the host set, readable from the master: with
`expect_baud` set, output is garbled as a real baud mismatch garbles it whenever the host's
configured speed differs. Input is passed through unchanged (a real mismatch would mangle it
too, usually into silence; answering in noise instead lets a host tell "wrong baud" from
"nothing connected").

A pty master reads EIO while no process has the slave open; the reader thread uses that to
notice the host opening the port, for boards that reset on open.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pty
import queue
import random
import select
import termios
import threading
import time
import tty
from dataclasses import dataclass
from pathlib import Path

from .clock import sleep_until

BITS_PER_BYTE = 10  # start + 8 data + stop
CLOSED_POLL_S = 0.02
WRITE_STALL_S = 2.0  # a host that stops reading this long loses output, as on a real UART
SPEEDS = {
    int(name[1:]): getattr(termios, name)
    for name in dir(termios)
    if name.startswith("B") and name[1:].isdigit()
}


@dataclass(frozen=True)
class Received:
    """A chunk the host wrote; byte i finishes arriving at start_ns + (i + 1) * byte_ns."""

    data: bytes
    start_ns: int


@dataclass(frozen=True)
class Opened:
    """The host opened the port (the slave side went from no reader to one)."""

    at_ns: int


class PtyWire:
    def __init__(self, baud: int, expect_baud: int | None = None, link: Path | None = None):
        if baud <= 0:
            raise ValueError(f"baud must be positive, got {baud}")
        if expect_baud is not None and expect_baud not in SPEEDS:
            raise ValueError(f"--expect-baud {expect_baud} is not a termios speed on this host")
        self.byte_ns = BITS_PER_BYTE * 1_000_000_000 / baud
        self._expect = None if expect_baud is None else SPEEDS[expect_baud]
        self._master, slave = pty.openpty()
        tty.setraw(slave)  # no echo, no CR/LF mapping, until the host sets its own termios
        self.port = os.ttyname(slave)
        os.close(slave)
        os.set_blocking(self._master, False)
        self.link = link
        if link is not None:
            with contextlib.suppress(FileNotFoundError):
                link.unlink()
            link.symlink_to(self.port)
        self.events: queue.Queue[Received | Opened] = queue.Queue()
        self._rx_free_ns = 0
        self._tx_free_ns = 0
        self._outbox: queue.Queue[bytes | None] = queue.Queue()
        self._noise = random.Random(0x5EED)
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._read_loop, name="uart-rx", daemon=True)
        self._reader.start()
        self._sender = threading.Thread(target=self._transmit_loop, name="uart-tx", daemon=True)
        self._sender.start()

    def _read_loop(self) -> None:
        connected = False
        while not self._stop.is_set():
            if connected:
                readable, _, _ = select.select([self._master], [], [], 0.1)
                if not readable:
                    continue
            try:
                data = os.read(self._master, 4096)
            except BlockingIOError:
                data = b""
            except OSError as error:
                if error.errno != errno.EIO or self._stop.is_set():
                    return
                connected = False
                time.sleep(CLOSED_POLL_S)
                continue
            now = time.monotonic_ns()
            if not connected:
                connected = True
                self.events.put(Opened(now))
            if data:
                start = max(self._rx_free_ns, now)
                self._rx_free_ns = start + round(len(data) * self.byte_ns)
                self.events.put(Received(data, start))

    def host_baud_matches(self) -> bool:
        if self._expect is None:
            return True
        try:
            attributes = termios.tcgetattr(self._master)
        except termios.error:
            return True
        return attributes[5] == self._expect  # ospeed the host configured

    def send(self, data: bytes) -> None:
        """Queue `data` for the transmitter and return at once, as a UART with DMA does."""
        if data:
            self._outbox.put(data)

    def drain(self) -> None:
        """Block until every queued byte is on the pty."""
        self._outbox.join()

    def _transmit_loop(self) -> None:
        while True:
            data = self._outbox.get()
            try:
                if data is None:
                    return
                if not self.host_baud_matches():
                    data = bytes(self._noise.randrange(0x80, 0x100) for _ in data)
                start = max(self._tx_free_ns, time.monotonic_ns())
                self._tx_free_ns = start + round(len(data) * self.byte_ns)
                sleep_until(self._tx_free_ns)  # the host sees a line once its last byte is in
                self._write_all(data)
            finally:
                self._outbox.task_done()

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self._master, view) :]
            except BlockingIOError:
                _, writable, _ = select.select([], [self._master], [], WRITE_STALL_S)
                if not writable:
                    return  # nobody is reading: the bytes fall off the wire
            except OSError:
                return

    def close(self) -> None:
        self._stop.set()
        self._outbox.put(None)
        self._reader.join(timeout=1.0)
        self._sender.join(timeout=1.0)
        with contextlib.suppress(OSError):
            os.close(self._master)
        if self.link is not None:
            with contextlib.suppress(OSError):
                self.link.unlink()

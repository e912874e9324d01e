"""An emulated interface board (EEMBC IO manager or MLCommons interface board) on a pty.

MLPerf Tiny's energy setups put a board between the host and the DUT, so the meter powers
the DUT alone: the host talks to the board, the board forwards `dut <command>` to the DUT's
UART (at 9600 baud in EEMBC's energy builds) and relays what the DUT prints. This stand-in
does that between a pty of its own and a DUT port it opens (the virtual MCU, the C posix
bridge, or a real board), so the host's `interface:` support runs over the real transport.

Host protocol, as research/mlperf_tiny.md §2 records it: a command ends with `%` and is kept
in an 80-character buffer (longer ones are cut, as the DUT's own parser does); each command
is answered by zero or more lines and `m-ready`. `dut <cmd>` answers `m-dut-passthrough(<cmd>)`
and `m-ready` at once, forwards `<cmd>%` to the DUT, then relays every line the DUT prints as
`[dut]: <line>` (the DUT's own `m-ready` ends the exchange for the host). The IO manager also
takes `name`, `version`, `help`, `enable-timer`, `disable-timer`, `tm 0|1`, `res 0|1`, `tp`,
`et` (timer and emon controls: acknowledged, their pins are not emulated); the MLCommons board
takes `name`, `setbaud <rate>`, `checkbaud`, `ls` (the files of `--sd-card DIR`).

Inferred where the research is silent (so a real board may word these differently; the host
never depends on them): `name` answers `m-name-[EEMBC IO Manager]` / `m-name-[MLCommons
interface board]`; `version` answers `m-version-[1.0.3]` (the firmware file's version); an
unknown command answers `e-?<command>` on the IO manager (the form its collisions take) and
`e-[Unknown command: <command>]` on the MLCommons board; `setbaud` answers `m-baud-[<rate>]`
and lasts until the process ends (the real board keeps it in flash); `checkbaud` sends `name%`
to the DUT at the current rate and answers `m-baud-[<rate>]` then `m-baud-ok` or
`m-baud-no-answer`; streaming wakeword commands (`play`, `record_detections`, ...) answer an
error saying they are not emulated.

Half duplex (IO manager only): the Arduino receives the DUT in software with interrupts off,
so its one-byte host UART register is overrun while a DUT line is coming in. Here a host byte
that arrives while a DUT line is unfinished and its bytes still flow (one came in the last
50 ms) replaces the held byte, and only the last one survives into the command buffer: a
command sent while the DUT prints debug text reaches the board as its tail (often a lone
`%`) and is answered `e-?<partial>`. The MLCommons board (hardware UARTs) has no such loss.
"""

from __future__ import annotations

import argparse
import contextlib
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import serial

from ..protocol.tiny_commands import COMMAND_BUFFER, PASSTHROUGH_PREFIX, TERMINATOR
from ..protocol.tiny_replies import DUT_PREFIX, READY_TEXT
from .emulator_process import EmulatorError, StandInProcess, python_module_argv
from .virtual_mcu.clock import sleep_until
from .virtual_mcu.wire import Opened, PtyWire, Received

KINDS = ("io-manager", "mlc-interface")
NAMES = {"io-manager": "EEMBC IO Manager", "mlc-interface": "MLCommons interface board"}
IO_MANAGER_VERSION = "1.0.3"
CHECKBAUD_WAIT_S = 0.5
#: A DUT line unfinished for longer than this has stopped coming in (the board is free).
DUT_BUSY_S = 0.05
#: IO manager commands that drive its timer / emon pins: acknowledged, with their argument.
IO_PIN_COMMANDS = {
    "enable-timer": (),
    "disable-timer": (),
    "tm": ("0", "1"),
    "res": ("0", "1"),
    "tp": (),
    "et": (),
}
SWW_COMMANDS = ("play", "record_detections", "print_detections", "print_dutycycle")
HELP = {
    "io-manager": ["name", "version", "dut", *IO_PIN_COMMANDS],
    "mlc-interface": ["name", "dut", "setbaud", "checkbaud", "ls", *SWW_COMMANDS],
}


class BoardError(EmulatorError):
    """The board could not start (DUT port missing, bad rate)."""


class Board:
    """The board's firmware: host commands in, board replies and DUT relays out."""

    def __init__(
        self, kind: str, host: PtyWire, dut: serial.Serial, sd_card: Path | None = None
    ) -> None:
        self.kind = kind
        self.host = host
        self.dut = dut
        self.sd_card = sd_card
        self._buffer = bytearray()
        self._dut_line = bytearray()
        self._held: int | None = None  # the host byte an overrun left in the UART register
        self._dut_last = 0.0  # time.monotonic() of the DUT's latest byte
        self._lock = threading.Lock()
        self._probe: queue.Queue[str] | None = None  # checkbaud listening to the DUT

    # --- host side ----------------------------------------------------------------------

    def take_host(self, data: bytes) -> None:
        commands: list[str] = []
        with self._lock:
            for byte in data:
                if self._receiving_dut():
                    self._held = byte  # overrun: the previous held byte is lost
                    continue
                if self._held is not None:
                    commands += self._accept(self._held)
                    self._held = None
                commands += self._accept(byte)
        self._run(commands)  # outside the lock: checkbaud waits for the DUT reader

    def _receiving_dut(self) -> bool:
        """The IO manager is busy with a DUT line: one unfinished and still coming in."""
        recent = time.monotonic() - self._dut_last < DUT_BUSY_S
        return self.kind == "io-manager" and bool(self._dut_line) and recent

    def _accept(self, byte: int) -> list[str]:
        """The command that `byte` completes, if it is the terminator."""
        if byte != ord(TERMINATOR):
            if len(self._buffer) < COMMAND_BUFFER - 1:
                self._buffer.append(byte)  # beyond 80 characters the rest is dropped
            return []
        text = self._buffer.decode("ascii", "replace")
        self._buffer.clear()
        return [text]

    def _run(self, commands: list[str]) -> None:
        for text in commands:
            if text.startswith(PASSTHROUGH_PREFIX) or text == PASSTHROUGH_PREFIX.strip():
                forward = text[len(PASSTHROUGH_PREFIX) :]
                self._reply([f"m-dut-passthrough({forward})"])
                self._send_dut(forward)  # its lines, ending in its m-ready, follow as relays
            else:
                self._reply(self._dispatch(text))

    def _reply(self, lines: list[str]) -> None:
        self.host.send("".join(f"{line}\r\n" for line in [*lines, READY_TEXT]).encode())

    def _dispatch(self, text: str) -> list[str]:
        word, _, rest = text.partition(" ")
        if word == "name":
            return [f"m-name-[{NAMES[self.kind]}]"]
        if word == "help":
            return HELP[self.kind]
        if self.kind == "io-manager":
            return self._io_manager(word, rest, text)
        return self._mlc_interface(word, rest, text)

    def _send_dut(self, command: str) -> None:
        # a DUT that is gone does not answer; the host's timeout names the command
        with contextlib.suppress(OSError, serial.SerialException):
            self.dut.write((command + TERMINATOR).encode("ascii", "replace"))

    def _io_manager(self, word: str, rest: str, text: str) -> list[str]:
        if word == "version":
            return [f"m-version-[{IO_MANAGER_VERSION}]"]
        allowed = IO_PIN_COMMANDS.get(word)
        if allowed is not None and (not allowed or rest in allowed):
            return []
        return [f"e-?{text}"]

    def _mlc_interface(self, word: str, rest: str, text: str) -> list[str]:
        if word == "setbaud":
            if not rest.isdigit() or int(rest) <= 0:
                return [f"e-[setbaud needs a positive rate, got {rest!r}]"]
            self.dut.baudrate = int(rest)
            self._dut_line.clear()  # bytes heard at the old rate are noise
            return [f"m-baud-[{rest}]"]
        if word == "checkbaud":
            return self._checkbaud()
        if word == "ls":
            files = sorted(p.name for p in self.sd_card.iterdir()) if self.sd_card else []
            return files
        if word in SWW_COMMANDS:
            return [f"e-[{word}: streaming wakeword is not emulated]"]
        return [f"e-[Unknown command: {text}]"]

    def _checkbaud(self) -> list[str]:
        """Ask the DUT its name at the current rate; its answer is consumed here."""
        self._probe = queue.Queue()
        self._send_dut("name")
        lines = [f"m-baud-[{self.dut.baudrate}]"]
        try:
            while self._probe.get(timeout=CHECKBAUD_WAIT_S) != READY_TEXT:
                pass
            lines.append("m-baud-ok")
        except queue.Empty:
            lines.append("m-baud-no-answer")
        self._probe = None
        return lines

    # --- DUT side -----------------------------------------------------------------------

    def take_dut(self, data: bytes) -> None:
        with self._lock:
            self._dut_last = time.monotonic()
            for byte in data:
                self._dut_line.append(byte)
                if byte == ord("\n"):
                    self._relay(bytes(self._dut_line))
                    self._dut_line.clear()
            commands: list[str] = []
            if not self._dut_line and self._held is not None:
                held, self._held = self._held, None
                commands = self._accept(held)
        self._run(commands)

    def _relay(self, raw: bytes) -> None:
        line = raw.rstrip(b"\r\n")
        probe = self._probe
        if probe is not None:
            probe.put(line.decode("ascii", "replace").strip())
            return
        self.host.send(DUT_PREFIX.encode() + line + b"\r\n")


def _serve_host(board: Board, wire: PtyWire) -> None:
    while True:
        event = wire.events.get()
        if isinstance(event, Opened):
            continue
        assert isinstance(event, Received)
        sleep_until(event.start_ns + round(len(event.data) * wire.byte_ns))
        board.take_host(event.data)


def _serve_dut(board: Board, dut: serial.Serial) -> None:
    while True:
        try:
            data = dut.read(max(1, dut.in_waiting))
        except (OSError, serial.SerialException):
            return  # the DUT went away: the host sees silence and times out
        if data:
            board.take_dut(data)


def _open_dut(path: str, baud: int) -> serial.Serial:
    try:
        return serial.Serial(path, baud, timeout=0.05)
    except (OSError, serial.SerialException, ValueError) as error:
        raise BoardError(
            f"cannot open the DUT port {path} at {baud} baud ({error}); give the DUT's port "
            f"with --dut-port (a virtual MCU's pty, or the board's /dev/tty*)"
        ) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m edgebench.lab.interface_board",
        description="An emulated MLPerf Tiny interface board forwarding `dut` commands.",
    )
    parser.add_argument("--kind", choices=KINDS, required=True)
    parser.add_argument("--dut-port", required=True, help="the DUT's serial port")
    parser.add_argument("--dut-baud", type=int, default=9600, help="board-to-DUT rate (9600)")
    parser.add_argument("--host-baud", type=int, default=115200, help="host-to-board (115200)")
    parser.add_argument("--sd-card", type=Path, help="directory `ls` lists (mlc-interface)")
    parser.add_argument(
        "--exit-on-stdin-eof", action="store_true", help="exit when stdin closes (a lifeline)"
    )
    return parser


def _watch_stdin() -> None:
    sys.stdin.buffer.read()
    signal.raise_signal(signal.SIGTERM)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.dut_baud <= 0 or args.host_baud <= 0:
            raise BoardError("--dut-baud and --host-baud must be positive")
        dut = _open_dut(args.dut_port, args.dut_baud)
        wire = PtyWire(args.host_baud)
    except BoardError as error:
        print(f"interface board: error: {error}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    board = Board(args.kind, wire, dut, args.sd_card)
    threading.Thread(target=_serve_dut, args=(board, dut), daemon=True).start()
    print(f"port {wire.port}", flush=True)
    if args.exit_on_stdin_eof:
        threading.Thread(target=_watch_stdin, daemon=True).start()
    try:
        _serve_host(board, wire)
    except KeyboardInterrupt:
        pass
    finally:
        wire.close()
        dut.close()
    return 0


class InterfaceBoard(StandInProcess):
    """A running emulated board; `port` is the pty the host opens (`port:` in a profile)."""

    @classmethod
    @contextlib.contextmanager
    def start(
        cls,
        kind: str,
        dut_port: str,
        *,
        dut_baud: int = 9600,
        host_baud: int = 115200,
        extra_args: Sequence[str] = (),
    ) -> Iterator[InterfaceBoard]:
        """Run one board for the `with` block, forwarding to the DUT on `dut_port`."""
        if kind not in KINDS:
            raise BoardError(f"interface board kind {kind!r} is unknown; use {' or '.join(KINDS)}")
        argv = ["--kind", kind, "--dut-port", dut_port, "--dut-baud", str(dut_baud)]
        argv += ["--host-baud", str(host_baud), "--exit-on-stdin-eof", *extra_args]
        command, env = python_module_argv(__name__, argv)
        board = cls(
            command, f"{kind} board", _port_line, stdin=subprocess.PIPE, env=env, error=BoardError
        )
        try:
            yield board
        finally:
            board.stop()

    @property
    def port(self) -> str:
        return self.address


def _port_line(line: str) -> str | None:
    return line.split(" ", 1)[1] if line.startswith("port ") else None


if __name__ == "__main__":
    sys.exit(main())

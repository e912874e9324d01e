"""One conversation with an MLPerf Tiny DUT: send a command, read lines up to `m-ready`.

`m-ready` is the protocol's only flow control, so every command waits for it, with a deadline
that names the command when it does not come. Every received line is logged raw, with the
host's receive time, before it is interpreted: the log is what a run is re-scored from. A
boot banner in the middle of a command means the DUT reset; that is reported as its own error
so the runner can keep what was measured and mark the run invalid.

With an interface board in front of the DUT (EEMBC IO manager, MLCommons interface board),
each command goes out as `dut <command>`; the board acknowledges with
`m-dut-passthrough(<command>)` and its own `m-ready`, then relays the DUT's lines prefixed
`[dut]: `, ending with the DUT's `m-ready`.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import replace
from pathlib import Path
from typing import IO, Protocol

import serial

from ..protocol import tiny_commands as cmd
from ..protocol import tiny_replies as rp
from .base import DeviceError

INTERFACES = ("none", "io-manager", "mlc-interface")
BOOT_QUIET_S = 0.3  # a booting DUT that has been silent this long is done printing
BAUD_HINT = "MLPerf Tiny firmware uses 115200 by default, 921600 or 9600 in some builds"


class PortLike(Protocol):
    """What the link needs from a port (pyserial's Serial has it)."""

    port: str | None
    baudrate: int

    def read(self, size: int = 1) -> bytes: ...
    def write(self, data: bytes) -> int | None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...

    @property
    def in_waiting(self) -> int: ...


class DutTimeout(DeviceError):
    """A command whose answer never came."""


class DutReset(DeviceError):
    """The DUT printed its boot banner while a command was running."""


class BaudMismatch(DeviceError):
    """Bytes arrive, but never a line of the protocol: the rates differ."""


class DutLog:
    """dut_log.txt: every line sent and received, with host wall and monotonic times.

    Format, one line each: `<unix s> <monotonic s> <dir> <text>`, dir `<` (from the DUT),
    `>` (to it) or `#` (a host note, e.g. which sample was loaded). Non-printable bytes are
    written as `\\xNN`, so the raw bytes can be recovered. Lines that arrive while no file is
    attached (the handshake at open) are kept and written at the top of the next file.
    """

    def __init__(self) -> None:
        self._file: IO[str] | None = None
        self._path: Path | None = None
        self._early: deque[str] = deque(maxlen=2000)

    def attach(self, path: Path) -> None:
        if self._file is not None and self._path == path:
            return
        self.detach()
        self._path = path
        self._file = open(path, "a", encoding="ascii")  # noqa: SIM115 (closed in detach)
        for line in self._early:
            self._file.write(line)
        self._early.clear()
        self._file.flush()

    def detach(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = self._path = None

    def write(self, direction: str, data: bytes | str) -> None:
        raw = data.encode("latin-1") if isinstance(data, str) else data
        text = raw.rstrip(b"\r\n").decode("ascii", "backslashreplace")
        line = f"{time.time():.6f} {time.monotonic():.6f} {direction} {text}\n"
        if self._file is None:
            self._early.append(line)
        else:
            self._file.write(line)
            self._file.flush()

    def note(self, text: str) -> None:
        self.write("#", text)


class DutLink:
    """Commands and replies over an open port, directly or through an interface board."""

    def __init__(self, port: PortLike, interface: str = "none", log: DutLog | None = None) -> None:
        if interface not in INTERFACES:
            raise DeviceError(
                f"interface {interface!r} is unknown; use one of {', '.join(INTERFACES)}"
            )
        self.port = port
        self.interface = interface
        self.log = log or DutLog()
        self._splitter = rp.LineSplitter()
        self._replies: deque[rp.Reply] = deque()
        self.received_bytes = 0
        self.recognised_lines = 0
        self.last_line = ""

    @property
    def via_interface(self) -> bool:
        return self.interface != "none"

    @property
    def where(self) -> str:
        return f"{self.port.port} at {self.port.baudrate} baud"

    # --- reading ------------------------------------------------------------------------

    def _gone(self, error: Exception) -> DeviceError:
        """A port that vanished mid-conversation (USB unplugged, board powered off)."""
        return DeviceError(
            f"serial port {self.where} went away ({error}); check the cable and the board's "
            f"power, then run again"
        )

    def read_reply(self, deadline: float) -> rp.Reply | None:
        """The next reply, or None once `deadline` (time.monotonic) has passed."""
        while not self._replies:
            if time.monotonic() >= deadline:
                return None
            try:
                data = self.port.read(max(1, self.port.in_waiting))
            except (OSError, serial.SerialException) as error:
                raise self._gone(error) from None
            if not data:
                continue
            self.received_bytes += len(data)
            now = time.monotonic()
            for raw in self._splitter.feed(data):
                self.log.write("<", raw)
                for reply in rp.classify_line(raw):
                    if reply.kind not in (rp.GARBLED, rp.TEXT):
                        self.recognised_lines += 1
                    if reply.text:
                        self.last_line = reply.text
                    self._replies.append(replace(reply, received=now))
        return self._replies.popleft()

    def drain(self, quiet_s: float, limit_s: float) -> list[rp.Reply]:
        """Read until the DUT has been silent for `quiet_s` (at most `limit_s`)."""
        replies: list[rp.Reply] = []
        end = time.monotonic() + limit_s
        while True:
            reply = self.read_reply(min(end, time.monotonic() + quiet_s))
            if reply is None:
                return replies
            replies.append(reply)

    # --- commands -----------------------------------------------------------------------

    def send(self, command: str, limit: int = cmd.COMMAND_BUFFER) -> None:
        text = cmd.passthrough(command) if self.via_interface else command
        data = cmd.encode(text, limit)
        self.log.write(">", data)
        try:
            self.port.write(data)
            self.port.flush()
        except (OSError, serial.SerialException) as error:
            raise self._gone(error) from None

    def command(
        self,
        command: str,
        timeout: float,
        mode_reply: bool = False,
        limit: int = cmd.COMMAND_BUFFER,
    ) -> list[rp.Reply]:
        """Send one DUT command; its replies up to (not including) the DUT's `m-ready`.

        Raises DutTimeout naming the command, DutReset on a boot banner, BaudMismatch when
        only undecodable bytes came back. `mode_reply`: the command is the `mode` switch,
        whose answer is a banner line (`m-timestamp-mode-...`) that is not a reset here.
        `limit`: the longest command the DUT takes (more than 80 only for extensions).
        """
        self.send(command, limit)
        deadline = time.monotonic() + timeout
        if self.via_interface:
            self._await_passthrough(command, deadline)
        replies: list[rp.Reply] = []
        while True:
            reply = self.read_reply(deadline)
            if reply is None:
                raise self._timeout(command, timeout, replies)
            if self.via_interface and not reply.via_dut:
                refused = self._board_refused(command, reply)
                if refused is not None:  # DUT debug output can come before the refusal
                    raise refused
                continue  # the board's own chatter
            if reply.is_banner and not (mode_reply and reply.kind == rp.TIMESTAMP_MODE):
                raise DutReset(
                    f"the DUT rebooted during `{command}%` (it printed {reply.text!r}); check "
                    f"its supply and watchdog; measured windows are kept"
                )
            if reply.kind == rp.READY:
                return replies
            replies.append(reply)

    def _await_passthrough(self, command: str, deadline: float) -> None:
        """The interface board's acknowledgement: `m-dut-passthrough(...)`, then `m-ready`."""
        acknowledged = False
        while True:
            reply = self.read_reply(deadline)
            if reply is None:
                raise DutTimeout(
                    f"the interface board did not acknowledge `dut {command}%` on {self.where} "
                    f"(expected m-dut-passthrough); check `interface:` in the profile and "
                    f"that the board runs the IO manager / interface firmware"
                )
            if reply.via_dut:
                self._replies.appendleft(reply)  # the DUT was quicker than the board's ack
                return
            if reply.kind == rp.PASSTHROUGH:
                acknowledged = True
            elif reply.kind == rp.READY and acknowledged:
                return
            elif not acknowledged:
                refused = self._board_refused(command, reply)
                if refused is not None:
                    raise refused

    def _board_refused(self, command: str, reply: rp.Reply) -> DeviceError | None:
        """The error for a board (or a DUT taken for one) that refused `dut <command>`."""
        if reply.kind == rp.ERROR:
            return DeviceError(
                f"the device on {self.where} refused `dut {command}%` (e-[{reply.value}]): "
                f"it is no interface board, or not one of this kind; check `interface:` in "
                f"the profile (none for a DUT on this port)"
            )
        if reply.text.startswith("e-?"):  # the IO manager's answer to a command it misread
            return DeviceError(
                f"the interface board on {self.where} did not take `dut {command}%` (it "
                f"answered {reply.text[:60]!r}), so it arrived damaged, as when the DUT prints "
                f"while the host sends (the IO manager is half duplex); turn off the DUT's "
                f"debug output"
            )
        return None

    def _timeout(self, command: str, timeout: float, replies: list[rp.Reply]) -> DeviceError:
        if self.received_bytes and not self.recognised_lines:
            return self.baud_mismatch()
        partial = self._splitter.pending.decode("ascii", "backslashreplace")[:60]
        got = f"; last line {self.last_line[:60]!r}" if self.last_line else "; nothing received"
        if partial:
            got += f"; unfinished line {partial!r}"
        return DutTimeout(
            f"no m-ready from the DUT within {timeout:g} s after `{command}%` on {self.where}"
            f"{got}; check the board runs MLPerf Tiny firmware at this baud rate"
            + ("" if replies else " and is not still busy")
        )

    def baud_mismatch(self) -> BaudMismatch:
        return BaudMismatch(
            f"{self.received_bytes} bytes arrived on {self.where} but none formed a line of the "
            f"MLPerf Tiny protocol: the DUT talks at another rate; set `baud:` in the device "
            f"profile to the firmware's rate ({BAUD_HINT})"
        )

    def close(self) -> None:
        self.port.close()
        self.log.detach()

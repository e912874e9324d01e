"""MLPerf Tiny reference firmware, as the virtual MCU runs it: the command parser and the
timed inference loop (the framework's ee_* half) on top of the virtual UART, clock and
TFLM worker (the submitter's th_* half).

Replies follow the reference byte for byte where a host depends on them (`m-ready` after
every command, `e-[...]` errors, the boot banner, `m-lap-us-`, `m-results-[...]`). Where the
reference would write past a buffer or run on stale data (hex data with no `db load`, an
`infer` on a partly loaded sample, `results` before any inference) this firmware answers
with an `e-[...]` line instead, still followed by `m-ready`.

Timing: the MCU's work lives on a timeline of physical nanoseconds (`_cursor_ns`): it
catches up with the present when a command arrives and then advances only by modelled
work (inference loops, the timestamp pin's hold time). An inference loop takes either the
worker's measured time or exactly `infer_us` of MCU time per inference; the firmware sleeps
until the loop's end, so the host never sees it end earlier than physically possible, and
stamps the timer where the model says the loop ended. The UART transmits in the background
(DMA style), so printing `m-lap-us-` does not delay the loop.
"""

from __future__ import annotations

import binascii
import queue
import random
import string
import sys
import time
from dataclasses import dataclass

from ..activity import ActivityWriter
from .clock import McuClock, sleep_until
from .commands import EXT_CMD_SIZE, LineAssembler, atoi, printable, tokens
from .engine import EngineDied, Invocation, TflmEngine
from .faults import Faults
from .model_port import ModelPort
from .wire import Opened, PtyWire

FW_VERSION = "ULPMark for tinyML Firmware V0.0.1"
DEVICE_NAME = "dut"
DEFAULT_VENDOR = "edgebench-virtual-mcu"
TIMING_MODES = ("performance", "energy")
DEFAULT_WARMUP = 10
PIN_HOLD_US = 100  # the timestamp pin stays low this long (EEMBC filters < 50 us)
BYTES_PER_LINE = 8  # db print
HEX_DIGITS = frozenset(string.hexdigits)
EXTENSIONS = (f"db64 {EXT_CMD_SIZE}", "mode")  # announced by help% as m-ext-[...]


@dataclass(frozen=True)
class FirmwareOptions:
    timing: str = "performance"
    vendor: str = DEFAULT_VENDOR
    infer_us: float | None = None  # each inference takes exactly this much MCU time
    boot_on_open: bool = False  # reset whenever the host opens the port (DTR auto-reset)
    boot_delay_s: float = 0.2  # a bootloader's pause before the banner after such a reset


class _Reset(Exception):
    """The board reset while answering; the boot banner replaces the rest of the reply."""


class Reply:
    """One command's reply lines, with that command's faults applied on the way out."""

    def __init__(self, wire: PtyWire, noise: bytes, truncate: bool) -> None:
        self._wire = wire
        self._noise = noise
        self._truncate = truncate
        self._held: bytes | None = None

    def line(self, text: str) -> None:
        data = self._noise + (text + "\r\n").encode("latin-1")
        self._noise = b""
        if self._truncate:  # hold each line back until we know whether it is the last
            if self._held is not None:
                self._wire.send(self._held)
            self._held = data
        else:
            self._wire.send(data)

    def finish(self) -> None:
        if self._held is not None:
            self._wire.send(self._held[: max(1, (len(self._held) - 2) // 2)])
        self._truncate = False
        self.line("m-ready")


class TinyFirmware:
    def __init__(
        self,
        wire: PtyWire,
        port: ModelPort,
        engine: TflmEngine,
        options: FirmwareOptions,
        faults: Faults,
        clock: McuClock,
        activity: ActivityWriter | None = None,
    ) -> None:
        self.wire = wire
        self.port = port
        self.engine = engine
        self.options = options
        self.faults = faults
        self.clock = clock
        self.activity = activity
        self.timing = options.timing
        self._enabled = False
        self._assembler = LineAssembler()
        self._buffer = bytearray(port.max_db_bytes)
        self._size = 0
        self._pos = 0
        self._results: str | None = None
        self._cursor_ns = 0
        self._boots = 0
        self._warned_overrun = False
        self._handlers = {
            "name": self._name,
            "timestamp": self._timestamp_command,
            "profile": self._profile,
            "help": self._help,
            "db": self._db,
            "db64": self._db64,
            "infer": self._infer,
            "results": self._results_command,
            "mode": self._mode,
        }

    # -- the main loop (main() + the UART interrupt) ------------------------------------

    def serve(self) -> None:
        """Run until killed. A board that is not reset on open has booted before (boot())."""
        while True:
            event = self.wire.events.get()
            if isinstance(event, Opened):
                if self.options.boot_on_open:
                    time.sleep(self.options.boot_delay_s)
                    self._drain()
                    self.boot()
                continue
            if not self._enabled:
                continue  # the parser is off until the banner's m-ready
            boots = self._boots
            for index, byte in enumerate(event.data):
                line = self._assembler.feed(byte)
                if line is None:
                    continue
                sleep_until(event.start_ns + round((index + 1) * self.wire.byte_ns))
                self.dispatch(line)
                if self._boots != boots:
                    break  # bytes after a reset went to a board that was rebooting

    def _drain(self) -> None:
        while True:
            try:
                self.wire.events.get_nowait()
            except queue.Empty:
                return

    def boot(self) -> None:
        """Power-on or reset: banner, lost data and mode, timer from zero, pin idling high."""
        self._enabled = False
        self._boots += 1
        self.clock.reboot()
        self._assembler.clear()
        self._size = self._pos = 0
        self._results = None
        self.timing = self.options.timing  # a `mode` switch lives in RAM: back to the default
        self._cursor_ns = time.monotonic_ns()
        if self.activity is not None:
            self.activity.state("idle", self._cursor_ns)
        banner = Reply(self.wire, b"", truncate=False)
        banner.line(f"m-timestamp-mode-{self.timing}")
        self._timestamp(banner)
        banner.line("m-init-done")
        self._enabled = True
        banner.line("m-ready")

    def dispatch(self, line: bytes) -> None:
        """ee_serial_command_parser_callback: one command line, answered up to m-ready."""
        words = tokens(line)
        command = words[0] if words else ""
        if command in self.faults.never_answer:
            return
        if self.faults.count_command():
            self.boot()
            return
        self._cursor_ns = max(self._cursor_ns, time.monotonic_ns())  # idle until now
        noise = b""
        if command in self.faults.garbage_before:
            noise = bytes(random.randrange(0x80, 0x100) for _ in range(self.faults.garbage_bytes))
        reply = Reply(self.wire, noise, command in self.faults.truncate_line)
        handler = self._handlers.get(command)
        try:
            if handler is None:
                reply.line(f"e-[Unknown command: {printable(command)}]")
            else:
                handler(words[1:], reply)
        except _Reset:
            return
        reply.finish()

    # -- commands -------------------------------------------------------------------------

    def _name(self, args: list[str], reply: Reply) -> None:
        reply.line(f"m-name-{DEVICE_NAME}-[{self.options.vendor}]")

    def _profile(self, args: list[str], reply: Reply) -> None:
        reply.line(f"m-profile-[{FW_VERSION}]")
        reply.line(f"m-model-[{self.faults.report_model or self.port.model.model_id}]")

    def _help(self, args: list[str], reply: Reply) -> None:
        for text in (
            FW_VERSION,
            "",
            "help         : this list",
            "name         : the device's name",
            "timestamp    : a timestamp (m-lap-us- or a pin pulse)",
            "db load N    : expect N bytes of input",
            "db HH[HH]*   : append hex bytes until N have arrived",
            "db print [N] [off] : hex dump of the loaded bytes",
            "infer N [W=10] : W warm-up runs, then N timed inferences",
            "results      : the last results again",
            f"db64 B64     : append base64 bytes (lines up to {EXT_CMD_SIZE} chars)",
            "mode [performance|energy] : show or switch the timestamp mode",
        ):
            reply.line(text)
        for extension in EXTENSIONS:
            reply.line(f"m-ext-[{extension}]")

    def _results_command(self, args: list[str], reply: Reply) -> None:
        reply.line(self._results or "e-[No results yet: run infer first]")

    def _mode(self, args: list[str], reply: Reply) -> None:
        if args and args[0] not in TIMING_MODES:
            reply.line(f"e-[Unknown timestamp mode: {printable(args[0])}]")
            return
        if args:
            self.timing = args[0]
        reply.line(f"m-timestamp-mode-{self.timing}")

    # -- db: the input buffer ---------------------------------------------------------------

    def _db(self, args: list[str], reply: Reply) -> None:
        if not args:
            reply.line("e-[Command 'db' requires a subcommand]")
        elif args[0] == "load":
            self._db_load(args[1:], reply)
        elif args[0] == "print":
            self._db_print(args[1:], reply)
        elif len(args[0]) % 2:
            reply.line("e-[Insufficent number of hex digits]")  # sic, as the reference
        else:
            hex_digits = args[0]
            for at in range(0, len(hex_digits), 2):
                pair = hex_digits[at : at + 2]
                if not set(pair) <= HEX_DIGITS:
                    reply.line(f"e-[Invalid hex digit '{printable(pair)}']")
                    return
                if not self._append(bytes.fromhex(pair), reply):
                    return

    def _db_load(self, args: list[str], reply: Reply) -> None:
        if not args:
            reply.line("e-[Command 'db load' requires the # of bytes]")
            return
        size = atoi(args[0])
        if size == 0:
            reply.line("e-[Command 'db load' must be >0 bytes]")
        elif not 0 < size <= len(self._buffer):
            reply.line(f"e-[Supplied buffer size {size} exceeds maximum of {len(self._buffer)}]")
        else:
            self._size, self._pos = size, 0
            reply.line(f"m-[Expecting {size} bytes]")

    def _append(self, data: bytes, reply: Reply) -> bool:
        """Append loaded bytes; False once the sample is complete (the rest is ignored)."""
        if self._pos >= self._size:
            reply.line("e-[No db load pending: send db load N first]")
            return False
        room = self._size - self._pos
        taken = data[:room]
        self._buffer[self._pos : self._pos + len(taken)] = taken
        self._pos += len(taken)
        if self._pos == self._size:
            reply.line("m-load-done")
            return False
        return True

    def _db_print(self, args: list[str], reply: Reply) -> None:
        offset = max(0, atoi(args[1])) if len(args) > 1 else 0
        count = atoi(args[0]) if args else self._size - offset
        shown = self._buffer[offset : offset + max(0, min(count, self._size - offset))]
        for at in range(0, len(shown), BYTES_PER_LINE):
            chunk = shown[at : at + BYTES_PER_LINE]
            reply.line("m-buffer-" + "-".join(f"{b:02x}" for b in chunk))

    def _db64(self, args: list[str], reply: Reply) -> None:
        if not args:
            reply.line("e-[Command 'db64' requires base64 data]")
            return
        try:
            data = binascii.a2b_base64(args[0].encode("latin-1"), strict_mode=True)
        except (binascii.Error, ValueError) as error:
            reply.line(f"e-[Invalid base64: {printable(str(error))}]")
            return
        if data:
            self._append(data, reply)

    # -- timing and inference ---------------------------------------------------------------

    def _timestamp_command(self, args: list[str], reply: Reply) -> None:
        self._timestamp(reply)

    def _timestamp(self, reply: Reply) -> None:
        """th_timestamp at the current point of the MCU's timeline."""
        if self.timing == "performance":
            now_us = self.clock.us(self._cursor_ns)
            if self.clock.physical_ns(now_us) < self._cursor_ns:
                now_us += 1
            self._cursor_ns = self.clock.physical_ns(now_us)  # on a tick: laps add up exactly
            reply.line(f"m-lap-us-{now_us}")
            return
        hold_ns = self.clock.duration_ns(PIN_HOLD_US)
        if self.activity is not None:
            self.activity.pin(0, self._cursor_ns)
            self.activity.pin(1, self._cursor_ns + hold_ns)
        self._cursor_ns += hold_ns
        sleep_until(self._cursor_ns)

    def _infer(self, args: list[str], reply: Reply) -> None:
        count, warmup = 1, DEFAULT_WARMUP
        if args:
            count = atoi(args[0])
            if count <= 0:
                reply.line("e-[Inference iterations must be >0]")
                return
            if len(args) > 1:
                warmup = atoi(args[1])
                if warmup < 0:
                    reply.line("e-[Inference warmup must be >=0]")
                    return
        sample = bytes(self._buffer[: self._pos])
        try:
            tensor = self.port.load_tensor(sample)
        except ValueError as error:
            reply.line(f"e-[{printable(str(error))}; send db load and the whole sample first]")
            return
        try:
            self.engine.load(tensor)
            reply.line(f"m-warmup-start-{warmup}")
            if warmup:
                self._run(warmup)
            reply.line("m-warmup-done")
            reply.line(f"m-infer-start-{count}")
            self._timestamp(reply)
            if self.faults.count_infer():
                self._run(max(1, count // 2))
                self.boot()
                raise _Reset
            invocation = self._run(count)
        except EngineDied as error:
            reply.line(f"e-[inference engine died: {printable(str(error))}]")
            return
        self._timestamp(reply)
        reply.line("m-infer-done")
        self._results = self.port.results(sample, invocation.output)
        reply.line(self._results)

    def _run(self, count: int) -> Invocation:
        """`count` inferences on the MCU's timeline (active in the activity file)."""
        start = self._cursor_ns
        if self.activity is not None:
            self.activity.state("active", start)
        invocation = self.engine.invoke(count)
        if self.options.infer_us is None:
            end = start + round(invocation.elapsed_ns)
        else:
            end = start + self.clock.duration_ns(count * self.options.infer_us)
            if time.monotonic_ns() > end and not self._warned_overrun:
                self._warned_overrun = True
                print(
                    f"virtual MCU: inferences take longer than --infer-us "
                    f"{self.options.infer_us:g} here; lap times stay exact but the host "
                    f"sees them late",
                    file=sys.stderr,
                )
        sleep_until(end)
        if self.activity is not None:
            self.activity.state("idle", end)
        self._cursor_ns = end
        return invocation

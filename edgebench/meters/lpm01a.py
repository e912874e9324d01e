"""ST X-NUCLEO-LPM01A (PowerShield) over USB serial: MLPerf Tiny's low-cost energy monitor.

Set-up follows MLPerf Tiny's runner (research/mlperf_tiny.md §2, research/power_and_peers.md
§A2): `htc`, `pwr off`, `acqtime inf`, `trigdelay 0`, `trigsrc sw`, `eventsrc d7 fal`,
`output energy`, `format ascii_dec`, `freq 1k`, `volt <mV>m`, then per recording `pwr on`,
`start` ... `stop` (until `Acquisition completed`). Every command must be answered
`ack <command> [value]`; `error <command>` + `Error detail: <why>` becomes a one-line
MeterError. Serial at 3686400 baud (the runner's devices yaml; USB CDC, so the rate is nominal).

The stream: one ascii_dec value per line (`6409-07` = 6409e-7; J per sample period for
`output energy`, which the board integrates at its full internal rate, so samples are summed,
never trapezoided; A for `output current`), `TimeStamp: 001s 000ms, buff 00%` once per second
(the sample count must match: else a "gap" event and the time base jumps to the stamp, so
later samples keep their true time), `event N ris` when the device pulls D7 low (a
"timestamp" mark at the count of samples received so far; N must count up by one, else a
lost-mark "gap" event). Meter time = samples since `start` / rate: the trace clock is "meter".

Inferred (the research and ST's command table are silent): an `error ...` line arriving while
streaming is a meter complaint, recorded as an "overload" event when it mentions range or
current, else "message", together with its `Error detail:` line; the firmware must be >= 1.0.6
(older ones answer `error pwr off`, EnergyRunner #8) and is refused with that fix.
"""

from __future__ import annotations

import contextlib
import queue
import re
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import serial

from ..metrics.power_trace import PowerTrace, PowerTraceWriter
from .base import Meter, MeterError, MeterInfo
from .recording import Recording
from .registry import register
from .serial_port import open_serial_port

BAUD = 3686400
FREQUENCIES = {"10k": 10000, "5k": 5000, "2k": 2000, "1k": 1000, "500": 500, "200": 200,
               "100": 100, "50": 50, "20": 20, "10": 10, "5": 5, "2": 2, "1": 1}  # fmt: skip
RANGES = {"dyn": "100 nA - 10 mA (dynamic)", "stat": "2 nA - 200 mA (static)"}
MIN_FIRMWARE = (1, 0, 6)
#: ST: static measurements better than 2 %; applied to dynamic too (no other figure stated).
ACCURACY = {"reading_pct": 2.0}
VALUE = re.compile(r"(\d{4})([+-]\d{2})")
VALUES_LINE = re.compile(r"(?:\d{4}[+-]\d{2}\s*)+")
TIMESTAMP = re.compile(r"TimeStamp:[ ><](\d{3})s (\d{3})ms, buff \d{2}%")
EVENT = re.compile(r"event (\d+) (ris|fal)")
PROMPT = "PowerShield > "
#: Samples are handed to the trace in batches of at most this long (bounded memory, and a
#: dead meter loses at most this much of what it sent).
BATCH_S = 0.2


@register
class Lpm01aMeter(Meter):
    driver = "lpm01a"
    tested_against = "emulator (edgebench.lab.lpm01a_emulator on a pty); no hardware"
    emulator_module = "edgebench.lab.lpm01a_emulator"
    profile_keys: ClassVar[dict[str, type | tuple[type, ...]]] = {
        "port": str,
        "baud": int,
        "voltage": (int, float),
        "freq": str,
        "output": str,
        "acqmode": str,
        "timeout_s": (int, float),
    }

    def __init__(self, profile: dict[str, Any]) -> None:
        super().__init__(profile)
        self.port = str(profile.get("port", ""))
        self.baud = int(profile.get("baud", BAUD))
        self.voltage = float(profile.get("voltage", 1.8))
        self.freq_name = str(profile.get("freq", "1k"))
        self.output = str(profile.get("output", "energy"))
        self.acqmode = str(profile.get("acqmode", "dyn"))
        self.timeout_s = float(profile.get("timeout_s", 3.0))
        self._require("voltage", self.voltage, 1.8 <= self.voltage <= 3.3, " outside 1.8..3.3 V")
        frequencies = ", ".join(FREQUENCIES)
        self._require(
            "freq", self.freq_name, self.freq_name in FREQUENCIES, f"; use one of {frequencies}"
        )
        outputs = ("energy", "current")
        self._require("output", self.output, self.output in outputs, "; use energy or current")
        self._require("acqmode", self.acqmode, self.acqmode in RANGES, "; use dyn or stat")
        self.freq = FREQUENCIES[self.freq_name]
        self._serial: serial.Serial | None = None
        self._replies: queue.Queue[str] = queue.Queue()
        self._reader: threading.Thread | None = None
        self._closing = threading.Event()
        self._board_id: str | None = None
        self._version = ""
        self._recording: _Stream | None = None
        self._lock = threading.Lock()  # guards _recording between reader and caller

    # -- connection ------------------------------------------------------------------------
    def open(self) -> None:
        if self._serial is not None:
            return
        self.port = self._start_emulator() or self.port
        try:
            self._serial = open_serial_port(
                self.name,
                self.port,
                "LPM01A",
                port_hint="/dev/ttyACM0 (the LPM01A enumerates as USB CDC 0483:5740)",
                fix="check the USB cable and the port name (ls /dev/ttyACM*), and that you may "
                "use it (dialout group)",
                baud=self.baud,
                timeout_s=0.1,
            )
            self._closing.clear()
            self._reader = threading.Thread(
                target=self._read_loop, name="lpm01a-reader", daemon=True
            )
            self._reader.start()
            self._configure()
        except MeterError:
            self.close()
            raise

    def _configure(self) -> None:
        self.command("htc")
        self._board_id = self.command("powershield") or None
        self._version = self.command("version") or ""
        try:
            version = tuple(int(part) for part in self._version.split(".")[:3])
        except ValueError:
            version = ()
        if version < MIN_FIRMWARE:
            raise MeterError(
                f"LPM01A at {self.port} runs firmware {self._version or 'unknown'}; MLPerf Tiny "
                "needs >= 1.0.6: update it with ST's STM32-LPM01-XN package"
            )
        for line in (
            "pwr off",
            "acqtime inf",
            "trigdelay 0",
            "trigsrc sw",
            "eventsrc d7 fal",
            f"acqmode {self.acqmode}",
            f"output {self.output}",
            "format ascii_dec",
            f"freq {self.freq_name}",
            f"volt {round(self.voltage * 1000)}m",
        ):
            self.command(line)

    def command(self, line: str) -> str:
        """Send one command; its ack value ('' if none), or MeterError with the board's why."""
        if self._serial is None:
            raise self._refuse("not open")
        while not self._replies.empty():
            self._replies.get_nowait()
        self._serial.write(line.encode("ascii") + b"\r\n")
        deadline = time.monotonic() + self.timeout_s
        detail = None
        while True:
            try:
                reply = self._replies.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                if detail is not None:
                    break
                raise MeterError(
                    f"LPM01A at {self.port} did not answer {line!r} within {self.timeout_s:g} s; "
                    "check it is an LPM01A, powered, and not held by another program"
                ) from None
            if reply == f"ack {line}" or reply.startswith(f"ack {line} "):
                return reply[len(f"ack {line}") :].strip()
            if reply.startswith("error"):
                detail = reply
            elif reply.startswith("Error detail:") and detail is not None:
                detail = reply[len("Error detail:") :].strip()
                break
        raise MeterError(f"LPM01A refused {line!r}: {detail}; check the meter profile's settings")

    def _read_loop(self) -> None:
        """Route every line: data to the recording, acks/errors to the command in flight."""
        buffer = b""
        last_data = time.monotonic()
        while not self._closing.is_set():
            try:
                chunk = self._serial.read(65536) if self._serial else b""
            except Exception as error:  # pyserial raises bare SerialException/OSError/TypeError
                self._fail_stream(f"LPM01A at {self.port}: read failed ({error})")
                return
            if chunk:
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for raw in lines:
                    self._route(raw.decode("ascii", errors="replace").strip())
                last_data = time.monotonic()
            with self._lock:
                stream = self._recording
            if stream is not None:
                stream.flush_due()
                if stream.streaming and time.monotonic() - last_data > self.timeout_s:
                    self._fail_stream(
                        f"LPM01A at {self.port} stopped streaming ({self.timeout_s:g} s silent)"
                    )
            else:
                last_data = time.monotonic()

    def _route(self, line: str) -> None:
        line = line.removeprefix(PROMPT).strip()
        if not line:
            return
        with self._lock:
            stream = self._recording
        if stream is not None and stream.take(line):
            return
        self._replies.put(line)

    def _fail_stream(self, why: str) -> None:
        with self._lock:
            stream = self._recording
        if stream is not None and stream.failure is None:
            stream.fail(why)

    def close(self) -> None:
        self._abandon_recording()
        if self._serial is not None:
            # As MLPerf Tiny's runner tears down: DUT power off, control back to the board.
            # A board that no longer answers cannot be released; close anyway.
            with contextlib.suppress(MeterError):
                self.command("pwr off")
                self.command("hrc")
            self._closing.set()
            if self._reader is not None:
                self._reader.join()
            self._serial.close()
            self._serial = None
        self._stop_emulator()

    # -- description -----------------------------------------------------------------------
    def describe(self) -> MeterInfo:
        notes = [
            f"PowerShield firmware {self._version}" if self._version else "",
            f"output {self.output} at {self.voltage:g} V",
            "marks: D7 falling edges (eventsrc d7 fal) in the meter's own sample count",
            *self._emulated_note("board"),
        ]
        return MeterInfo(
            driver=self.driver,
            model="ST X-NUCLEO-LPM01A",
            serial=self._board_id,
            sample_rate_hz=float(self.freq),
            ranges=[RANGES[self.acqmode]],
            accuracy=dict(self.profile.get("accuracy") or ACCURACY),
            records_marks=True,
            mlperf_power_valid=False,
            notes="; ".join(n for n in notes if n),
        )

    # -- recording -------------------------------------------------------------------------
    def start(self, directory: Path, phase: str = "testing") -> None:
        """Power the device and acquire; `phase` is ignored (no ranging on this meter)."""
        self._check_can_start()  # not open: command() says so
        self.command("pwr on")
        kind = "energy" if self.output == "energy" else "current_voltage"
        writer = PowerTraceWriter(
            Path(directory),
            kind,
            self.describe().to_dict(),
            sample_period_s=1.0 / self.freq,
            clock="meter",
        )
        stream = _Stream(writer, self.freq, self.voltage if kind == "current_voltage" else None)
        with self._lock:
            self._recording = stream
        try:
            self.command("start")
        except MeterError:
            with self._lock:
                self._recording = None
            writer.close("stopped: the meter refused to start")
            raise
        stream.streaming = True

    def stop(self) -> PowerTrace:
        # Not _take_recording(): the stream stays routed until `stop` is acknowledged, so
        # the samples the board sends before the ack still reach it.
        stream = self._recording
        if stream is None:
            raise self._refuse("not recording")
        if stream.failure is None:
            try:
                self.command("stop")
                self._await_completion()
            except MeterError as error:
                self._fail_stream(str(error))
        with self._lock:
            self._recording = None
        return stream.finish()

    def _await_completion(self) -> None:
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            try:
                if "Acquisition completed" in self._replies.get(timeout=0.05):
                    return
            except queue.Empty:
                continue
        raise MeterError(f"LPM01A at {self.port} never reported 'Acquisition completed'")


class _Stream(Recording):
    """One acquisition's data lines -> trace, in the meter's clock (samples / rate). The
    meter's own reader thread feeds it (it also carries the command replies)."""

    def __init__(self, writer: PowerTraceWriter, freq: int, voltage: float | None) -> None:
        super().__init__(writer, "check the USB link and rerun")
        self.freq = freq
        self.period = 1.0 / freq
        self.voltage = voltage  # set for current output: trace columns (A, V)
        self.index = 0  # samples (periods) since start, including dropped ones
        self.streaming = False
        self._pending: list[float] = []
        self._pending_start = 0
        self._last_flush = time.monotonic()
        self._next_event = 0
        self._error: str | None = None

    @property
    def now(self) -> float:
        """Meter time of the end of the last sample period received."""
        return self.index * self.period

    def take(self, line: str) -> bool:
        """Handle one stream line; False if it is not stream data (a command reply)."""
        with self._lock:
            return self.failure is None and self._take(line)

    def _take(self, line: str) -> bool:
        if VALUES_LINE.fullmatch(line):
            for mantissa, exponent in VALUE.findall(line):
                if not self._pending:
                    self._pending_start = self.index
                self._pending.append(int(mantissa) * 10.0 ** int(exponent))
                self.index += 1
            return True
        if match := TIMESTAMP.fullmatch(line):
            self._check_count(int(match[1]) + int(match[2]) / 1000.0)
            return True
        if match := EVENT.fullmatch(line):
            number = int(match[1])
            if number != self._next_event:
                self.writer.event(
                    self.now, "gap", f"timestamp events {self._next_event}..{number - 1} lost"
                )
            self._next_event = number + 1
            self.writer.mark(self.now, "timestamp", "falling")
            return True
        # While streaming, the only command in flight is `stop`: any other error is the
        # meter's complaint about the measurement (before, it is a refused `start`).
        if line.startswith("error") and self.streaming and not line.startswith("error stop"):
            self._error = line
            kind = "overload" if re.search(r"range|current", line) else "message"
            self.writer.event(self.now, kind, line)
            return True
        if line.startswith("Error detail:") and self._error is not None:
            self.writer.event(self.now, "message", f"{self._error}: {line}")
            self._error = None
            return True
        if line.startswith(("ack", "Acquisition completed", "error", "Error detail:")):
            return False
        self.writer.event(self.now, "message", f"unparseable line from the meter: {line!r}")
        return True

    def _check_count(self, stamp_s: float) -> None:
        expected = round(stamp_s * self.freq)
        if expected != self.index:
            self._flush()
            self.writer.event(
                self.now,
                "gap",
                f"{expected - self.index} samples missing before the meter's {stamp_s:.3f} s "
                "stamp (dropped on the USB link?)",
            )
            self.index = expected

    def flush_due(self) -> None:
        with self._lock:
            if self.failure is None and time.monotonic() - self._last_flush >= BATCH_S:
                self._flush()

    def _flush(self) -> None:
        if not self._pending or self.writer.closed:
            return
        values = np.asarray(self._pending, dtype=np.float64)
        if self.voltage is not None:
            values = np.column_stack([values, np.full(len(values), self.voltage)])
        # Each sample covers the period ending at its time: the first ends one period in.
        self.writer.append(values, start=(self._pending_start + 1) * self.period)
        self._pending = []
        self._last_flush = time.monotonic()

    def _failure_time(self) -> float:
        return self.now

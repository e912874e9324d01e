"""Nordic Power Profiler Kit II over its USB CDC serial protocol: our own reader.

Nordic's Python library is GPL-2.0 and, by its own README, struggles to keep up with the
stream; this reader decodes the stream with numpy in one thread and checks every sample's
counter, so dropped samples become "gap" events instead of silently compressed time.

The protocol (research/power_and_peers.md §A2, and a public write-up of the PPK2 interface):
single-byte opcodes, some with argument bytes, no replies except to GET_META_DATA and the
sample stream itself:
  0x19 GET_META_DATA     -> text lines `name: value` ending with `END` (calibration)
  0x11 SET_POWER_MODE m  1 = ampere meter (the DUT keeps its own supply), 2 = source meter
  0x0D REGULATOR_SET hi lo   source voltage in mV (800..5000), big-endian
  0x0C DEVICE_RUNNING_SET b  DUT power on (1) / off (0), source mode
  0x06 AVERAGE_START / 0x07 AVERAGE_STOP   start/stop the 100 kS/s stream
  0x15 / 0x16 SPIKE_FILTERING_ON / OFF
Each sample is one little-endian 32-bit word: bits 0-13 ADC value, 14-16 measurement range
(0-4, autoranged by the kit), 24-31 the 8 logic inputs D0-D7 (documented), and bits 18-23 a
6-bit sample counter (inferred from Nordic's app, where the mask sits; the write-up only says
a counter exists). A range above 4 cannot occur and marks a corrupt word.

Conversion to amps (inferred from the write-up's pointer to Nordic's app; the metadata names
match): per range n, with metadata R<n> (shunt, ohm), O<n> (ADC offset), GS<n>/GI<n> (gain
slope per V of supply / gain intercept), S<n>/I<n> (offset slope / intercept, A), UG<n>
(user gain):
    r = (adc - O) * 1.8 / 163840 / R                 (the ADC's volts over the shunt)
    amps = UG * (r * (GS * vdd + GI) + (S * vdd + I)),  vdd in V
Missing gain/offset keys take the neutral values (GS 0, GI 1, S 0, I 0, UG 1, O 0).

Time: samples are counted from AVERAGE_START at 100 kS/s in the kit's own clock (trace clock
"meter"); a sample's time is the middle of its 10 us period. A counter that jumps by k + 1
means k samples lost (modulo 64: whole multiples of 64 are invisible to the counter, so at
stop() the sample count is also checked against the host's time between AVERAGE_START and
AVERAGE_STOP, and a shortfall beyond latency becomes a "gap" event). Marks: level
changes of the logic input `mark_input` (D0 by default; MLPerf Tiny's timestamp pin is
pulled low) become "timestamp" marks at the boundary before the first sample at the new level.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import serial

from ..metrics.power_trace import PowerTrace, PowerTraceWriter
from .base import Meter, MeterError, MeterInfo
from .recording import Recording
from .registry import register
from .serial_port import open_serial_port

SAMPLE_RATE_HZ = 100_000
PERIOD_S = 1.0 / SAMPLE_RATE_HZ
OP_AVERAGE_START = 0x06
OP_AVERAGE_STOP = 0x07
OP_DEVICE_RUNNING_SET = 0x0C
OP_REGULATOR_SET = 0x0D
OP_SET_POWER_MODE = 0x11
OP_SPIKE_FILTERING_ON = 0x15
OP_SPIKE_FILTERING_OFF = 0x16
OP_GET_META_DATA = 0x19
MODE_AMPERE, MODE_SOURCE = 1, 2
VOLTAGE_MV = (800, 5000)
RANGES = 5
ADC_MASK, RANGE_SHIFT, COUNTER_SHIFT, LOGIC_SHIFT = 0x3FFF, 14, 18, 24
COUNTER_MOD = 64
ADC_VOLTS_PER_COUNT = 1.8 / 163840
#: Neutral values of the optional coefficients; the shunts R0..R4 are required (nominal
#: ones would be guesses about this kit).
NEUTRAL = {"GS": 0.0, "GI": 1.0, "S": 0.0, "I": 0.0, "UG": 1.0, "O": 0.0}
METADATA_END = b"END"
#: Samples are decoded and handed to the trace in batches of about this long.
BATCH_S = 0.1
#: Gap events written per batch at most (a failing link must not flood events.jsonl).
MAX_GAP_EVENTS = 20
#: Samples a recording may fall short of host time before the shortfall counts as lost:
#: 50 ms (USB and scheduling latency at start and stop on a loaded host) + 0.1 % (clocks).
#: So a loss the counter hides (multiples of 64) goes unnoticed below about 50 ms in total.
COUNT_TOLERANCE, COUNT_TOLERANCE_REL = 5000, 1e-3


@dataclass
class Calibration:
    """The kit's per-range coefficients, from its GET_META_DATA text."""

    values: dict[str, float] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str, where: str) -> Calibration:
        values: dict[str, float] = {}
        for line in text.splitlines():
            name, _, value = line.partition(":")
            with contextlib.suppress(ValueError):
                values[name.strip().upper()] = float(value)
        missing = [f"R{n}" for n in range(RANGES) if f"R{n}" not in values]
        if missing:
            raise MeterError(
                f"{where} sent metadata without {', '.join(missing)}; it is not a PPK2, or its "
                "firmware is not the one nRF Connect Power Profiler installs: open it there once"
            )
        return cls(values)

    def table(self, key: str) -> np.ndarray:
        return np.array(
            [self.values.get(f"{key}{n}", NEUTRAL.get(key, 0.0)) for n in range(RANGES)]
        )

    def coefficients(self, vdd_v: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per range: (offset counts, amps per count, amps at zero) for this supply."""
        gain = self.table("UG") * (self.table("GS") * vdd_v + self.table("GI"))
        per_count = gain * ADC_VOLTS_PER_COUNT / self.table("R")
        zero = self.table("UG") * (self.table("S") * vdd_v + self.table("I"))
        return self.table("O"), per_count, zero

    def amps(self, adc: np.ndarray, ranges: np.ndarray, vdd_v: float) -> np.ndarray:
        offset, per_count, zero = self.coefficients(vdd_v)
        return (adc - offset[ranges]) * per_count[ranges] + zero[ranges]


def encode(adc: np.ndarray, ranges: np.ndarray, counter: np.ndarray, logic: np.ndarray) -> bytes:
    """Sample words as the kit sends them (the emulator's side of decode)."""
    words = (
        (adc.astype(np.uint32) & ADC_MASK)
        | (ranges.astype(np.uint32) << RANGE_SHIFT)
        | ((counter.astype(np.uint32) % COUNTER_MOD) << COUNTER_SHIFT)
        | (logic.astype(np.uint32) << LOGIC_SHIFT)
    )
    return words.astype("<u4").tobytes()


def decode(data: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(adc, range, counter, logic) per whole word of `data`."""
    words = np.frombuffer(data, dtype="<u4")
    return (
        (words & ADC_MASK).astype(np.int64),
        ((words >> RANGE_SHIFT) & 0x7).astype(np.int64),
        ((words >> COUNTER_SHIFT) & 0x3F).astype(np.int64),
        (words >> LOGIC_SHIFT).astype(np.int64),
    )


@register
class Ppk2Meter(Meter):
    """Nordic Power Profiler Kit II (100 kS/s, D0-D7 logic inputs) over USB serial."""

    driver = "ppk2"
    emulator_module = "edgebench.lab.ppk2_emulator"
    tested_against = "emulator (edgebench.lab.ppk2_emulator on a pty)"
    profile_keys: ClassVar[dict[str, type | tuple[type, ...]]] = {
        "port": str,
        "mode": str,
        "voltage": (int, float),
        "dut_power": bool,
        "mark_input": int,
        "spike_filter": bool,
        "timeout_s": (int, float),
    }

    def __init__(self, profile: dict[str, Any]) -> None:
        super().__init__(profile)
        self.port = str(profile.get("port", ""))
        self.mode = str(profile.get("mode", "source"))
        self.voltage = float(profile.get("voltage", 3.3))
        self.dut_power = bool(profile.get("dut_power", True))
        self.mark_input = int(profile.get("mark_input", 0))
        self.timeout_s = float(profile.get("timeout_s", 2.0))
        modes = ("source", "ampere")
        self._require("mode", self.mode, self.mode in modes, "; use source or ampere")
        low, high = VOLTAGE_MV
        volts_ok = low <= round(self.voltage * 1000) <= high
        self._require("voltage", self.voltage, volts_ok, " outside 0.8..5 V")
        marks_ok = 0 <= self.mark_input <= 7
        self._require("mark_input", self.mark_input, marks_ok, " is not a logic input 0..7")
        self._serial: serial.Serial | None = None
        self.calibration: Calibration | None = None
        self._recording: _Stream | None = None

    # -- connection ------------------------------------------------------------------------
    def open(self) -> None:
        if self._serial is not None:
            return
        self.port = self._start_emulator() or self.port
        try:
            self._serial = open_serial_port(
                self.name,
                self.port,
                "PPK2",
                port_hint="(the PPK2's data port, e.g. "
                "/dev/serial/by-id/usb-Nordic_Semiconductor_PPK2_*-if01)",
                fix="check the USB cable (the data port, not the power-only one), the port "
                "name, and the dialout group",
                timeout_s=0.05,
            )
            self.calibration = self._read_metadata()
            self._send(OP_SET_POWER_MODE, MODE_SOURCE if self.mode == "source" else MODE_AMPERE)
            mv = round(self.voltage * 1000)
            self._send(OP_REGULATOR_SET, mv >> 8, mv & 0xFF)
            spike = self.profile.get("spike_filter", False)
            self._send(OP_SPIKE_FILTERING_ON if spike else OP_SPIKE_FILTERING_OFF)
            if self.mode == "source":
                self._send(OP_DEVICE_RUNNING_SET, 1 if self.dut_power else 0)
        except MeterError:
            self.close()
            raise

    def _send(self, *data: int) -> None:
        assert self._serial is not None
        try:
            self._serial.write(bytes(data))
        except (serial.SerialException, OSError) as error:
            raise MeterError(f"PPK2 at {self.port}: write failed ({error})") from None

    def _read_metadata(self) -> Calibration:
        assert self._serial is not None
        self._serial.reset_input_buffer()
        self._send(OP_GET_META_DATA)
        text = b""
        deadline = time.monotonic() + self.timeout_s
        while METADATA_END not in text:
            if time.monotonic() > deadline:
                raise MeterError(
                    f"device at {self.port} did not answer GET_META_DATA within "
                    f"{self.timeout_s:g} s; is it a PPK2 (its data port), and not held by "
                    "nRF Connect or another program?"
                )
            text += self._serial.read(4096)
        return Calibration.parse(text.decode("ascii", errors="replace"), f"PPK2 at {self.port}")

    def close(self) -> None:
        if self._serial is not None:
            with contextlib.suppress(MeterError):  # a dead kit cannot be stopped; close anyway
                self._send(OP_AVERAGE_STOP)
        self._abandon_recording(self.timeout_s + 5.0)
        if self._serial is not None:
            if self.mode == "source":
                with contextlib.suppress(MeterError):
                    self._send(OP_DEVICE_RUNNING_SET, 0)
            self._serial.close()
            self._serial = None
        self._stop_emulator()

    # -- description -----------------------------------------------------------------------
    def describe(self) -> MeterInfo:
        notes = [
            f"{self.mode} mode at {self.voltage:g} V",
            f"marks: D{self.mark_input} level changes in the kit's own sample count",
        ]
        if self.calibration is not None and "HW" in self.calibration.values:
            notes.append(f"hardware {self.calibration.values['HW']:g}")
        notes += self._emulated_note("kit")
        return MeterInfo(
            driver=self.driver,
            model="Nordic Power Profiler Kit II",
            serial=None,
            sample_rate_hz=float(SAMPLE_RATE_HZ),
            ranges=["autorange R0..R4 (~0.2 uA .. 1 A)"],
            # Only what the profile states: we found no vendor figure for streamed samples.
            accuracy=dict(self.profile.get("accuracy") or {}),
            records_marks=True,
            notes="; ".join(notes),
        )

    # -- recording -------------------------------------------------------------------------
    def start(self, directory: Path, phase: str = "testing") -> None:
        """Stream into a trace; `phase` is ignored (the kit autoranges)."""
        self._check_can_start(self._serial is not None and self.calibration is not None)
        writer = PowerTraceWriter(
            Path(directory),
            "current_voltage",
            self.describe().to_dict(),
            sample_period_s=PERIOD_S,
            clock="meter",
        )
        self._serial.reset_input_buffer()
        stream = _Stream(writer, self._serial, self.calibration, self)
        self._recording = stream
        self._send(OP_AVERAGE_START)
        stream.host_start = time.monotonic()
        stream.begin()

    def stop(self) -> PowerTrace:
        stream = self._take_recording()
        elapsed = None
        if stream.failure is None:
            with contextlib.suppress(MeterError):
                self._send(OP_AVERAGE_STOP)
            elapsed = time.monotonic() - stream.host_start
        # Halting after AVERAGE_STOP: the reader takes what is still in flight until the
        # stream falls quiet.
        stream.halt(self.timeout_s + 5.0)
        if elapsed is not None:
            stream.check_count(elapsed)
        return stream.finish()


class _Stream(Recording):
    """One AVERAGE_START..STOP: words -> (A, V) samples, marks, gaps, in the kit's clock."""

    reader_name = "ppk2-reader"

    def __init__(
        self,
        writer: PowerTraceWriter,
        port: serial.Serial,
        calibration: Calibration,
        meter: Ppk2Meter,
    ) -> None:
        super().__init__(writer, "check the USB link and rerun")
        self.port = port
        self.calibration = calibration
        self.volts = meter.voltage
        self.where = f"PPK2 at {meter.port}"
        self.mark_bit = 1 << meter.mark_input
        self.timeout_s = meter.timeout_s
        self.host_start = time.monotonic()
        self.index = 0  # sample periods since start, lost ones included
        self.counter: int | None = None
        self.level: int | None = None
        self._remainder = b""

    def check_count(self, elapsed_s: float) -> None:
        """Losses of 64 samples or more in one go are invisible to the 6-bit counter: compare
        the count with the host's time from AVERAGE_START to AVERAGE_STOP instead."""
        missing = round(elapsed_s * SAMPLE_RATE_HZ) - self.index
        if missing > COUNT_TOLERANCE + COUNT_TOLERANCE_REL * self.index and not self.failure:
            self.writer.event(
                self.index * PERIOD_S,
                "gap",
                f"{missing} samples fewer than {elapsed_s:.3f} s of streaming holds: lost in "
                "runs the 6-bit counter cannot show (64 or more); sample times after them "
                "are early",
            )

    def _run(self) -> None:
        pending: list[bytes] = []
        last_data = last_flush = time.monotonic()
        while self.failure is None:
            try:
                data = self.port.read(1 << 16)
            except Exception as error:  # pyserial raises SerialException/OSError/TypeError
                self.fail(f"{self.where}: read failed ({error})")
                return
            now = time.monotonic()
            if data:
                pending.append(data)
                last_data = now
            quiet = now - last_data
            if pending and (now - last_flush >= BATCH_S or not data):
                self._take(b"".join(pending))
                pending, last_flush = [], now
            if self._halt.is_set() and quiet > 0.1:
                return
            if not self._halt.is_set() and quiet > self.timeout_s:
                self.fail(f"{self.where} stopped streaming ({self.timeout_s:g} s silent)")
                return

    def _take(self, data: bytes) -> None:
        data = self._remainder + data
        whole = len(data) - len(data) % 4
        self._remainder = data[whole:]
        adc, ranges, counter, logic = decode(data[:whole])
        if not len(adc):
            return
        good = ranges < RANGES
        if not good.all():
            bad = int((~good).sum())
            self.writer.event(
                self.index * PERIOD_S, "message", f"{bad} corrupt sample word(s) (range > 4)"
            )
            adc, ranges, counter, logic = adc[good], ranges[good], counter[good], logic[good]
            if not len(adc):
                return
        # Position of each word in the kit's sample count, from its 6-bit counter; a corrupt
        # word's counter is not trusted, so it counts as a lost sample.
        previous = counter[0] - 1 if self.counter is None else self.counter
        steps = (np.diff(counter, prepend=previous) - 1) % COUNTER_MOD  # samples lost before
        positions = self.index + np.cumsum(steps + 1) - 1
        for k in np.flatnonzero(steps)[:MAX_GAP_EVENTS]:
            self.writer.event(
                float(positions[k] - steps[k]) * PERIOD_S,
                "gap",
                f"{int(steps[k])} sample(s) lost before counter {int(counter[k])}",
            )
        self.counter = int(counter[-1])
        self.index = int(positions[-1]) + 1
        self._marks(positions, logic)
        amps = self.calibration.amps(adc, ranges, self.volts)
        values = np.column_stack([amps, np.full(len(amps), self.volts)])
        times = (positions + 0.5) * PERIOD_S
        # Uniform runs go in as such (no stored times); a run ends where samples were lost.
        breaks = np.flatnonzero(np.diff(positions) != 1) + 1
        for run_values, run_times in zip(
            np.split(values, breaks), np.split(times, breaks), strict=True
        ):
            if len(run_times):
                self.writer.append(run_values, start=float(run_times[0]))

    def _marks(self, positions: np.ndarray, logic: np.ndarray) -> None:
        levels = (logic & self.mark_bit) != 0
        if not len(levels):
            return
        before = levels[0] if self.level is None else bool(self.level)
        changes = np.flatnonzero(np.diff(levels, prepend=before))
        for k in changes:
            edge = "rising" if levels[k] else "falling"
            self.writer.mark(float(positions[k]) * PERIOD_S, "timestamp", edge)
        self.level = int(levels[-1])

    def _failure_time(self) -> float:
        return self.index * PERIOD_S

"""Joulescope JS110/JS220 through pyjoulescope_driver (optional extra), into our PowerTrace.

The instrument streams current, voltage and its general-purpose inputs as separate signals
over USB; pyjoulescope_driver's PubSub delivers each block to a callback as a dict with
`sample_id`, `sample_rate`, `decimate_factor`, `utc` and `data` (research/power_and_peers.md
§A2: topics `s/i/!data`, `s/v/!data`, `s/gpi/N/!data`, controls `s/i/ctrl` ...,
`s/i/range/mode` auto (JS220; JS110: `s/i/range/select`), sample rate `h/fs` (JS220)).
Joulescope marks samples it could not measure (and the gaps of dropped USB frames, once
filled) as NaN.

There is no simulated device, so the work is split where hardware ends:
  JoulescopeStream  signals by name ("current", "voltage", "power", "gpi[N]") and sample
                    index -> aligned (A, V) samples, NaN runs as "gap" events, missing sample
                    indices as "gap" events, GPI level changes as "timestamp" marks, and a
                    watchdog for a stream that stops. Fed by the live callback below and by
                    jls_import (recordings), and tested with synthetic .jls files.
  LiveFeed          the pyjoulescope_driver callback: topic + message dict -> stream.take.
  JoulescopeMeter   opening the device, configuring and starting the signals (hardware only).

Inferred (pyjoulescope_driver's message fields are documented by its code, which we read but
do not copy): `sample_id` counts samples at `sample_rate` (the instrument's base rate) and one
delivered sample spans `decimate_factor` of them; 1-bit signals (GPI) arrive packed eight
samples a byte, little-endian bit order, as in JLS files. Meter time is the sample index at
the delivered rate from the first sample (trace clock "meter"); the first UTC stamp is kept in
the trace's meta for reference.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..metrics.power_trace import PowerTrace, PowerTraceWriter
from .base import Meter, MeterError, MeterInfo
from .recording import Recording
from .registry import register

INSTALL_HINT = "pip install pyjoulescope_driver  (or: pip install 'edgebench[joulescope]')"
ANALOG = ("current", "voltage", "power")
GPI = re.compile(r"gpi\[(\d)\]")
TOPICS = {"s/i/!data": "current", "s/v/!data": "voltage", "s/p/!data": "power"}
GPI_TOPIC = re.compile(r"s/gpi/(\d)/!data$")
#: How often the watchdog looks for a stream that stopped.
WATCHDOG_S = 0.25


class JoulescopeStream(Recording):
    """Joulescope signal blocks -> one PowerTrace (thread-safe: callbacks arrive on the
    driver's thread, the watchdog and stop() on others)."""

    def __init__(self, writer: PowerTraceWriter, mark_input: int | None = 0) -> None:
        super().__init__(writer, "check the USB link and rerun")
        self.kind = writer.kind  # "current_voltage" (current + voltage) or "power"
        self.mark_signal = None if mark_input is None else f"gpi[{mark_input}]"
        self.rate: float | None = None
        self.origin: int | None = None  # sample index of meter time 0
        self.last_data = time.monotonic()
        # Per analog signal: (index of its first held sample, samples not yet paired).
        self._pending: dict[str, tuple[int, np.ndarray]] = {}
        self._next: dict[str, int] = {}
        self._level: int | None = None

    # -- input -----------------------------------------------------------------------------
    def take(self, signal: str, index: int, rate: float, data: np.ndarray) -> None:
        """One block of `signal` whose first sample is number `index` at `rate` Hz."""
        with self._lock:
            if self.failure is not None or self.writer.closed:
                return
            self.last_data = time.monotonic()
            if self.rate is None:
                self.rate, self.origin = float(rate), int(index)
            elif abs(rate - self.rate) > 1e-9 * self.rate:
                raise MeterError(
                    f"Joulescope signal {signal} at {rate:g} Hz, others at {self.rate:g} Hz; "
                    "record every signal at one rate"
                )
            data = np.asarray(data)
            index, data = self._continuity(signal, int(index), data)
            if not len(data):
                return
            if signal == self.mark_signal:
                self._marks(index, data)
            elif signal in ANALOG:
                self._analog(signal, index, data.astype(np.float64))

    def _continuity(self, signal: str, index: int, data: np.ndarray) -> tuple[int, np.ndarray]:
        """Samples already taken (a repeated block) are dropped; a hole is left to _joined."""
        expected = self._next.get(signal)
        if expected is not None and index < expected:
            data = data[expected - index :]
            index = expected
        self._next[signal] = index + len(data)
        return index, data

    def _time(self, index: int | float) -> float:
        assert self.rate is not None and self.origin is not None
        return (index - self.origin) / self.rate

    def _marks(self, index: int, levels: np.ndarray) -> None:
        levels = (levels != 0).astype(np.int8)
        before = levels[0] if self._level is None else self._level
        for k in np.flatnonzero(np.diff(levels, prepend=before)):
            edge = "rising" if levels[k] else "falling"
            self.writer.mark(self._time(index + int(k)), "timestamp", edge)
        self._level = int(levels[-1])

    def _analog(self, signal: str, index: int, data: np.ndarray) -> None:
        wanted = ("power",) if self.kind == "power" else ("current", "voltage")
        if signal not in wanted:
            return
        self._pending[signal] = self._joined(signal, index, data)
        if any(name not in self._pending for name in wanted):
            return
        start = max(self._pending[name][0] for name in wanted)
        end = min(first + len(held) for first, held in self._pending.values())
        if end <= start:
            return
        columns = [held[start - first : end - first] for first, held in self._pending.values()]
        self._emit(start, columns[0] if len(columns) == 1 else np.column_stack(columns))
        self._pending = {
            name: (end, held[end - first :]) for name, (first, held) in self._pending.items()
        }

    def _joined(self, signal: str, index: int, data: np.ndarray) -> tuple[int, np.ndarray]:
        """The signal's pending samples with this block after them (a gap between them is
        filled with NaN, which _emit turns into a gap in the trace)."""
        if signal not in self._pending:
            return index, data
        first, held = self._pending[signal]
        hole = index - (first + len(held))
        filler = np.full(max(hole, 0), np.nan)
        return first, np.concatenate([held, filler, data])

    def _emit(self, index: int, values: np.ndarray) -> None:
        """Samples from `index` on; NaN ones are not stored (the trace shows the hole)."""
        assert self.rate is not None
        finite = np.isfinite(values) if values.ndim == 1 else np.isfinite(values).all(axis=1)
        positions = np.flatnonzero(finite)
        lost = len(values) - len(positions)
        if lost:
            first_nan = int(np.flatnonzero(~finite)[0])
            self.writer.event(
                self._time(index + first_nan),
                "gap",
                f"{lost} sample(s) missing (not measured, or not delivered)",
            )
        breaks = np.flatnonzero(np.diff(positions) != 1) + 1
        for run in np.split(positions, breaks):
            if len(run):
                self.writer.append(values[run], start=self._time(index + int(run[0])))

    # -- end -------------------------------------------------------------------------------
    def check_alive(self, timeout_s: float) -> bool:
        """False (and the trace closed as stopped) when no block came for `timeout_s`."""
        with self._lock:
            if self.failure is None and time.monotonic() - self.last_data > timeout_s:
                self.fail(f"Joulescope stopped streaming ({timeout_s:g} s without data)")
            return self.failure is None


class LiveFeed:
    """pyjoulescope_driver's subscriber callback: (topic, message) -> JoulescopeStream."""

    def __init__(self, stream: JoulescopeStream) -> None:
        self.stream = stream
        self.first_utc: int | None = None

    def __call__(self, topic: str, value: dict[str, Any]) -> None:
        signal = self.signal(topic)
        if signal is None or not isinstance(value, dict):
            return
        decimate = int(value.get("decimate_factor") or 1)
        rate = float(value["sample_rate"]) / decimate
        index = int(value["sample_id"]) // decimate
        data = np.asarray(value["data"])
        if int(value.get("element_size_bits") or 0) == 1:
            data = np.unpackbits(data.astype(np.uint8), bitorder="little")
        if self.first_utc is None and value.get("utc") is not None:
            self.first_utc = int(value["utc"])
            self.stream.writer.meta["first_utc_jls"] = self.first_utc
        try:
            self.stream.take(signal, index, rate, data)
        except MeterError as error:
            self.stream.fail(str(error))

    @staticmethod
    def signal(topic: str) -> str | None:
        for suffix, name in TOPICS.items():
            if topic.endswith(suffix):
                return name
        match = GPI_TOPIC.search(topic)
        return f"gpi[{match[1]}]" if match else None


@register
class JoulescopeMeter(Meter):
    """Joulescope JS110/JS220 via pyjoulescope_driver (optional extra), GPI marks."""

    driver = "joulescope"
    tested_against = "recorded file (synthetic .jls through the stream handler); no hardware"
    profile_keys: ClassVar[dict[str, type | tuple[type, ...]]] = {
        "device": str,
        "sample_rate": (int, float),
        "mark_input": (int, type(None)),
        "timeout_s": (int, float),
    }

    def __init__(self, profile: dict[str, Any]) -> None:
        super().__init__(profile)
        self.mark_input = profile.get("mark_input", 0)
        self.sample_rate = float(profile.get("sample_rate", 1_000_000))
        self.timeout_s = float(profile.get("timeout_s", 2.0))
        marks_ok = self.mark_input is None or 0 <= self.mark_input <= 3
        self._require("mark_input", self.mark_input, marks_ok, " not 0..3 (or null)")
        self._driver: Any = None
        self.path: str | None = None
        self._recording: JoulescopeStream | None = None
        self._feed: LiveFeed | None = None
        self._watchdog: threading.Thread | None = None
        self._topics: list[str] = []

    def open(self) -> None:
        if self._driver is not None:
            return
        try:
            import pyjoulescope_driver
        except ImportError:
            raise MeterError(
                f"meter {self.name}: the Joulescope driver is not installed; {INSTALL_HINT}"
            ) from None
        driver = pyjoulescope_driver.Driver()
        paths = [p for p in driver.device_paths() if self.profile.get("device", "") in p]
        if not paths:
            driver.finalize()
            wanted = f" matching {self.profile['device']!r}" if self.profile.get("device") else ""
            raise MeterError(
                f"no Joulescope{wanted} found on USB; plug it in, close the Joulescope UI "
                "(it holds the device), and on Linux install Joulescope's udev rules"
            )
        self._driver, self.path = driver, paths[0]
        try:
            driver.open(self.path, mode="restore")
            if "/js110/" in self.path.lower():
                driver.publish(f"{self.path}/s/i/range/select", "auto")
            else:
                driver.publish(f"{self.path}/s/i/range/mode", "auto")
                driver.publish(f"{self.path}/h/fs", int(self.sample_rate))
        except Exception as error:  # the driver raises its own error types
            self.close()
            raise MeterError(f"Joulescope {paths[0]}: set-up failed ({error})") from None

    def describe(self) -> MeterInfo:
        model = (self.path or "/?/").split("/")[1].upper() if self.path else "JS110/JS220"
        return MeterInfo(
            driver=self.driver,
            model=f"Joulescope {model}",
            serial=self.path.split("/")[-1] if self.path else None,
            sample_rate_hz=self.sample_rate,
            ranges=["autoranging shunts (18 uA .. 10 A)"],
            accuracy=dict(self.profile.get("accuracy") or {}),
            records_marks=self.mark_input is not None,
            notes=self._notes(),
        )

    def _notes(self) -> str:
        if self.mark_input is None:
            return "no marks (mark_input: null)"
        return f"marks: GPI{self.mark_input} level changes, in the instrument's sample count"

    def start(self, directory: Path, phase: str = "testing") -> None:
        self._check_can_start(self._driver is not None and self.path is not None)
        writer = PowerTraceWriter(
            Path(directory),
            "current_voltage",
            self.describe().to_dict(),
            sample_period_s=1.0 / self.sample_rate,
            clock="meter",
        )
        self._recording = JoulescopeStream(writer, self.mark_input)
        self._feed = LiveFeed(self._recording)
        controls = ["s/i", "s/v"]
        if self.mark_input is not None:
            controls.append(f"s/gpi/{self.mark_input}")
        self._topics = [f"{self.path}/{c}/!data" for c in controls]
        for topic in self._topics:
            self._driver.subscribe(topic, "pub", self._feed)
        for control in controls:
            self._driver.publish(f"{self.path}/{control}/ctrl", 1)
        self._watchdog = threading.Thread(target=self._watch, name="js-watchdog", daemon=True)
        self._watchdog.start()

    def _watch(self) -> None:
        stream = self._recording
        while self._recording is stream and stream is not None:
            if not stream.check_alive(self.timeout_s):
                return
            time.sleep(WATCHDOG_S)

    def stop(self) -> PowerTrace:
        stream = self._take_recording()
        self._unsubscribe()
        return stream.finish()

    def _unsubscribe(self) -> None:
        if self._driver is None or self.path is None:
            return
        for topic in self._topics:
            with contextlib.suppress(Exception):
                self._driver.publish(topic.replace("/!data", "/ctrl"), 0)
                self._driver.unsubscribe(topic, self._feed)
        self._topics = []

    def close(self) -> None:
        self._abandon_recording()
        self._unsubscribe()
        if self._driver is not None:
            with contextlib.suppress(Exception):
                if self.path is not None:
                    self._driver.close(self.path)
                self._driver.finalize()
            self._driver, self.path = None, None

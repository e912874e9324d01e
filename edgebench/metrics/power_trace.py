"""A power trace on disk: chunked, compressed, readable while (and after) it is written.

A meter may record for hours at up to millions of samples per second, so a trace never lives
in memory: the writer keeps at most one chunk, and the reader yields one chunk at a time.
meta.json is rewritten (atomically) after every chunk with status "recording", so a crash or a
meter that dies mid-run leaves a trace that opens and says how far it got.

Layout of the directory:
  meta.json          kind, units, meter info, time base, counts and span, status
  chunks.jsonl       the chunk list, one line per chunk as it is written (append-only, so an
                     hours-long recording never rewrites a growing list)
  chunk_NNNNNN.npz   one chunk: "values" (float32), and "times" (float64 s) only when the meter
                     timestamps samples itself; a chunk of uniformly spaced samples stores its
                     start time and period in its chunks.jsonl line instead (4 bytes per
                     sample, not 12)
  marks.jsonl        {"t": s, "kind": "timestamp"|"trigger"|..., "edge": "falling"|...|null}
  events.jsonl       {"t": s, "kind": "overload"|"gap"|"message"|..., "text": ...}

Kinds: "power" (W per sample), "current_voltage" (two columns A, V; power = A*V per sample),
"energy" (J per sample period, covering the period that ends at the sample's time; such
samples are summed, never trapezoided).

Times are seconds in the meter's time base, named by meta["clock"]: "monotonic" (this host's
CLOCK_MONOTONIC; emulators and meters read on this host), "utc" (this host's wall clock, e.g.
PTDaemon logs; meta["host_clocks"] pairs both clocks at open so energy code can map it), or
"meter" (the instrument's own counter; only marks it recorded can place a window in it).
meta["clock_uncertainty_s"] is the driver's bound on how far its timestamps sit from that time
base (e.g. USB latency of host-stamped samples); None = exact for "monotonic", MLPerf Power's
0.4 s NTP limit for "utc" (energy_windows.MeterClock).
float32 values lose nothing real: no meter resolves more than 24 bits.
"""

from __future__ import annotations

import json
import os
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

KINDS = ("power", "current_voltage", "energy")
UNITS = {"power": ["W"], "current_voltage": ["A", "V"], "energy": ["J"]}
CLOCKS = ("monotonic", "utc", "meter")
META = "meta.json"
CHUNKS = "chunks.jsonl"
MARKS = "marks.jsonl"
EVENTS = "events.jsonl"
SCHEMA = "edgebench.power_trace/1"
#: zlib level for chunks: level 1 keeps writing at tens of MB/s with most of level 6's gain
#: on quantized meter data (see benchmarks/energy_integration.py for the trade-off).
COMPRESS_LEVEL = 1
#: Flush a partial chunk after this long, so a slow meter (1 S/s) still reaches the disk.
FLUSH_INTERVAL_S = 5.0
#: Consecutive uniform appends whose start differs from the expected next time by more than
#: this fraction of a period begin a new chunk (the meter restarted or dropped samples).
CONTINUITY_TOLERANCE = 0.01


class TraceError(RuntimeError):
    """A trace that cannot be written or read as asked; the message names the problem."""


@dataclass(frozen=True)
class Chunk:
    """One stored chunk. Uniform chunks have `period` and no stored times."""

    index: int
    start: float
    end: float
    count: int
    period: float | None
    values: np.ndarray
    stored_times: np.ndarray | None

    @property
    def times(self) -> np.ndarray:
        if self.stored_times is not None:
            return self.stored_times
        assert self.period is not None
        return self.start + np.arange(self.count, dtype=np.float64) * self.period


def _atomic_write(path: Path, text: str) -> None:
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def _write_npz(path: Path, arrays: dict[str, np.ndarray], level: int) -> None:
    """np.savez_compressed with a chosen zlib level (numpy's own is fixed at 6)."""
    temporary = path.with_suffix(".tmp")
    compression = zipfile.ZIP_DEFLATED if level > 0 else zipfile.ZIP_STORED
    with zipfile.ZipFile(temporary, "w", compression, compresslevel=level or None) as archive:
        for name, array in arrays.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.ascontiguousarray(array))
    os.replace(temporary, path)


class PowerTraceWriter:
    """Appends samples as a meter delivers them; thread-safe (reader thread + runner marks)."""

    def __init__(
        self,
        directory: Path,
        kind: str,
        meter: dict,
        *,
        sample_period_s: float | None = None,
        chunk_samples: int = 1 << 20,
        clock: str = "monotonic",
        clock_uncertainty_s: float | None = None,
        compress_level: int = COMPRESS_LEVEL,
        flush_interval_s: float = FLUSH_INTERVAL_S,
    ) -> None:
        if kind not in KINDS:
            raise TraceError(f"trace kind {kind!r}: use one of {', '.join(KINDS)}")
        if clock not in CLOCKS:
            raise TraceError(f"trace clock {clock!r}: use one of {', '.join(CLOCKS)}")
        if sample_period_s is not None and not sample_period_s > 0:
            raise TraceError(f"sample_period_s must be > 0, got {sample_period_s!r}")
        if chunk_samples < 1:
            raise TraceError(f"chunk_samples must be >= 1, got {chunk_samples}")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        if (self.directory / META).exists():
            raise TraceError(f"{self.directory} already holds a trace; record into a new directory")
        self.kind = kind
        self.chunk_samples = chunk_samples
        self.compress_level = compress_level
        self.flush_interval_s = flush_interval_s
        self._lock = threading.RLock()
        self._pending: list[np.ndarray] = []
        self._pending_times: list[np.ndarray] | None = None  # None = uniform pending data
        self._pending_count = 0
        self._pending_start: float | None = None
        self._next_t: float | None = None
        self._last_t: float | None = None
        self._last_flush = time.monotonic()
        self._closed = False
        self.meta: dict[str, Any] = {
            "schema": SCHEMA,
            "kind": kind,
            "units": UNITS[kind],
            "meter": meter,
            "clock": clock,
            "host_clocks": {"monotonic": time.monotonic(), "utc": time.time()},
            "clock_uncertainty_s": clock_uncertainty_s,
            "sample_period_s": sample_period_s,
            "compress_level": compress_level,
            "chunk_count": 0,
            "sample_count": 0,
            "span": None,
            "status": "recording",
        }
        self._chunks = open(self.directory / CHUNKS, "a")  # noqa: SIM115 (closed in close())
        self._marks = open(self.directory / MARKS, "a")  # noqa: SIM115
        self._events = open(self.directory / EVENTS, "a")  # noqa: SIM115
        self._write_meta()

    # -- samples -------------------------------------------------------------------------
    def append(
        self, values: np.ndarray, times: np.ndarray | None = None, start: float | None = None
    ) -> None:
        """values: 1-D (power W / energy J) or (n, 2) (A, V) for current_voltage.
        times: per-sample meter-clock seconds, or None with sample_period_s set and
        `start` (meter-clock time of values[0]) given for the first append at least."""
        values = self._check_values(values)
        count = len(values)
        if count == 0:
            return
        with self._lock:
            if self._closed:
                raise TraceError(f"{self.directory}: append after close")
            if times is not None:
                times = np.asarray(times, dtype=np.float64).reshape(-1)
                if len(times) != count:
                    raise TraceError(f"append: {count} values but {len(times)} times")
                if self._pending_times is None:  # uniform data pending: end its chunk
                    self._flush()
                    self._pending_times = []
                    self._next_t = None
                self._pending_times.append(times)
                self._last_t = float(times[-1])
            else:
                period = self.meta["sample_period_s"]
                if period is None:
                    raise TraceError(
                        "append without times needs sample_period_s; pass times= or set it"
                    )
                if self._pending_times is not None:  # timed data pending: end its chunk
                    self._flush()
                    self._pending_times = None
                expected = self._next_t
                if start is None:
                    if expected is None:
                        raise TraceError("the first append of uniform samples needs start=")
                    start = expected
                elif expected is None or abs(start - expected) > CONTINUITY_TOLERANCE * period:
                    self._flush()
                if self._pending_start is None:
                    self._pending_start = float(start)
                self._next_t = float(start) + count * period
                self._last_t = self._next_t - period
            self._pending.append(values)
            self._pending_count += count
            while self._pending_count >= self.chunk_samples:
                self._flush(self.chunk_samples)
            if self._pending_count and (
                time.monotonic() - self._last_flush >= self.flush_interval_s
            ):
                self._flush()

    def _check_values(self, values: np.ndarray) -> np.ndarray:
        array = np.asarray(values, dtype=np.float32)
        if self.kind == "current_voltage":
            if array.ndim != 2 or array.shape[1] != 2:
                raise TraceError(f"current_voltage values must be (n, 2) A, V; got {array.shape}")
        elif array.ndim != 1:
            raise TraceError(f"{self.kind} values must be 1-D; got shape {array.shape}")
        return array

    def _flush(self, limit: int | None = None) -> None:
        """Write up to `limit` pending samples as one chunk (all when None)."""
        if not self._pending_count:
            self._pending_start = None
            return
        values = np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]
        take = len(values) if limit is None else min(limit, len(values))
        rest = values[take:]
        index = self.meta["chunk_count"]
        name = f"chunk_{index:06d}.npz"
        arrays = {"values": values[:take]}
        entry: dict[str, Any] = {"file": name, "count": take}
        if self._pending_times is not None:
            times = (
                np.concatenate(self._pending_times)
                if len(self._pending_times) > 1
                else self._pending_times[0]
            )
            arrays["times"] = times[:take]
            entry.update(start=float(times[0]), end=float(times[take - 1]), period=None)
            self._pending_times = [times[take:]] if len(rest) else []
        else:
            period = self.meta["sample_period_s"]
            assert self._pending_start is not None
            entry.update(
                start=self._pending_start,
                end=self._pending_start + (take - 1) * period,
                period=period,
            )
            self._pending_start = self._pending_start + take * period if len(rest) else None
        _write_npz(self.directory / name, arrays, self.compress_level)
        self._pending = [rest] if len(rest) else []
        self._pending_count = len(rest)
        self._chunks.write(json.dumps(entry) + "\n")
        self._chunks.flush()
        self.meta["chunk_count"] = index + 1
        self.meta["sample_count"] += take
        first = entry["start"] if index == 0 else self.meta["span"][0]
        self.meta["span"] = [first, entry["end"]]
        self._last_flush = time.monotonic()
        self._write_meta()

    # -- marks and events ----------------------------------------------------------------
    def mark(self, t: float, kind: str = "timestamp", edge: str | None = None) -> None:
        self._line(self._marks, {"t": float(t), "kind": kind, "edge": edge})

    def event(self, t: float, kind: str, text: str = "") -> None:
        self._line(self._events, {"t": float(t), "kind": kind, "text": text})

    def _line(self, handle: Any, record: dict[str, Any]) -> None:
        with self._lock:
            if self._closed:
                raise TraceError(f"{self.directory}: write after close")
            handle.write(json.dumps(record) + "\n")
            handle.flush()

    # -- end -----------------------------------------------------------------------------
    def close(self, status: str = "complete") -> PowerTrace:
        """Flush and seal the trace; status "complete" or "stopped: <why>"."""
        with self._lock:
            if not self._closed:
                self._flush()
                self._closed = True
                self._chunks.close()
                self._marks.close()
                self._events.close()
                self.meta["status"] = status
                self._write_meta()
        return PowerTrace.open(self.directory)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def last_time(self) -> float | None:
        """Meter time of the newest sample appended (flushed or not)."""
        return self._last_t

    def _write_meta(self) -> None:
        _atomic_write(self.directory / META, json.dumps(self.meta, indent=1) + "\n")


class PowerTrace:
    """A recorded trace, read chunk by chunk (also one still being written)."""

    def __init__(self, directory: Path, meta: dict[str, Any]) -> None:
        self.directory = directory
        self.meta = meta
        self.kind: str = meta["kind"]
        # The chunks written so far: after a crash, chunks.jsonl may be a line ahead of
        # meta.json's counters (or end in a torn line, skipped); its lines are the truth.
        self.chunk_entries: list[dict[str, Any]] = _read_lines(directory / CHUNKS, None)

    @classmethod
    def open(cls, directory: Path) -> PowerTrace:
        directory = Path(directory)
        path = directory / META
        if not path.is_file():
            raise TraceError(
                f"{directory} holds no power trace ({META} missing); pass the run's power/ folder"
            )
        try:
            meta = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise TraceError(f"{path} is not valid JSON ({error})") from None
        if meta.get("schema") != SCHEMA or meta.get("kind") not in KINDS:
            raise TraceError(f"{path}: not an {SCHEMA} trace (schema {meta.get('schema')!r})")
        return cls(directory, meta)

    @property
    def status(self) -> str:
        return str(self.meta.get("status"))

    @property
    def clock(self) -> str:
        return str(self.meta.get("clock", "monotonic"))

    @property
    def sample_count(self) -> int:
        return sum(int(entry["count"]) for entry in self.chunk_entries)

    @property
    def span(self) -> tuple[float, float]:
        """First and last sample time (meter clock); TraceError for an empty trace."""
        if not self.chunk_entries:
            raise TraceError(f"{self.directory}: the trace holds no samples")
        return float(self.chunk_entries[0]["start"]), float(self.chunk_entries[-1]["end"])

    def iter_chunks(self) -> Iterator[Chunk]:
        """Chunks in time order, each loaded only when reached."""
        for index, entry in enumerate(self.chunk_entries):
            path = self.directory / entry["file"]
            try:
                with np.load(path) as archive:
                    values = archive["values"]
                    times = archive["times"] if "times" in archive.files else None
            except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
                raise TraceError(f"{path}: unreadable chunk ({error})") from None
            yield Chunk(
                index,
                float(entry["start"]),
                float(entry["end"]),
                int(entry["count"]),
                entry.get("period"),
                values,
                times,
            )

    def chunks(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(times s, values) per chunk, in time order; values as stored."""
        for chunk in self.iter_chunks():
            yield chunk.times, chunk.values

    def marks(self, kind: str | None = None) -> list[dict]:
        return _read_lines(self.directory / MARKS, kind)

    def events(self, kind: str | None = None) -> list[dict]:
        return _read_lines(self.directory / EVENTS, kind)


def _read_lines(path: Path, kind: str | None) -> list[dict]:
    """JSON lines, skipping a torn last line (a crash mid-write)."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if kind is None or record.get("kind") == kind:
            records.append(record)
    return records

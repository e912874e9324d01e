"""Traces from any other instrument: a CSV or NPZ file turned into our PowerTrace.

Most bench instruments (a DMM logging over SCPI, a scope's CSV export, a vendor app's export)
can write time-stamped samples to a file. Rather than a driver per instrument, the file's
layout is declared in a meter profile (which columns, which units, which clock) and imported
as it is, with no resampling: one of
  time + power            (W, mW, uW)            -> a "power" trace
  time + current + voltage (A/mA/uA/nA, V/mV; or a fixed `voltage_v`) -> "current_voltage"
  time + energy per period (J, mJ, uJ)           -> an "energy" trace (summed, never trapezoided)
Bad input is refused with the row and column named: a missing column (the file's columns are
listed), a value that is not a number, time that does not increase. Gaps (a step longer than
`gap_factor` x the median step) are kept, recorded as "gap" events and counted, so the energy
code can refuse windows that fall into them.

As a meter (driver `trace-file`) the file is whatever an external logger wrote during the
run: start() only notes where to record, stop() imports the file. The trace's clock says
what the logger's timestamps are: `utc` (the usual: wall-clock seconds since the epoch, placed
on the run through the host's wall clock), `monotonic` (this host's CLOCK_MONOTONIC), or
`meter` (the instrument's own counter; usable only with marks, which a file cannot carry).
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..metrics.power_trace import CLOCKS, PowerTrace, PowerTraceWriter, TraceError
from .base import Meter, MeterError, MeterInfo
from .registry import register

TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
UNITS = {
    "power": {"W": 1.0, "mW": 1e-3, "uW": 1e-6},
    "current": {"A": 1.0, "mA": 1e-3, "uA": 1e-6, "nA": 1e-9},
    "voltage": {"V": 1.0, "mV": 1e-3},
    "energy": {"J": 1.0, "mJ": 1e-3, "uJ": 1e-6},
}
GAP_FACTOR = 3.0
#: Rows converted per batch: bounded memory for files of any length.
BATCH_ROWS = 1 << 16


class TraceImportError(MeterError):
    """A trace file that cannot be imported as declared; the message names row/column and fix."""


@dataclass(frozen=True)
class TraceFormat:
    """Which columns of the file hold what, in which units. Column names for CSV headers and
    NPZ array names alike."""

    time: str = "time"
    time_unit: str = "s"
    power: str | None = None
    power_unit: str = "W"
    current: str | None = None
    current_unit: str = "A"
    voltage: str | None = None
    voltage_unit: str = "V"
    voltage_v: float | None = None
    energy: str | None = None
    energy_unit: str = "J"
    clock: str = "utc"
    delimiter: str = ","
    skip_rows: int = 0
    gap_factor: float = GAP_FACTOR

    def __post_init__(self) -> None:
        quantities = [q for q in ("power", "current", "energy") if getattr(self, q)]
        if len(quantities) != 1:
            raise TraceImportError(
                "declare exactly one of power:, current: (with voltage: or voltage_v:) or "
                f"energy: as the column holding the measurement (got {quantities or 'none'})"
            )
        if self.current and (self.voltage is None) == (self.voltage_v is None):
            raise TraceImportError(
                "a current column needs either voltage: (a column) or voltage_v: (a fixed "
                "supply in V), not both nor neither"
            )
        self._check_unit("time", self.time_unit, TIME_UNITS)
        for quantity in UNITS:
            self._check_unit(quantity, getattr(self, f"{quantity}_unit"), UNITS[quantity])
        if self.clock not in CLOCKS:
            raise TraceImportError(f"clock {self.clock!r}: use one of {', '.join(CLOCKS)}")
        if not self.gap_factor > 1:
            raise TraceImportError(f"gap_factor must be > 1, got {self.gap_factor!r}")

    @staticmethod
    def _check_unit(quantity: str, unit: str, known: dict[str, float]) -> None:
        if unit not in known:
            raise TraceImportError(
                f"{quantity}_unit {unit!r} is not known; use one of {', '.join(known)}"
            )

    @classmethod
    def from_profile(cls, profile: dict[str, Any]) -> TraceFormat:
        fields = {k: profile[k] for k in cls.__dataclass_fields__ if k in profile}
        return cls(**fields)

    @property
    def kind(self) -> str:
        if self.power:
            return "power"
        return "current_voltage" if self.current else "energy"

    def columns(self) -> list[str]:
        """Columns the file must have, time first."""
        wanted = [self.time, self.power, self.current, self.voltage, self.energy]
        return [c for c in wanted if c]

    def convert(self, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows of the declared columns (time first) -> (times s, values in SI)."""
        times = raw[:, 0] * TIME_UNITS[self.time_unit]
        if self.kind == "power":
            return times, raw[:, 1] * UNITS["power"][self.power_unit]
        if self.kind == "energy":
            return times, raw[:, 1] * UNITS["energy"][self.energy_unit]
        amps = raw[:, 1] * UNITS["current"][self.current_unit]
        if self.voltage is not None:
            volts = raw[:, 2] * UNITS["voltage"][self.voltage_unit]
        else:
            volts = np.full(len(amps), float(self.voltage_v or 0.0))
        return times, np.column_stack([amps, volts])


@dataclass
class ImportReport:
    """What came in: the trace, and the gaps found on the way."""

    trace: PowerTrace
    rows: int
    gaps: int


def import_trace(
    source: Path, directory: Path, fmt: TraceFormat, meter: dict[str, Any] | None = None
) -> ImportReport:
    """Import `source` (.csv or .npz) into a new PowerTrace at `directory`.

    On bad input the partial trace is closed with status "stopped: <why>" and the error raised.
    """
    source = Path(source)
    if not source.is_file():
        raise TraceImportError(f"trace file {source} does not exist; check the path")
    batches = _npz_batches(source, fmt) if source.suffix == ".npz" else _csv_batches(source, fmt)
    writer = PowerTraceWriter(
        Path(directory),
        fmt.kind,
        meter or {"driver": "trace-file", "model": "imported file", "source": str(source)},
        clock=fmt.clock,
    )
    rows = gaps = 0
    last: float | None = None
    typical: float | None = None
    try:
        for first_row, raw in batches:
            times, values = fmt.convert(raw)
            # steps[k]: time since the sample before row k (NaN for the file's first row).
            previous = np.concatenate([[np.nan if last is None else last], times[:-1]])
            steps = times - previous
            bad = np.flatnonzero(steps <= 0)
            if len(bad):
                k = int(bad[0])
                raise TraceImportError(
                    f"{source}: row {first_row + k}: time {times[k]:.9g} s does not increase "
                    f"(previous {previous[k]:.9g} s); sort the file or fix the logger's clock"
                )
            if typical is None and np.isfinite(steps).any():
                typical = float(np.nanmedian(steps))
            if typical:
                for k in np.flatnonzero(steps > fmt.gap_factor * typical):
                    writer.event(
                        float(previous[k]),
                        "gap",
                        f"no samples for {steps[k]:.6g} s before row {first_row + k}",
                    )
                    gaps += 1
            writer.append(values, times=times)
            rows += len(times)
            last = float(times[-1])
        if rows == 0:
            raise TraceImportError(f"{source} holds no samples; check the file and skip_rows")
    except (TraceImportError, TraceError) as error:
        writer.close(f"stopped: {error}")
        raise TraceImportError(str(error)) from None
    return ImportReport(writer.close("complete"), rows, gaps)


def _require_columns(
    source: Path, fmt: TraceFormat, present: list[str], noun: str, fix: str
) -> None:
    """Refuse a file lacking a declared column, listing what it has (CSV and NPZ alike)."""
    for column in fmt.columns():
        if column not in present:
            raise TraceImportError(
                f"{source}: no {noun} {column!r} ({noun}s: {', '.join(present) or 'none'}); {fix}"
            )


def _csv_batches(source: Path, fmt: TraceFormat) -> Iterator[tuple[int, np.ndarray]]:
    """(row number of the batch's first row, float rows of the wanted columns); rows are
    counted as in a spreadsheet (header = row skip_rows + 1)."""
    with open(source, newline="", encoding="utf-8-sig") as handle:
        for _ in range(fmt.skip_rows):
            handle.readline()
        reader = csv.reader(handle, delimiter=fmt.delimiter)
        header = [name.strip() for name in next(reader, [])]
        fix = "fix the column names in the meter profile or skip_rows"
        _require_columns(source, fmt, header, "column", fix)
        indices = [header.index(column) for column in fmt.columns()]
        row_number = fmt.skip_rows + 2
        while batch := list(itertools.islice(reader, BATCH_ROWS)):
            raw = np.empty((len(batch), len(indices)))
            for r, row in enumerate(batch):
                for c, index in enumerate(indices):
                    try:
                        raw[r, c] = float(row[index])
                    except (ValueError, IndexError):
                        value = row[index] if index < len(row) else "<missing>"
                        raise TraceImportError(
                            f"{source}: row {row_number + r}, column {fmt.columns()[c]!r}: "
                            f"{value!r} is not a number; clean the file or raise skip_rows"
                        ) from None
            yield row_number, raw
            row_number += len(batch)


def _npz_batches(source: Path, fmt: TraceFormat) -> Iterator[tuple[int, np.ndarray]]:
    """NPZ arrays named like CSV columns; rows are 0-based sample indices."""
    try:
        archive = np.load(source)
    except (OSError, ValueError) as error:
        raise TraceImportError(f"{source}: not a readable .npz ({error})") from None
    with archive:
        fix = "fix the column names in the meter profile"
        _require_columns(source, fmt, archive.files, "array", fix)
        arrays = [np.asarray(archive[c], dtype=np.float64).reshape(-1) for c in fmt.columns()]
    if len({len(a) for a in arrays}) != 1:
        sizes = ", ".join(f"{c}={len(a)}" for c, a in zip(fmt.columns(), arrays, strict=True))
        raise TraceImportError(f"{source}: arrays differ in length ({sizes}); fix the export")
    for start in range(0, len(arrays[0]), BATCH_ROWS):
        yield start, np.column_stack([a[start : start + BATCH_ROWS] for a in arrays])


@register
class TraceFileMeter(Meter):
    """A file written by another instrument's logger during the run, imported at stop()."""

    driver = "trace-file"
    tested_against = "recorded file (synthetic CSV/NPZ)"
    profile_keys: ClassVar[dict[str, type | tuple[type, ...]]] = {
        "path": str,
        "model": str,
        "rate_hz": (int, float),
        **{name: (str, type(None)) for name in ("power", "current", "voltage", "energy")},
        "time": str,
        "delimiter": str,
        **{f"{q}_unit": str for q in ("time", *UNITS)},
        "voltage_v": (int, float),
        "clock": str,
        "skip_rows": int,
        "gap_factor": (int, float),
    }

    def __init__(self, profile: dict[str, Any]) -> None:
        super().__init__(profile)
        self.format = TraceFormat.from_profile(profile)
        self.path = Path(str(profile.get("path") or ""))
        if not profile.get("path"):
            raise MeterError(
                f"meter profile {self.name} names no file; set path: to where the "
                "instrument's logger writes its CSV/NPZ"
            )
        self._directory: Path | None = None

    def open(self) -> None:
        if not self.path.parent.is_dir():
            raise MeterError(
                f"meter {self.name}: folder {self.path.parent} does not exist; create it or "
                "fix path: (the logger writes the trace file there)"
            )

    def describe(self) -> MeterInfo:
        return MeterInfo(
            driver=self.driver,
            model=str(self.profile.get("model", "external instrument")),
            serial=None,
            sample_rate_hz=float(self.profile.get("rate_hz", 0.0)),
            accuracy=dict(self.profile.get("accuracy") or {}),
            records_marks=False,
            notes=f"imported from {self.path} ({self.format.kind}, clock {self.format.clock})",
        )

    def start(self, directory: Path, phase: str = "testing") -> None:
        if self._directory is not None:
            raise self._refuse("already recording")
        self._directory = Path(directory)

    def stop(self) -> PowerTrace:
        if self._directory is None:
            raise self._refuse("not recording")
        directory, self._directory = self._directory, None
        return import_trace(self.path, directory, self.format, self.describe().to_dict()).trace

    def close(self) -> None:
        self._directory = None

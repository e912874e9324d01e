"""Where the timed part of a run lies in the meter's clock, and how well that is known.

Three timing tiers, best first (the result records which one it used):
  meter-marks    the device pulsed a GPIO at the start and end of its timed loop and the meter
                 recorded the edges in its own sample stream (MLPerf Tiny's energy mode): the
                 window needs no clock at all, and its edges are known to one sample period.
  clock-mapping  the device's per-query times are mapped to the host's CLOCK_MONOTONIC with a
                 measured error bound (same clock for the local device, round trips for SSH),
                 and the meter timestamps its samples in host time.
  wall-clock     the meter timestamps samples in wall-clock time (PTDaemon's log): the window
                 is placed through the host's wall clock, whose error (NTP) is large enough
                 that only runs of minutes give a usable result, as in MLPerf Power.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .clock_mapping import ClockMapping
from .energy_integrate import EnergyError, Window
from .power_trace import PowerTrace

TIERS = ("meter-marks", "clock-mapping", "wall-clock")
#: A wall-clock trace with no stated error: MLPerf Power's limit on each host's offset from its
#: NTP server (CRITICAL_DIFFERENCE_TIME_MS = 400 in power-dev's time sync).
WALL_CLOCK_UNCERTAINTY_S = 0.4


@dataclass(frozen=True)
class MeterClock:
    """meter time = host CLOCK_MONOTONIC seconds + offset_s, known to +- uncertainty_s."""

    name: str
    offset_s: float
    uncertainty_s: float

    @classmethod
    def of(cls, trace: PowerTrace, stated_uncertainty_s: float | None = None) -> MeterClock:
        """The trace's time base; `stated_uncertainty_s` (a meter profile's
        clock_uncertainty_s) overrides what the trace says, e.g. 0.001 for a PTDaemon on this
        very host, whose wall clock is the host's own."""
        stated = trace.meta.get("clock_uncertainty_s")
        if stated_uncertainty_s is not None:
            stated = stated_uncertainty_s
        if trace.clock == "monotonic":
            return cls("monotonic", 0.0, float(stated or 0.0))
        if trace.clock == "utc":
            pair = trace.meta["host_clocks"]
            uncertainty = WALL_CLOCK_UNCERTAINTY_S if stated is None else float(stated)
            return cls("utc", pair["utc"] - pair["monotonic"], uncertainty)
        return cls("meter", 0.0, float("inf"))

    @property
    def tier(self) -> str:
        return "wall-clock" if self.name == "utc" else "clock-mapping"

    def from_host_ns(self, host_ns: float) -> float:
        if self.name == "meter":
            raise EnergyError(
                "this meter timestamps samples in its own clock, which cannot be mapped to the "
                "run: record the device's timestamp marks with it (energy mode, GPIO wired to "
                "the meter's trigger input)"
            )
        return float(host_ns) / 1e9 + self.offset_s


def window_from_queries(
    issue_ns: np.ndarray,
    complete_ns: np.ndarray,
    mapping: ClockMapping,
    clock: MeterClock,
    label: str = "run",
) -> Window:
    """The timed window of a Linux-device run: first issue to last completion (device clock),
    mapped to meter time; each edge's uncertainty is the mapping's bound there plus the
    meter clock's own."""
    if len(issue_ns) == 0:
        raise EnergyError("the run recorded no completed queries, so it has no timed window")
    first = float(np.min(issue_ns))
    last = float(np.max(complete_ns))
    edges = []
    for device_ns in (first, last):
        host = float(mapping.to_host_ns(device_ns))
        bound = float(mapping.uncertainty_at(device_ns)) / 1e9 + clock.uncertainty_s
        edges.append((clock.from_host_ns(host), bound))
    (start, start_u), (end, end_u) = edges
    return Window(start, end, len(complete_ns), start_u, end_u, label)


def window_from_host(start_ns: int, end_ns: int, clock: MeterClock, label: str) -> Window:
    """A window timed on the host (the idle window before a run)."""
    return Window(
        clock.from_host_ns(start_ns),
        clock.from_host_ns(end_ns),
        0,
        clock.uncertainty_s,
        clock.uncertainty_s,
        label,
    )


def timestamp_marks(trace: PowerTrace) -> list[float]:
    """Times of the device's timestamp edges. MLPerf Tiny's DUT pulls the line low, so when a
    meter reports both edges of each pulse only the falling ones count."""
    marks = trace.marks("timestamp")
    if any(m.get("edge") == "falling" for m in marks):
        marks = [m for m in marks if m.get("edge") == "falling"]
    return sorted(float(m["t"]) for m in marks)


def windows_from_marks(
    marks: Sequence[float],
    inferences: Sequence[int],
    resolution_s: float,
    spans: Sequence[tuple[float, float]] | None = None,
) -> list[Window]:
    """MLPerf Tiny's rule: each window lies between the LAST two timestamp marks recorded
    during its `infer` command (earlier edges, such as the boot pulse, are spurious).

    spans: the meter-time interval of each infer command; without them the last
    2 x len(inferences) marks are taken as consecutive pairs.
    """
    count = len(inferences)
    if count == 0:
        raise EnergyError("no windows requested: pass the inference count of each window")
    pairs: list[tuple[float, float]] = []
    if spans is not None:
        if len(spans) != count:
            raise EnergyError(f"{len(spans)} command spans for {count} windows")
        for k, (lo, hi) in enumerate(spans):
            inside = [t for t in marks if lo <= t <= hi]
            if len(inside) < 2:
                raise EnergyError(
                    f"window {k + 1}: {len(inside)} timestamp mark(s) recorded during its infer "
                    "command, need 2; check the timestamp wire to the meter and that the "
                    "firmware is built for energy mode"
                )
            pairs.append((inside[-2], inside[-1]))
    else:
        if len(marks) < 2 * count:
            raise EnergyError(
                f"the meter recorded {len(marks)} timestamp mark(s), need {2 * count} for "
                f"{count} window(s); check the timestamp wire to the meter and that the "
                "firmware is built for energy mode"
            )
        tail = list(marks)[-2 * count :]
        pairs = [(tail[2 * k], tail[2 * k + 1]) for k in range(count)]
    return [
        Window(a, b, n, resolution_s, resolution_s, f"window {k + 1}")
        for k, ((a, b), n) in enumerate(zip(pairs, inferences, strict=True))
    ]

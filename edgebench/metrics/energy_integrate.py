"""One streaming pass over a trace: energy in each window, and the trace's health on the way.

Integration follows what the samples are, never resamples them:
  power / current_voltage  the integral of the straight lines between the meter's own samples
                           (trapezoid), with the window edges cut exactly inside an interval;
  energy                   each sample is the energy of the period ending at its time; whole
                           periods are summed, a period cut by a window edge counts pro rata;
  mlperf-power             MLPerf Power's figure: the mean of the positive power samples
                           strictly inside the window times the window's length (what its
                           checker computes from spl.txt; not an integral).
A window edge between chunks is no special case: each interval belongs to the chunk holding
its right end, and the interval bridging two chunks is integrated as a two-sample chunk. Only
one chunk is in memory at a time, so memory stays flat however long the trace.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .power_trace import Chunk, PowerTrace

METHODS = ("trapezoid", "sum", "mlperf-power")
#: An interval longer than this many nominal sample periods is a gap (dropped samples).
GAP_FACTOR = 3.0
MAX_GAPS_KEPT = 20


class EnergyError(RuntimeError):
    """Energy cannot be computed from these inputs; the one-line message says why and what to do."""


class EnergyUsageError(EnergyError):
    """The caller asked for something this trace cannot give (a method for another kind of
    samples, an unknown window policy): a mistake to report, not a result to record."""


@dataclass(frozen=True)
class Window:
    """A span of meter time whose energy is wanted, and how well its edges are known."""

    start: float
    end: float
    inferences: int = 0
    start_uncertainty_s: float = 0.0
    end_uncertainty_s: float = 0.0
    label: str = ""

    @property
    def duration(self) -> float:
        return self.end - self.start

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "start_s": self.start,
            "end_s": self.end,
            "duration_s": self.duration,
            "inferences": self.inferences,
            "start_uncertainty_s": self.start_uncertainty_s,
            "end_uncertainty_s": self.end_uncertainty_s,
        }


@dataclass
class WindowSums:
    """What the pass accumulates for one window."""

    window: Window
    energy_j: float = 0.0
    samples: int = 0
    positive_sum_w: float = 0.0  # mlperf-power: sum and count of W > 0 strictly inside
    positive_count: int = 0
    edge_power_w: list[float] = field(default_factory=lambda: [0.0, 0.0])


@dataclass
class TraceHealth:
    """Gaps found in the pass (start, end meter-s), the nominal period, and the covered span."""

    nominal_period_s: float | None = None
    gaps: list[tuple[float, float]] = field(default_factory=list)
    gap_count: int = 0
    first_s: float = math.inf  # earliest time the samples speak for
    last_s: float = -math.inf


def _power(chunk_values: np.ndarray, kind: str) -> np.ndarray:
    """W per sample: values as stored for power, A*V for current_voltage."""
    if kind == "current_voltage":
        return chunk_values[:, 0].astype(np.float64) * chunk_values[:, 1]
    return chunk_values


class _Piece:
    """Samples with uniform (start, period) or explicit times; the integration primitives."""

    def __init__(
        self, values: np.ndarray, start: float, period: float | None, times: np.ndarray | None
    ):
        self.values = values
        self.n = len(values)
        self.start = start
        self.period = period
        self.times = times
        self.end = start + (self.n - 1) * period if times is None else float(times[-1])

    def t(self, k: int) -> float:
        return self.start + k * self.period if self.times is None else float(self.times[k])

    def locate(self, x: float) -> tuple[int, float]:
        """Interval index m (0..n-2) holding x and the fraction of it before x."""
        if self.times is None:
            u = (x - self.start) / self.period
            m = min(max(math.floor(u), 0), self.n - 2)
            return m, min(max(u - m, 0.0), 1.0)
        m = int(np.searchsorted(self.times, x, side="right")) - 1
        m = min(max(m, 0), self.n - 2)
        width = self.times[m + 1] - self.times[m]
        return m, min(max((x - self.times[m]) / width, 0.0), 1.0) if width > 0 else 0.0

    def index_range(self, lo: float, hi: float, strict: bool = False) -> tuple[int, int]:
        """Sample indices [i, j) with lo <= t <= hi (or lo < t < hi when strict)."""
        if self.times is None:
            u_lo = (lo - self.start) / self.period
            u_hi = (hi - self.start) / self.period
            i = math.floor(u_lo) + 1 if strict else math.ceil(u_lo)
            j = math.ceil(u_hi) if strict else math.floor(u_hi) + 1
            return max(i, 0), min(j, self.n)
        left, right = ("right", "left") if strict else ("left", "right")
        return (
            int(np.searchsorted(self.times, lo, side=left)),
            int(np.searchsorted(self.times, hi, side=right)),
        )

    def trapezoid(self, lo: float, hi: float) -> float:
        """Integral of the straight lines between samples over [lo, hi] ∩ [t0, t_last]."""
        lo, hi = max(lo, self.start), min(hi, self.end)
        if hi <= lo or self.n < 2:
            return 0.0
        p = self.values
        m_a, f_a = self.locate(lo)
        m_b, f_b = self.locate(hi)
        whole = self._trapezoid_samples(m_a, m_b)  # from t[m_a] to t[m_b]
        return whole - self._partial(m_a, f_a, p) + self._partial(m_b, f_b, p)

    def _partial(self, m: int, f: float, p: np.ndarray) -> float:
        """Integral from t[m] to the point a fraction f into interval m."""
        if f == 0.0:
            return 0.0
        p0, p1 = float(p[m]), float(p[m + 1])
        width = self.t(m + 1) - self.t(m)
        return width * f * (p0 + (p0 + f * (p1 - p0))) / 2.0

    def _trapezoid_samples(self, i: int, j: int) -> float:
        if j <= i:
            return 0.0
        p = self.values[i : j + 1]
        if self.times is None:
            total = float(np.sum(p, dtype=np.float64)) - (float(p[0]) + float(p[-1])) / 2.0
            return self.period * total
        t = self.times[i : j + 1]
        return float(np.dot(np.diff(t), (p[1:] + p[:-1]).astype(np.float64)) / 2.0)

    def cells(self, lead: float) -> np.ndarray | None:
        """Cell edges for energy samples (sample k covers edges[k]..edges[k+1]); None = uniform."""
        if self.times is None:
            return None
        return np.concatenate(([lead], self.times))

    def energy_sum(self, lo: float, hi: float, edges: np.ndarray | None) -> float:
        """Energy samples over [lo, hi]: whole periods summed, cut periods pro rata."""
        e = self.values
        if edges is None:
            first = self.start - self.period
            u_a = (max(lo, first) - first) / self.period
            u_b = (min(hi, self.end) - first) / self.period
        else:
            u_a = _fractional_index(edges, max(lo, edges[0]))
            u_b = _fractional_index(edges, min(hi, edges[-1]))
        if u_b <= u_a:
            return 0.0
        m_a, m_b = min(int(u_a), self.n - 1), min(int(u_b), self.n - 1)
        f_a, f_b = u_a - m_a, u_b - m_b
        return (
            float(np.sum(e[m_a:m_b], dtype=np.float64)) - f_a * float(e[m_a]) + f_b * float(e[m_b])
        )


def _fractional_index(edges: np.ndarray, x: float) -> float:
    m = int(np.searchsorted(edges, x, side="right")) - 1
    m = min(max(m, 0), len(edges) - 2)
    width = edges[m + 1] - edges[m]
    return m + ((x - edges[m]) / width if width > 0 else 0.0)


def integrate(
    trace: PowerTrace, windows: list[Window], method: str
) -> tuple[list[WindowSums], TraceHealth]:
    """One pass over the trace: sums per window and the health of the whole trace."""
    if method not in METHODS:
        raise EnergyUsageError(f"unknown energy method {method!r}; use one of {', '.join(METHODS)}")
    kind = trace.kind
    if method == "sum" and kind != "energy":
        raise EnergyUsageError(
            f"method 'sum' is for energy-per-period traces; this one holds {kind}"
        )
    if method != "sum" and kind == "energy":
        raise EnergyUsageError(
            f"method {method!r} needs power samples; this trace holds energy per period "
            "(use --method sum)"
        )
    sums = [WindowSums(w) for w in windows]
    health = TraceHealth(nominal_period_s=trace.meta.get("sample_period_s"))
    previous: tuple[float, float] | None = None  # last (time, power-or-energy) of the last chunk
    for chunk in trace.iter_chunks():
        values = _power(chunk.values, kind)
        piece = _Piece(values, chunk.start, chunk.period, chunk.stored_times)
        _check_times(chunk, piece, previous, health)
        if kind == "energy":
            lead = piece.start - (health.nominal_period_s or 0.0)
            if previous is not None and piece.times is not None:
                lead = previous[0]  # explicit times: a sample covers the time since the last
            edges = piece.cells(lead)
            first = piece.start - piece.period if edges is None else float(edges[0])
            health.first_s = min(health.first_s, first)
            rate = _energy_rate(piece, edges)
            for s in sums:
                s.energy_j += piece.energy_sum(s.window.start, s.window.end, edges)
                _count_and_edges(s, piece, rate)
        else:
            health.first_s = min(health.first_s, piece.start)
            bridge = None
            if previous is not None:
                bridge = _Piece(
                    np.array([previous[1], values[0]], dtype=np.float64),
                    previous[0],
                    None,
                    np.array([previous[0], piece.start]),
                )
            for s in sums:
                w = s.window
                s.energy_j += piece.trapezoid(w.start, w.end)
                if bridge is not None:
                    s.energy_j += bridge.trapezoid(w.start, w.end)
                _count_and_edges(s, piece, values)
                if method == "mlperf-power":
                    i, j = piece.index_range(w.start, w.end, strict=True)
                    inside = np.asarray(values[i:j], dtype=np.float64)
                    positive = inside[inside > 0]
                    s.positive_sum_w += float(positive.sum())
                    s.positive_count += len(positive)
        health.last_s = max(health.last_s, piece.end)
        previous = (piece.end, float(values[-1]))
    return sums, health


def _energy_rate(piece: _Piece, edges: np.ndarray | None) -> np.ndarray:
    """Mean power of each energy sample over its period (for the edge term of uncertainty)."""
    widths = np.diff(edges) if edges is not None else piece.period
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.nan_to_num(np.asarray(piece.values, dtype=np.float64) / widths)


def _count_and_edges(s: WindowSums, piece: _Piece, values: np.ndarray) -> None:
    """Samples inside the window, and the largest |power| within reach of each edge: the
    power an edge misplaced by its timing uncertainty (plus one sample) could add or drop."""
    w = s.window
    i, j = piece.index_range(w.start, w.end)
    s.samples += max(j - i, 0)
    for side, (edge, margin) in enumerate(
        ((w.start, w.start_uncertainty_s), (w.end, w.end_uncertainty_s))
    ):
        reach = margin + (piece.period or 0.0)
        a, b = piece.index_range(edge - reach, edge + reach)
        a, b = max(a - 1, 0), min(b + 1, piece.n)  # the samples bracketing the edge too
        if b > a:
            peak = float(np.max(np.abs(np.asarray(values[a:b], dtype=np.float64))))
            s.edge_power_w[side] = max(s.edge_power_w[side], peak)


def _check_times(
    chunk: Chunk, piece: _Piece, previous: tuple[float, float] | None, health: TraceHealth
) -> None:
    """Non-monotonic time is fatal (the log is corrupt); gaps are recorded for the windows."""
    if piece.times is not None:
        steps = np.diff(piece.times)
        if health.nominal_period_s is None and len(steps):
            health.nominal_period_s = float(np.median(steps))
        bad = np.flatnonzero(steps <= 0)
        if len(bad):
            k = int(bad[0])
            raise EnergyError(
                f"power trace time does not increase at chunk {chunk.index} sample {k + 1} "
                f"({piece.times[k]:.6f} s then {piece.times[k + 1]:.6f} s); the meter's log is "
                "corrupt: re-record, or fix the timestamps before importing"
            )
    elif health.nominal_period_s is None:
        health.nominal_period_s = piece.period
    nominal = health.nominal_period_s
    if previous is not None:
        step = piece.start - previous[0]
        if step <= 0:
            raise EnergyError(
                f"power trace time goes backwards between chunks {chunk.index - 1} and "
                f"{chunk.index} ({previous[0]:.6f} s then {piece.start:.6f} s); the meter's log "
                "is corrupt: re-record"
            )
        if nominal and step > GAP_FACTOR * nominal:
            _add_gap(health, previous[0], piece.start)
    if piece.times is not None and nominal:
        for k in np.flatnonzero(np.diff(piece.times) > GAP_FACTOR * nominal)[:MAX_GAPS_KEPT]:
            _add_gap(health, float(piece.times[k]), float(piece.times[k + 1]))


def _add_gap(health: TraceHealth, start: float, end: float) -> None:
    health.gap_count += 1
    if len(health.gaps) < MAX_GAPS_KEPT:
        health.gaps.append((start, end))

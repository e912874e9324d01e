"""Energy per inference, average power and idle power from a trace and the run's windows.

The figures are gross (the whole measured supply over the timed window), as MLPerf Power and
MLPerf Tiny report them; idle power is measured before the run and reported beside them, and
subtracted only when the meter profile says so (then labelled as derived). Several windows
(MLPerf Tiny's five) give the median energy per inference. Anything that makes a figure
untrustworthy (a meter that stopped, a gap, an overload, an edge known too loosely) does not
hide the figure: it makes the result invalid with a reason saying what happened.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from .energy_integrate import EnergyError, TraceHealth, Window, WindowSums, integrate
from .energy_uncertainty import Uncertainty, unused_accuracy_keys, window_uncertainty
from .energy_windows import TIERS
from .power_trace import PowerTrace

SCHEMA = "edgebench.energy/1"
#: Timing uncertainty of a window's two edges beyond this share of its length invalidates it.
MAX_TIMING_SHARE = 0.01
DEFAULT_METHOD = {"power": "trapezoid", "current_voltage": "trapezoid", "energy": "sum"}
#: Meter events that make a window's energy untrustworthy: what happened, and the fix.
INVALIDATING_EVENTS = {
    "overload": ("range overload reported by the meter", "use a higher range and re-run"),
    "gap": ("the meter reported lost samples", "re-run (check the meter's link)"),
    "uncertain": (
        "the meter flagged its reading as uncertain",
        "use a range that fits the load (MLPerf Power fails > 1 % inside the window)",
    ),
}
LAB_LABEL = "lab measurement (not an MLPerf Power result)"
MLPERF_LABEL = (
    "MLPerf Power measurement (MLCommons power client/server with PTDaemon; valid as "
    "MLCommons' submission checker finds it)"
)

__all__ = ["EnergyError", "EnergyOptions", "Window", "compute_energy"]


@dataclass
class EnergyOptions:
    method: str = "auto"
    tier: str = "clock-mapping"
    subtract_idle: bool = False
    #: Per-window minimum length (s) the rules require, e.g. 10 s for MLPerf Tiny; 0 = none.
    min_window_s: float = 0.0
    notes: list[str] = field(default_factory=list)


def compute_energy(
    trace: PowerTrace,
    windows: list[Window],
    options: EnergyOptions,
    idle: Window | None = None,
) -> dict[str, Any]:
    """energy.json's content: figures, uncertainty, windows, validity and the reasons."""
    if not windows:
        raise EnergyError("no timed window to measure; the run produced no timed inferences")
    if options.tier not in TIERS:
        raise EnergyError(f"timing tier {options.tier!r}: use one of {', '.join(TIERS)}")
    meter = trace.meta.get("meter") or {}
    method = options.method
    if method == "auto":
        method = meter.get("energy_method") or DEFAULT_METHOD[trace.kind]
    wanted = [*windows, *([idle] if idle is not None else [])]
    sums, health = integrate(trace, wanted, method)
    accuracy = dict(meter.get("accuracy") or {})
    period = health.nominal_period_s or 0.0
    reasons: list[str] = []
    notes = list(options.notes)
    if not accuracy:
        notes.append("the meter states no accuracy: the uncertainty covers timing only")
    elif extra := unused_accuracy_keys(accuracy):
        notes.append(f"accuracy keys not used in the uncertainty: {', '.join(extra)}")
    if accuracy.get("range_pct") and not accuracy.get("range_w"):
        notes.append(
            "the meter states range_pct but not range_w (the range's full scale in W), so the "
            "range term is missing from the uncertainty"
        )
    if trace.status != "complete":
        reasons.append(f"the meter stopped mid-run ({trace.status}); the trace so far is kept")
    logged = trace.events()  # read once, not once per window and kind
    events = {kind: [e for e in logged if e.get("kind") == kind] for kind in INVALIDATING_EVENTS}
    rows = []
    for k, s in enumerate(sums):
        energy = _energy(s, method)
        uncertainty = window_uncertainty(s, energy, accuracy, period)
        rows.append((s, energy, uncertainty))
        problems = _window_problems(s, health, events, options)
        if k < len(windows):
            reasons += problems
        else:  # idle is reported beside the result, not part of it
            notes += [f"idle power unreliable: {p}" for p in problems]
    timed, idle_row = rows[: len(windows)], rows[len(windows) :]
    result: dict[str, Any] = {
        "schema": SCHEMA,
        "label": MLPERF_LABEL if meter.get("mlperf_power_valid") else LAB_LABEL,
        "method": method,
        "tier": options.tier,
        "trace_kind": trace.kind,
        "meter": meter,
        "windows": [_window_dict(s, e, u) for s, e, u in timed],
    }
    result.update(_summary(timed))
    if idle_row:
        s, energy, uncertainty = idle_row[0]
        idle_w = energy / s.window.duration if s.window.duration > 0 else None
        result["idle"] = {**_window_dict(s, energy, uncertainty), "power_w": idle_w}
        result["idle_power_w"] = idle_w
        if options.subtract_idle and idle_w is not None:
            result.update(_net_of_idle(timed, idle_w))
    else:
        result["idle_power_w"] = None
        notes.append("no idle window was recorded")
    result["idle_subtracted"] = bool(options.subtract_idle and idle_row)
    result["trace"] = {
        "directory": str(trace.directory),
        "status": trace.status,
        "clock": trace.clock,
        "sample_count": trace.sample_count,
        "span_s": list(trace.span) if trace.sample_count else None,
        "nominal_period_s": health.nominal_period_s,
        "gaps": health.gap_count,
        "overload_events": len(events["overload"]),
    }
    result["valid"] = not reasons
    result["reasons"] = list(dict.fromkeys(reasons))
    result["notes"] = notes
    return result


def _energy(s: WindowSums, method: str) -> float:
    if method != "mlperf-power":
        return s.energy_j
    if not s.positive_count:
        return 0.0
    return s.positive_sum_w / s.positive_count * s.window.duration


def _window_dict(s: WindowSums, energy: float, u: Uncertainty) -> dict[str, Any]:
    w = s.window
    per = energy / w.inferences if w.inferences else None
    return {
        **w.to_dict(),
        "energy_j": energy,
        "average_power_w": energy / w.duration if w.duration > 0 else None,
        "energy_per_inference_j": per,
        "samples": s.samples,
        "edge_power_w": list(s.edge_power_w),
        "uncertainty": u.to_dict(energy),
        "energy_per_inference_uncertainty_j": u.total_j / w.inferences if w.inferences else None,
    }


def _summary(rows: list[tuple[WindowSums, float, Uncertainty]]) -> dict[str, Any]:
    """The reported figures: one window as is; several, the median per inference (Tiny)."""
    counted = [(s, e, u) for s, e, u in rows if s.window.inferences]
    total_time = sum(s.window.duration for s, _, _ in rows)
    average = sum(e for _, e, _ in rows) / total_time if total_time > 0 else None
    if not counted:
        return {"energy_per_inference_j": None, "average_power_w": average, "uncertainty": None}
    per = [e / s.window.inferences for s, e, _ in counted]
    median = statistics.median(per)
    # The median of an odd count is one window's value: that window's bound applies. For an
    # even count it is the mean of two: the larger bound of the two covers it.
    order = sorted(range(len(per)), key=per.__getitem__)
    middle = order[(len(per) - 1) // 2 : len(per) // 2 + 1]
    bound = max(counted[k][2].total_j / counted[k][0].window.inferences for k in middle)
    return {
        "energy_per_inference_j": median,
        "energy_per_inference_uncertainty_j": bound,
        "energy_per_inference_relative_uncertainty": bound / abs(median) if median else None,
        "aggregate": "single window" if len(per) == 1 else f"median of {len(per)} windows",
        "average_power_w": average,
        "inferences": sum(s.window.inferences for s, _, _ in counted),
    }


def _net_of_idle(rows: list[tuple[WindowSums, float, Uncertainty]], idle_w: float) -> dict:
    per = [
        (e - idle_w * s.window.duration) / s.window.inferences
        for s, e, _ in rows
        if s.window.inferences
    ]
    return {
        "energy_per_inference_net_of_idle_j": statistics.median(per) if per else None,
        "net_of_idle_note": "derived: gross energy minus idle power x window length",
    }


def _window_problems(
    s: WindowSums, health: TraceHealth, events: dict[str, list[dict]], options: EnergyOptions
) -> list[str]:
    w = s.window
    name = w.label or "window"
    problems = []
    if w.duration <= 0:
        return [f"{name} is empty ({w.start:.6f} s to {w.end:.6f} s)"]
    if w.start < health.first_s or w.end > health.last_s:
        problems.append(
            f"the power trace covers {health.first_s:.3f}..{health.last_s:.3f} s but {name} "
            f"needs {w.start:.3f}..{w.end:.3f} s: start the meter earlier or stop it later"
        )
    gaps = [(a, b) for a, b in health.gaps if a < w.end and b > w.start]
    if gaps:
        a, b = max(gaps, key=lambda g: g[1] - g[0])
        problems.append(
            f"{len(gaps)} gap(s) in the power samples inside {name} (longest {b - a:.3f} s "
            f"from {a:.3f} s): the meter dropped samples; re-run"
        )
    for kind, (what, fix) in INVALIDATING_EVENTS.items():
        inside = [e for e in events[kind] if w.start <= e["t"] <= w.end]
        if inside:
            first = inside[0]
            problems.append(
                f"{what} at {first['t']:.3f} s in {name} "
                f"({first.get('text') or 'no detail'}): {fix}"
            )
    edges = w.start_uncertainty_s + w.end_uncertainty_s
    if edges > MAX_TIMING_SHARE * w.duration:
        problems.append(
            f"timing of {name} uncertain by {edges * 1e3:.3g} ms at its edges, more than "
            f"{MAX_TIMING_SHARE:.0%} of its {w.duration:.3g} s: run longer, or record the "
            "device's timestamp marks with the meter"
        )
    if w.inferences and options.min_window_s and w.duration < options.min_window_s:
        problems.append(
            f"{name} lasts {w.duration:.3g} s; the rules need >= {options.min_window_s:g} s"
        )
    return problems

"""What changed between two runs of the same benchmark: settings, system, and the metrics with
their spread, so a regression stands out from run-to-run noise.

A metric is flagged only when the two runs' intervals do not overlap: latency percentiles
and rates use their range over ten time blocks of each run's per-query times
(metrics/spread.py), accuracy its 95 % Wilson interval, energy its stated uncertainty
bound. Without per-query files (a run copied into a submission tree leaves them out) a
latency figure has no spread, and is shown but not judged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..agent.recorder import QUERY_FILES, read_queries
from ..metrics.spread import block_range, percentile, rate_range
from .results import ResultsError, load_result

SETTINGS_KEYS = (
    "mode",
    "scenario",
    "settings_profile",
    "submission_grade",
    "loop",
    "loadgen",
    "runtime",
    "affinity",
    "settings",
    "model",
    "dataset",
    "division",
    "edgebench_version",
    "device",
)
PERCENTILES = {"p50": 0.50, "p90": 0.90, "p99": 0.99}
NOISY_SYSTEM_KEYS = ("temperatures_c", "cpu_frequencies_khz")  # readings, not configuration


class CompareError(ResultsError):
    """Two runs that cannot be compared (different benchmark or mode)."""


@dataclass
class Difference:
    section: str
    key: str
    a: Any
    b: Any


@dataclass
class MetricChange:
    name: str
    unit: str
    a: float | None
    b: float | None
    a_interval: tuple[float, float] | None
    b_interval: tuple[float, float] | None
    relative_change: float | None  # (b - a) / a
    flagged: bool | None  # True: beyond the spread; None: no spread to judge by
    lower_is_better: bool

    @property
    def verdict(self) -> str:
        if self.flagged is None:
            return "no spread"
        if not self.flagged:
            return "within spread"
        worse = (
            (self.b or 0) > (self.a or 0) if self.lower_is_better else (self.b or 0) < (self.a or 0)
        )
        return "WORSE" if worse else "BETTER"


@dataclass
class Comparison:
    a: dict[str, Any]
    b: dict[str, Any]
    differences: list[Difference]
    metrics: list[MetricChange]

    @property
    def flagged(self) -> list[MetricChange]:
        return [m for m in self.metrics if m.flagged]

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": {k: self.a.get(k) for k in ("run_id", "benchmark", "scenario", "mode")},
            "b": {k: self.b.get(k) for k in ("run_id", "benchmark", "scenario", "mode")},
            "differences": [asdict(d) for d in self.differences],
            "metrics": [{**asdict(m), "verdict": m.verdict} for m in self.metrics],
        }


def compare_runs(run_a: Path, run_b: Path) -> Comparison:
    a, b = load_result(run_a), load_result(run_b)
    for key, value in (("benchmark", lambda r: r.get("benchmark")), ("mode", _timed)):
        if value(a) != value(b):
            raise CompareError(
                f"{run_a} ({a.get(key)}) and {run_b} ({b.get(key)}) differ in {key}; compare "
                f"two runs of the same benchmark, both timed or both accuracy runs"
            )
    settings = [_flatten({k: r.get(k) for k in SETTINGS_KEYS}) for r in (a, b)]
    differences = _differences("settings", *settings)
    differences += _differences("system", _system(a), _system(b))
    metrics = _performance(run_a, a, run_b, b) if _timed(a) else []
    metrics += _accuracy(a, b) + _energy(a, b)
    return Comparison(a, b, differences, metrics)


def _timed(result: dict[str, Any]) -> bool:
    """Performance, compliance and energy runs are all timed runs, comparable as such."""
    return result.get("mode") != "accuracy"


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, inner in value.items():
            flat.update(_flatten(inner, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: value}


def _system(result: dict[str, Any]) -> dict[str, Any]:
    system = dict(result.get("system") or {})
    packages = system.pop("packages", None) or []
    for key in NOISY_SYSTEM_KEYS:
        system.pop(key, None)
    flat = _flatten(system)
    flat.update({f"packages.{p.get('name')}": p.get("version") for p in packages})
    return flat


def _differences(section: str, a: dict[str, Any], b: dict[str, Any]) -> list[Difference]:
    return [
        Difference(section, key, a.get(key), b.get(key))
        for key in sorted(set(a) | set(b))
        if a.get(key) != b.get(key)
    ]


def _change(
    name: str,
    unit: str,
    a: tuple[float | None, tuple[float, float] | None],
    b: tuple[float | None, tuple[float, float] | None],
    lower_is_better: bool,
) -> MetricChange:
    (va, ia), (vb, ib) = a, b
    relative = (vb - va) / va if va and vb is not None else None
    flagged = None
    if ia is not None and ib is not None:
        flagged = ia[1] < ib[0] or ib[1] < ia[0]
    return MetricChange(name, unit, va, vb, ia, ib, relative, flagged, lower_is_better)


def _per_query(directory: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(issue times, latencies, completion times) in ns, if the run kept its per-query files."""
    queries = directory / "queries"
    if not all((queries / name).is_file() for name in QUERY_FILES):
        return None
    _, issued, completed = read_queries(str(queries))
    return (issued, completed - issued, completed) if len(completed) else None


def _scaled(value: float | None, centre: float | None, spread: tuple[float, float] | None):
    """The reported value with the relative spread the per-query figure has around `centre`
    (the per-query times are the agent's, a hair apart from the loop's own)."""
    if value is None or spread is None or not centre:
        return (value, None)
    return (value, (value * spread[0] / centre, value * spread[1] / centre))


def _performance(dir_a: Path, a: dict, dir_b: Path, b: dict) -> list[MetricChange]:
    queries_a, queries_b = _per_query(dir_a), _per_query(dir_b)
    changes = []
    offline = a.get("scenario") == "Offline"
    for name, p in ({} if offline else PERCENTILES).items():
        pair = []
        for result, queries in ((a, queries_a), (b, queries_b)):
            value = ((result.get("metrics") or {}).get("latency_ns") or {}).get(name)
            if queries is None:
                pair.append((value, None))
                continue
            issued, latencies, _ = queries
            statistic = percentile(p)
            spread = block_range(issued, latencies, statistic)
            pair.append(_scaled(value, statistic(latencies), spread))
        changes.append(_change(f"latency {name}", "ns", pair[0], pair[1], True))
    rate_key = "samples_per_second" if offline else "qps_with_loadgen_overhead"
    if a.get("scenario") == "Server":
        rate_key = "completed_samples_per_second"
    pair = []
    for result, queries in ((a, queries_a), (b, queries_b)):
        value = (result.get("metrics") or {}).get(rate_key)
        if queries is None:
            pair.append((value, None))
            continue
        completed = queries[2]
        span = float(completed.max() - completed.min()) / 1e9
        centre = len(completed) / span if span > 0 else None
        pair.append(_scaled(value, centre, rate_range(completed)))
    changes.append(_change(rate_key.replace("_", " "), "1/s", pair[0], pair[1], False))
    return changes


def _accuracy(a: dict, b: dict) -> list[MetricChange]:
    values = [((r.get("metrics") or {}).get("accuracy") or {}) for r in (a, b)]
    if not all(values):
        return []
    pair = [(v.get("value"), tuple(v["ci95"]) if v.get("ci95") else None) for v in values]
    return [_change(f"accuracy ({values[0].get('metric')})", "", pair[0], pair[1], False)]


def _energy(a: dict, b: dict) -> list[MetricChange]:
    energies = [r.get("energy") or {} for r in (a, b)]
    if not all(e.get("energy_per_inference_j") is not None for e in energies):
        return []
    pair = []
    for energy in energies:
        value, bound = (
            energy["energy_per_inference_j"],
            energy.get("energy_per_inference_uncertainty_j"),
        )
        pair.append((value, None if bound is None else (value - bound, value + bound)))
    changes = [_change("energy per inference", "J", pair[0], pair[1], True)]
    powers = [(e.get("average_power_w"), None) for e in energies]
    changes.append(_change("average power", "W", powers[0], powers[1], True))
    return changes

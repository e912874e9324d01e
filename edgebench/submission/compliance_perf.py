"""How a compliance run's performance compares with the submission's performance run.

MLPerf's verify_performance.py compares each scenario's primary figure: TEST01 must land
within the margin of the submission either way (logging a few outputs may not change the
speed), TEST04 must not be faster by more than the margin. The margin is 10 %, or 20 % when
the latency is tiny (SingleStream at most 0.2 ms, MultiStream at most 1.6 ms), where timer
and scheduling noise are a larger share of the figure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MARGIN = 0.10
TINY_MARGIN = 0.20
TINY_LATENCY_NS = {"SingleStream": 200_000, "MultiStream": 1_600_000}

# Scenario -> (metrics key in result.json, True when larger is faster)
PRIMARY = {
    "SingleStream": ("early_stopping_p90_latency_ns", False),
    "MultiStream": ("early_stopping_p99_query_latency_ns", False),
    "Server": ("completed_samples_per_second", True),
    "Offline": ("samples_per_second", True),
}


@dataclass(frozen=True)
class Comparison:
    """The two figures, the margin applied and the verdict, as the details record them."""

    metric: str
    reference: float | None
    compliance: float | None
    margin: float
    speedup: float | None  # compliance speed / reference speed (> 1: compliance faster)

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "reference": self.reference,
            "compliance": self.compliance,
            "margin": self.margin,
            "speedup": None if self.speedup is None else round(self.speedup, 4),
        }


def compare(scenario: str, reference: dict[str, Any], compliance: dict[str, Any]) -> Comparison:
    """Compare two result.json dicts of the same scenario by its primary figure."""
    key, larger_is_faster = PRIMARY[scenario]
    ref = (reference.get("metrics") or {}).get(key)
    test = (compliance.get("metrics") or {}).get(key)
    margin = MARGIN
    if ref is not None and ref <= TINY_LATENCY_NS.get(scenario, 0):
        margin = TINY_MARGIN
    speedup = None
    if ref and test:
        speedup = float(test) / float(ref) if larger_is_faster else float(ref) / float(test)
    return Comparison(key, ref, test, margin, speedup)


def problems_within(comparison: Comparison) -> list[str]:
    """TEST01: the compliance run must be neither faster nor slower beyond the margin."""
    if comparison.speedup is None:
        return [f"no {comparison.metric} to compare (reference or compliance run lacks it)"]
    if abs(comparison.speedup - 1.0) > comparison.margin:
        return [
            f"{comparison.metric} {comparison.compliance} differs from the performance run's "
            f"{comparison.reference} by more than {comparison.margin:.0%} "
            f"(speed ratio {comparison.speedup:.3f})"
        ]
    return []


def problems_not_faster(comparison: Comparison) -> list[str]:
    """TEST04: repeating one sample may not be faster beyond the margin."""
    if comparison.speedup is None:
        return [f"no {comparison.metric} to compare (reference or compliance run lacks it)"]
    if comparison.speedup > 1.0 + comparison.margin:
        return [
            f"the repeated sample ran {comparison.speedup:.2f}x as fast as distinct samples "
            f"({comparison.metric} {comparison.compliance} vs {comparison.reference}); more "
            f"than {comparison.margin:.0%} faster suggests cached or deduplicated results"
        ]
    return []

"""How far an energy figure can be from the truth: the meter's stated accuracy plus timing.

Both parts are bounds, added linearly (a worst case, not a standard deviation), so that a
result's stated uncertainty is a promise:
  meter   the vendor's accuracy for the range used: % of reading, % of range full scale (as
          power), and an offset floor (W), each over the window's length;
  timing  each window edge may be off by its timing uncertainty (clock mapping bound, mark
          resolution) plus one sample period (where, inside a sample interval, the edge and
          any step of power fall is unknown); the energy that could move across an edge is
          that time times the largest |power| near it (research note A3: edge quantization
          2 dt / T relative, sync error 2 delta / T).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .energy_integrate import WindowSums

#: MeterInfo.accuracy keys used here; a meter may state others (they are reported, not used).
ACCURACY_KEYS = ("reading_pct", "range_pct", "range_w", "floor_w")


@dataclass(frozen=True)
class Uncertainty:
    meter_j: float
    timing_j: float

    @property
    def total_j(self) -> float:
        return self.meter_j + self.timing_j

    def to_dict(self, energy_j: float) -> dict[str, Any]:
        return {
            "total_j": self.total_j,
            "relative": self.total_j / abs(energy_j) if energy_j else None,
            "meter_j": self.meter_j,
            "timing_j": self.timing_j,
        }


def meter_term(energy_j: float, duration_s: float, accuracy: dict[str, float]) -> float:
    reading = abs(energy_j) * accuracy.get("reading_pct", 0.0) / 100.0
    full_scale = accuracy.get("range_pct", 0.0) / 100.0 * accuracy.get("range_w", 0.0)
    return reading + (full_scale + accuracy.get("floor_w", 0.0)) * duration_s


def window_uncertainty(
    sums: WindowSums, energy_j: float, accuracy: dict[str, float], sample_period_s: float
) -> Uncertainty:
    w = sums.window
    timing = sum(
        power * (edge_uncertainty + sample_period_s)
        for power, edge_uncertainty in zip(
            sums.edge_power_w, (w.start_uncertainty_s, w.end_uncertainty_s), strict=True
        )
    )
    return Uncertainty(meter_term(energy_j, w.duration, accuracy), timing)


def unused_accuracy_keys(accuracy: dict[str, Any]) -> list[str]:
    return sorted(set(accuracy) - set(ACCURACY_KEYS))

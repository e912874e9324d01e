"""The virtual device's activity as whole-array signals, for fast-sampling meter emulators.

A PPK2 emulator produces 100 000 samples a second and an Otii one thousands: evaluating the
activity timeline one sample at a time (power_model.ActivityTimeline.energies) would eat the
shared CPU. Here the activity file becomes two step signals, the measured level (current or
power, idle/active) and the timestamp pin, each evaluated on arrays of sample edges with
numpy. Means over a sample period are exact for steps, so an emulator's truth is the same
timeline that power_model integrates for the tests.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .activity import ActivityTail


class Steps:
    """A piecewise-constant signal from time-stamped changes (t_ns non-decreasing)."""

    def __init__(self, initial: float) -> None:
        self.initial = initial
        self.times: list[int] = []
        self.values: list[float] = []

    def add(self, t_ns: int, value: float) -> None:
        self.times.append(t_ns)
        self.values.append(value)

    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(self.times, dtype=np.int64), np.asarray([self.initial, *self.values])

    def at(self, t_ns: np.ndarray) -> np.ndarray:
        """The level at each time (a change at t applies from t on)."""
        cuts, levels = self._arrays()
        return levels[np.searchsorted(cuts, t_ns, side="right")]

    def means(self, edges_ns: np.ndarray) -> np.ndarray:
        """Mean level over each interval between consecutive edges (exact for steps)."""
        cuts, levels = self._arrays()
        first, last = edges_ns[0], edges_ns[-1]
        knots = np.concatenate([[first], cuts[(cuts > first) & (cuts < last)]])
        knot_levels = levels[np.searchsorted(cuts, knots, side="right")]
        widths = np.diff(np.concatenate([knots, [last]]))
        area_at_knot = np.concatenate([[0.0], np.cumsum(knot_levels * widths)])
        k = np.searchsorted(knots, edges_ns, side="right") - 1
        area = area_at_knot[k] + knot_levels[k] * (edges_ns - knots[k])
        return np.diff(area) / np.diff(edges_ns)

    def changes(self, after_ns: int, until_ns: int) -> list[tuple[int, float]]:
        """(t_ns, new level) of the changes in (after, until]."""
        return [
            (t, v) for t, v in zip(self.times, self.values, strict=True) if after_ns < t <= until_ns
        ]


class ActivitySignals:
    """The activity file tailed into a level signal (idle/active) and the timestamp pin."""

    def __init__(self, path: Path | None, idle: float, active: float) -> None:
        self.tail = ActivityTail(path) if path is not None else None
        self.idle = idle
        self.active = active
        self.level = Steps(idle)
        self.pin = Steps(1.0)  # MLPerf Tiny's timestamp line idles high

    def refresh(self) -> None:
        """Take in the events written since the last call."""
        for event in self.tail.poll() if self.tail is not None else []:
            if "state" in event:
                value = self.active if event["state"] == "active" else self.idle
                self.level.add(event["t_ns"], value)
            else:
                self.pin.add(event["t_ns"], float(event["pin"]))

"""The "physics" the meter emulators share: a device's power over time from its activity file.

A virtual device writes when it turns active or idle and when its timestamp pin moves (JSON
lines, `time.monotonic_ns()` on this host; see METER_CONTRACT.md). Each emulator samples that
one timeline the way its instrument would (a wattmeter averages over its update interval, the
LPM01A integrates energy per sample period), adds noise and quantizes to its resolution. Tests
ask the same timeline for the exact energy over any window, so they know the truth the meter
approximated, and how far off each reading may honestly be.

The file grows while an emulator runs, so the timeline tails it (edgebench.lab.activity):
`refresh()` takes the lines completed since the last call. Power before the first record is
the idle power.
"""

from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .activity import ActivityTail


@dataclass(frozen=True)
class PowerModel:
    """Idle/active power of the device, and the meter's imperfections."""

    idle_w: float
    active_w: float
    noise_w: float = 0.0
    resolution_w: float = 0.0

    def state_power(self, state: str) -> float:
        """Power in a state the activity reader has already checked (idle or active)."""
        return self.active_w if state == "active" else self.idle_w

    def reading(self, true_w: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """What the meter shows for these true values: noise, then its resolution."""
        shown = np.asarray(true_w, dtype=float)
        if self.noise_w > 0:
            shown = shown + rng.normal(0.0, self.noise_w, shown.shape)
        if self.resolution_w > 0:
            shown = np.round(shown / self.resolution_w) * self.resolution_w
        return shown


class ActivityTimeline:
    """Piecewise-constant power and pin edges from an activity file (which may still grow)."""

    def __init__(self, path: Path | None, model: PowerModel) -> None:
        self.tail = ActivityTail(path) if path is not None else None
        self.model = model
        self._times: list[int] = []  # t_ns where the power changes
        self._power: list[float] = []  # power from that time on
        self.falling_edges: list[int] = []  # t_ns where the pin went low
        self._pin = 1

    def refresh(self) -> None:
        """Take in the events written since the last call."""
        for event in self.tail.poll() if self.tail is not None else []:
            self._take(event)

    def _take(self, record: dict) -> None:
        t_ns = int(record["t_ns"])
        if "state" in record:
            self._times.append(t_ns)
            self._power.append(self.model.state_power(str(record["state"])))
        if "pin" in record:
            level = int(record["pin"])
            if self._pin and not level:
                self.falling_edges.append(t_ns)
            self._pin = level

    def power_at(self, t_ns: int) -> float:
        index = bisect.bisect_right(self._times, t_ns) - 1
        return self._power[index] if index >= 0 else self.model.idle_w

    def energy(self, t0_ns: int, t1_ns: int) -> float:
        """Exact energy in J drawn in [t0, t1] (the truth a test compares against)."""
        if t1_ns <= t0_ns:
            return 0.0
        total = 0.0
        start = t0_ns
        index = bisect.bisect_right(self._times, t0_ns)
        while start < t1_ns:
            change = self._times[index] if index < len(self._times) else t1_ns
            end = min(change, t1_ns)
            total += self.power_at(start) * (end - start) * 1e-9
            start = end
            index += 1
        return total

    def energies(self, edges_ns: np.ndarray) -> np.ndarray:
        """Energy in each interval between consecutive edges (one sample period each)."""
        return np.array([self.energy(a, b) for a, b in itertools.pairwise(edges_ns)])

"""The "physics" the meter emulators share: a device's power over time from its activity file.

A virtual device writes when it turns active or idle and when its timestamp pin moves (JSON
lines, `time.monotonic_ns()` on this host; see METER_CONTRACT.md). Each emulator samples that
one timeline the way its instrument would (a wattmeter averages over its update interval, the
LPM01A integrates energy per sample period, a PPK2 streams 100 000 means a second), adds noise
and quantizes to its resolution. Tests ask the same timeline for the exact energy over any
window, so they know the truth the meter approximated, and how far off each reading may
honestly be.

Both the level and the pin are step signals evaluated on whole arrays of sample edges with
numpy: fast enough for the fastest emulator, and exact for steps, so the emulators and the
tests' truth come from one implementation. The file grows while an emulator runs, so the
timeline tails it (edgebench.lab.activity): `refresh()` takes the lines completed since the
last call. Power before the first record is the idle power; the pin idles high (MLPerf
Tiny's timestamp line).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .activity import ActivityTail


@dataclass(frozen=True)
class PowerModel:
    """Idle/active level of the device (W, or A for meters that measure current), and the
    meter's imperfections."""

    idle_w: float
    active_w: float
    noise_w: float = 0.0
    resolution_w: float = 0.0

    def state_power(self, state: str) -> float:
        """Level in a state the activity reader has already checked (idle or active)."""
        return self.active_w if state == "active" else self.idle_w

    def reading(self, true_w: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """What the meter shows for these true values: noise, then its resolution."""
        shown = np.asarray(true_w, dtype=float)
        if self.noise_w > 0:
            shown = shown + rng.normal(0.0, self.noise_w, shown.shape)
        if self.resolution_w > 0:
            shown = np.round(shown / self.resolution_w) * self.resolution_w
        return shown


class Steps:
    """A piecewise-constant signal from time-stamped changes (t_ns non-decreasing)."""

    def __init__(self, initial: float) -> None:
        self.initial = initial
        self.times: list[int] = []
        self.values: list[float] = []

    def add(self, t_ns: int, value: float) -> None:
        self.times.append(t_ns)
        self.values.append(value)

    @property
    def last(self) -> float:
        """The level after every change so far."""
        return self.values[-1] if self.values else self.initial

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


class ActivityTimeline:
    """The activity file (which may still grow) as the device's level and its timestamp pin."""

    def __init__(self, path: Path | None, model: PowerModel) -> None:
        self.tail = ActivityTail(path) if path is not None else None
        self.model = model
        self.level = Steps(model.idle_w)
        self.pin = Steps(1.0)
        self.falling_edges: list[int] = []  # t_ns where the pin went low

    def refresh(self) -> None:
        """Take in the events written since the last call."""
        for event in self.tail.poll() if self.tail is not None else []:
            t_ns = int(event["t_ns"])
            if "state" in event:
                self.level.add(t_ns, self.model.state_power(str(event["state"])))
            else:
                level = float(event["pin"])
                if self.pin.last and not level:
                    self.falling_edges.append(t_ns)
                self.pin.add(t_ns, level)

    def energies(self, edges_ns: np.ndarray) -> np.ndarray:
        """Energy in J in each interval between consecutive edges (one sample period each)."""
        edges_ns = np.asarray(edges_ns, dtype=np.int64)
        return self.level.means(edges_ns) * np.diff(edges_ns) * 1e-9

    def energy(self, t0_ns: int, t1_ns: int) -> float:
        """Exact energy in J drawn in [t0, t1] (the truth a test compares against)."""
        if t1_ns <= t0_ns:
            return 0.0
        return float(self.energies(np.array([t0_ns, t1_ns]))[0])

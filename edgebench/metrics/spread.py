"""How much a run's figures move within the run itself: the spread `edgebench compare` needs
before it calls a difference between two runs a change.

The run is cut into equal time blocks and the figure is computed in each; its spread is the
range over the blocks. Sampling intervals (order statistics, standard errors) would be far
too narrow here: a run holds tens of thousands of latencies, so they shrink to nanoseconds,
while what really moves a figure from one run to the next is drift (caches, frequency,
throttling, a background job), which the block range shows.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

BLOCKS = 10


def percentile(p: float) -> Callable[[np.ndarray], float]:
    """LoadGen's percentile: sorted[floor(n * p)]."""

    def statistic(values: np.ndarray) -> float:
        ordered = np.sort(values)
        return float(ordered[min(int(len(ordered) * p), len(ordered) - 1)])

    return statistic


def block_range(
    times_ns: np.ndarray,
    values: np.ndarray,
    statistic: Callable[[np.ndarray], float],
    blocks: int = BLOCKS,
) -> tuple[float, float] | None:
    """(lowest, highest) of `statistic` over the values in each equal time block; None when a
    block would hold too few values to mean anything."""
    if len(times_ns) < 20 * blocks:
        return None
    edges = np.linspace(float(times_ns.min()), float(times_ns.max()), blocks + 1)
    which = np.clip(np.searchsorted(edges, times_ns, side="right") - 1, 0, blocks - 1)
    groups = [values[which == block] for block in range(blocks)]
    figures = [statistic(group) for group in groups if len(group)]
    return min(figures), max(figures)


def rate_range(completions_ns: np.ndarray, blocks: int = BLOCKS) -> tuple[float, float] | None:
    """(lowest, highest) completions per second over equal time blocks."""
    if len(completions_ns) < 20 * blocks:
        return None
    start, end = float(completions_ns.min()), float(completions_ns.max())
    if end <= start:
        return None
    counts, _ = np.histogram(completions_ns, bins=np.linspace(start, end, blocks + 1))
    rates = counts / ((end - start) / blocks / 1e9)
    return float(rates.min()), float(rates.max())

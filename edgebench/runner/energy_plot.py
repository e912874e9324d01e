"""power.png: the power trace with the timed windows (and the idle window) marked.

A trace may hold 10^8 samples; a plot needs a few thousand columns. The trace is streamed
into fixed time bins keeping each bin's min, max and mean, so the envelope shows every spike
while memory stays at a few bins' worth. matplotlib is optional: without it there is no plot
and the caller gets a one-line note saying how to get one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..metrics.power_trace import PowerTrace

PLOT_FILE = "power.png"
BINS = 2000


class PlotUnavailable(RuntimeError):
    """matplotlib is missing; the message says how to install it."""


def envelope(
    trace: PowerTrace, bins: int = BINS
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(bin centres s, min W, max W, mean W) over the trace's span; empty bins are NaN."""
    first, last = trace.span
    edges = np.linspace(first, last if last > first else first + 1.0, bins + 1)
    low = np.full(bins, np.inf)
    high = np.full(bins, -np.inf)
    total = np.zeros(bins)
    count = np.zeros(bins)
    for chunk in trace.iter_chunks():
        values = np.asarray(chunk.values, dtype=np.float64)
        if trace.kind == "current_voltage":
            values = values[:, 0] * values[:, 1]
        elif trace.kind == "energy":
            values = values / (chunk.period or np.median(np.diff(chunk.times)) or 1.0)
        index = np.clip(np.searchsorted(edges, chunk.times, side="right") - 1, 0, bins - 1)
        # samples are in time order, so each bin is one contiguous run: reduce runs at once
        starts = np.concatenate(([0], np.flatnonzero(np.diff(index)) + 1))
        where = index[starts]
        low[where] = np.minimum(low[where], np.minimum.reduceat(values, starts))
        high[where] = np.maximum(high[where], np.maximum.reduceat(values, starts))
        total[where] += np.add.reduceat(values, starts)
        count[where] += np.diff(np.append(starts, len(values)))
    empty = count == 0
    low[empty] = high[empty] = np.nan
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
    return (edges[:-1] + edges[1:]) / 2, low, high, mean


def plot_trace(trace: PowerTrace, energy: dict[str, Any], path: Path) -> Path:
    """Write the PNG; PlotUnavailable if matplotlib cannot be imported."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlotUnavailable(
            "matplotlib is not installed, so no power.png; `pip install matplotlib` for plots"
        ) from None
    centres, low, high, mean = envelope(trace, min(BINS, max(trace.sample_count, 1)))
    origin = centres[0] if len(centres) else 0.0
    filled = np.isfinite(mean)  # bins with samples; a line through empty ones would break
    centres, low, high, mean = centres[filled], low[filled], high[filled], mean[filled]
    figure, axes = plt.subplots(figsize=(11, 4), dpi=110)
    x = centres - origin
    axes.fill_between(x, low, high, color="tab:blue", alpha=0.3, linewidth=0, label="min-max")
    axes.plot(x, mean, color="tab:blue", linewidth=0.8, label="mean")
    for k, window in enumerate(energy.get("windows") or []):
        axes.axvspan(
            window["start_s"] - origin,
            window["end_s"] - origin,
            color="tab:green",
            alpha=0.15,
            label="timed window" if k == 0 else None,
        )
    idle = energy.get("idle")
    if idle:
        axes.axvspan(
            idle["start_s"] - origin, idle["end_s"] - origin, color="grey", alpha=0.2, label="idle"
        )
    per = energy.get("energy_per_inference_j")
    title = f"{energy.get('method')} / {energy.get('tier')}"
    if per is not None:
        title += f": {per * 1e6:.4g} uJ per inference"
    axes.set_title(title + ("" if energy.get("valid") else " (INVALID)"))
    axes.set_xlabel(f"time (s, meter clock from {origin:.3f} s)")
    axes.set_ylabel("power (W)")
    axes.legend(loc="upper right", fontsize="small")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path

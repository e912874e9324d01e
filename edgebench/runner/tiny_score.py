"""MLPerf Tiny figures from measured windows: throughput, accuracy, and results.txt lines.

Pure functions of the windows (as device.run wrote them to windows.jsonl, or as read back
from dut_log.txt), so a finished run can be scored again from its raw log alone.
"""

from __future__ import annotations

import statistics
from typing import Any

import numpy as np

from ..metrics.accuracy import AccuracyResult, anomaly_auc, top1
from ..suite.benchmarks import Benchmark
from .scoring import _mean_per_group

WINDOW_COUNT = 5  # MLPerf Tiny: the median of five windows, each on a different input
MIN_WINDOW_S = {"quick": 1.0, "submission": 10.0}  # each timed window lasts at least this


def window_figures(window: dict[str, Any]) -> dict[str, Any]:
    """One performance window: DUT seconds and inferences per second (None without laps)."""
    elapsed_us = window.get("elapsed_us")
    seconds = None if not elapsed_us else elapsed_us / 1e6
    throughput = None if seconds is None else window["iterations"] / seconds
    return {
        "window": window["window"],
        "sample": window["sample"],
        "iterations": window["iterations"],
        "warmups": window["warmups"],
        "elapsed_s": seconds,
        "throughput": throughput,
    }


def performance(
    windows: list[dict[str, Any]], min_window_s: float
) -> tuple[dict[str, Any], list[str]]:
    """Median throughput, latency = 1 / median, and why the run is not valid (if it is not)."""
    figures = [window_figures(w) for w in windows]
    rates = [f["throughput"] for f in figures if f["throughput"]]
    reasons = []
    if len(rates) < len(figures):
        reasons.append(
            "the DUT printed no m-lap-us timestamps for some windows: its firmware is built "
            "for energy timing; flash the performance build (or run -m energy)"
        )
    if len(figures) != WINDOW_COUNT:
        reasons.append(f"{len(figures)} windows measured, MLPerf Tiny needs {WINDOW_COUNT}")
    if len({f["sample"] for f in figures}) != len(figures):
        reasons.append("windows reused an input; each must run on a different one")
    short = [f for f in figures if f["elapsed_s"] is not None and f["elapsed_s"] < min_window_s]
    if short:
        reasons.append(
            f"{len(short)} window(s) shorter than {min_window_s:g} s "
            f"(shortest {min(f['elapsed_s'] for f in short):.3f} s)"
        )
    median = statistics.median(rates) if rates else None
    metrics = {
        "primary": ("median throughput (inf./s)", median),
        "median_throughput": median,
        "latency_ms": None if not median else 1000.0 / median,
        "windows": figures,
    }
    return metrics, reasons


def energy_windows(windows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the energy step needs per window: order, N, and the host's view of its span.

    In energy timing the DUT prints no laps; the meter's own trace holds the timestamp
    edges. The host times only bracket each window, so a trace can be matched to it.
    """
    return [
        {
            "window": w["window"],
            "sample": w["sample"],
            "iterations": w["iterations"],
            "warmups": w["warmups"],
            "host_sent_unix": w["host_sent_unix"],
            "host_sent_mono": w["host_sent_mono"],
            "host_start_mono": w["host_start_mono"],
            "host_done_mono": w["host_done_mono"],
        }
        for w in windows
    ]


def energy_metrics(energy: dict[str, Any] | None) -> dict[str, Any]:
    """The energy figure as MLPerf Tiny reports it: median energy per inference, in uJ."""
    joules = (energy or {}).get("energy_per_inference_j")
    micro = None if joules is None else joules * 1e6
    return {"primary": ("median energy (uJ/inf.)", micro), "median_energy_uj": micro}


def dataset_labels(benchmark: Benchmark) -> tuple[np.ndarray, np.ndarray | None]:
    """The evaluation set's labels, and each sample's source file (ad01's windows) or None."""
    with np.load(benchmark.dataset_path) as data:
        return data["y"], (data["group"] if "group" in data.files else None)


def accuracy(
    benchmark: Benchmark,
    windows: list[dict[str, Any]],
    labels: np.ndarray,
    groups: np.ndarray | None,
) -> AccuracyResult:
    """Top-1 or AUC over the samples the windows ran, as MLPerf Tiny's runner scores them.

    Anomaly scores (one value per window) are averaged per source file (`groups`, ad01's
    windows); class vectors are compared by argmax, which normalising them would not change.
    """
    indices = np.array([w["sample"] for w in windows], dtype=np.int64)
    outputs = [w["results"] for w in windows]
    expected = 1 if benchmark.metric == "auc" else int(np.prod(benchmark.output.shape))
    wrong = [(w["sample"], len(w["results"])) for w in windows if len(w["results"]) != expected]
    if wrong:
        sample, count = wrong[0]
        raise ValueError(
            f"the DUT printed {count} result values for sample {sample} ({len(wrong)} "
            f"sample(s) so), {benchmark.name} expects {expected}; is its firmware built for "
            f"another model?"
        )
    if benchmark.metric == "auc":
        scores = np.array([values[0] for values in outputs], dtype=np.float64)
        truth = labels[indices]
        if groups is not None:
            scores, truth = _mean_per_group(scores, truth, groups[indices])
        return anomaly_auc(scores, truth, benchmark.target)
    return top1(np.array(outputs, dtype=np.float64), labels[indices], benchmark.target)


def results_lines(
    mode: str, metrics: dict[str, Any], accuracy_result: AccuracyResult | None
) -> list[str]:
    """results.txt in the wording MLPerf Tiny's submission checker matches."""
    lines: list[str] = []
    for figure in metrics.get("windows", []):
        if figure.get("throughput"):
            lines.append(
                f"Window {figure['window']}: sample {figure['sample']}, {figure['iterations']} "
                f"inferences in {figure['elapsed_s']:.6f} s = {figure['throughput']:.3f} inf./sec."
            )
    if mode == "performance" and metrics.get("median_throughput"):
        lines.append(f"Median throughput is {metrics['median_throughput']:.3f} inf./sec.")
        lines.append(f"Latency is {metrics['latency_ms']:.3f} ms (1000 / median throughput).")
    if mode == "energy" and metrics.get("median_energy_uj") is not None:
        lines.append(f"Median energy cost is {metrics['median_energy_uj']:.3f} uJ/inf.")
    if accuracy_result is not None:
        if accuracy_result.metric == "auc":
            lines.append(f"AUC: {accuracy_result.value:.4f}")
        else:
            lines.append(f"Top-1: {accuracy_result.value * 100:.1f}%")
    return lines

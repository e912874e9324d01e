"""Accuracy of an accuracy-mode run: decode the accuracy log, score it, write accuracy.txt."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..metrics.accuracy import (
    AccuracyResult,
    anomaly_auc,
    format_accuracy_txt,
    read_accuracy_log,
    reconstruction_scores,
    top1,
)
from ..suite.benchmarks import Benchmark, sha256_file

ACCURACY_LOGS = ("mlperf_log_accuracy.json", "native_log_accuracy.json")


class ScoringError(ValueError):
    """The accuracy log cannot be scored against the benchmark's evaluation set."""


def find_accuracy_log(directory: Path) -> Path:
    for name in ACCURACY_LOGS:
        if (directory / name).is_file():
            return directory / name
    raise ScoringError(f"{directory}: no accuracy log ({' or '.join(ACCURACY_LOGS)})")


def score(benchmark: Benchmark, directory: Path) -> AccuracyResult:
    """Score the run in `directory` and write its accuracy.txt beside the log."""
    if benchmark.dataset_path is None or benchmark.metric == "none":
        raise ScoringError(
            f"{benchmark.name}: no labelled evaluation set, so accuracy cannot be scored "
            f"(give --data-dir with labelled data, or run -m performance)"
        )
    log = find_accuracy_log(directory)
    per_sample = int(np.prod(benchmark.output.shape))
    outputs = read_accuracy_log(log, benchmark.output.dtype, per_sample)
    with np.load(benchmark.dataset_path) as data:
        labels = data["y"]
        inputs = data["x"] if benchmark.metric == "auc" else None
        groups = data["group"] if "group" in data.files else None
    missing = len(labels) - len(outputs)
    if missing:
        raise ScoringError(
            f"{log.name} holds {len(outputs)} of {len(labels)} samples; "
            f"the run did not finish (rerun the accuracy mode)"
        )
    ordered = np.stack([outputs[i] for i in range(len(labels))])
    if benchmark.metric == "top1":
        result = top1(ordered, labels, benchmark.target)
    elif benchmark.metric == "auc":
        scores = reconstruction_scores(
            inputs,
            ordered,
            (benchmark.input.scale, benchmark.input.zero_point),
            (benchmark.output.scale, benchmark.output.zero_point),
        )
        if groups is not None:
            scores, labels = _mean_per_group(scores, labels, groups)
        result = anomaly_auc(scores, labels, benchmark.target)
    else:
        raise ScoringError(f"{benchmark.name}: unknown metric {benchmark.metric!r}")
    (directory / "accuracy.txt").write_text(format_accuracy_txt(result, sha256_file(log)))
    return result


def _mean_per_group(
    scores: np.ndarray, labels: np.ndarray, groups: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Average window scores per source file, as MLPerf Tiny's AD scoring does."""
    keys, inverse = np.unique(groups, return_inverse=True)
    totals = np.bincount(inverse, weights=scores)
    counts = np.bincount(inverse)
    first = np.zeros(len(keys), dtype=int)
    first[inverse[::-1]] = np.arange(len(inverse))[::-1]
    return totals / counts, labels[first]

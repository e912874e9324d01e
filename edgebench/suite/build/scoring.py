"""Accuracy metrics and their 95 % confidence intervals (numpy only).

Why our own: the orchestrator, the tests and the worker must agree on exactly
one definition, and scikit-learn is a build-only dependency. Top-1 gets a
Wilson score interval (good coverage even near 100 %); ROC AUC gets a
stratified percentile bootstrap with a fixed seed, so the interval is
reproducible to the last digit.
"""

from __future__ import annotations

import math

import numpy as np

Z95 = 1.959963984540054
"""Two-sided 95 % standard normal quantile."""

BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0


def top1(predicted: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of samples whose predicted class equals the label."""
    return float(np.mean(np.asarray(predicted) == np.asarray(labels)))


def wilson_interval(successes: int, total: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion ``successes / total``."""
    if total <= 0:
        raise ValueError("wilson_interval needs total > 0")
    p = successes / total
    denom = 1.0 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of ``values``; tied values share the mean of their ranks."""
    order = np.argsort(values, kind="mergesort")
    sorted_vals = values[order]
    _, first, counts = np.unique(sorted_vals, return_index=True, return_counts=True)
    mean_rank = first + (counts + 1) / 2.0
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.repeat(mean_rank, counts)
    return ranks


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve, label 1 = positive (anomaly), via the rank-sum statistic.

    Equal to ``sklearn.metrics.roc_auc_score`` including its handling of ties.
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    n_pos = int(np.sum(labels == 1))
    n_neg = int(np.sum(labels == 0))
    if n_pos == 0 or n_neg == 0:
        raise ValueError("roc_auc needs both classes")
    ranks = _average_ranks(scores)
    rank_sum = float(np.sum(ranks[labels == 1]))
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def auc_bootstrap_interval(
    scores: np.ndarray,
    labels: np.ndarray,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float]:
    """95 % percentile bootstrap interval of the ROC AUC.

    Stratified: positives and negatives are resampled separately, so every
    resample keeps the class counts of the eval set.
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    pos = scores[labels == 1]
    neg = scores[labels == 0]
    rng = np.random.default_rng(seed)
    stats = np.empty(resamples, dtype=np.float64)
    both_labels = np.concatenate([np.ones(len(pos), np.int64), np.zeros(len(neg), np.int64)])
    for i in range(resamples):
        p = pos[rng.integers(0, len(pos), len(pos))]
        n = neg[rng.integers(0, len(neg), len(neg))]
        stats[i] = roc_auc(np.concatenate([p, n]), both_labels)
    lo, hi = np.quantile(stats, [0.025, 0.975])
    return float(lo), float(hi)


def metric_and_interval(
    kind: str, labels: np.ndarray, predicted_or_scores: np.ndarray
) -> tuple[float, tuple[float, float]]:
    """Compute the benchmark metric (``top1`` or ``auc``) and its 95 % interval."""
    if kind == "top1":
        correct = int(np.sum(np.asarray(predicted_or_scores) == np.asarray(labels)))
        return correct / len(labels), wilson_interval(correct, len(labels))
    if kind == "auc":
        return roc_auc(predicted_or_scores, labels), auc_bootstrap_interval(
            predicted_or_scores, labels
        )
    raise ValueError(f"unknown metric {kind!r}; expected 'top1' or 'auc'")

"""Accuracy metrics computed from the accuracy log, as MLPerf's accuracy scripts do.

LoadGen logs raw response bytes per sample and records no dtype, so decoding needs the
output tensor's spec. Both metrics come with a 95 % interval because the bundled evaluation
sets are small (hundreds to a few thousand samples): a target missed by less than the
interval is not the same finding as one missed by ten points.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

Z95 = 1.959963984540054


@dataclass(frozen=True)
class AccuracyResult:
    metric: str
    value: float
    ci95: tuple[float, float]
    count: int
    target: float | None

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.value >= self.target

    def to_dict(self) -> dict:
        data = asdict(self)
        data["met"] = self.met
        return data


def read_accuracy_log(path: Path, dtype: str, per_sample: int) -> dict[int, np.ndarray]:
    """Outputs by sample index; duplicates (same qsl_idx) keep the first, as MLPerf does."""
    with open(path) as handle:
        entries = json.load(handle)
    outputs: dict[int, np.ndarray] = {}
    for entry in entries:
        index = int(entry["qsl_idx"])
        if index in outputs:
            continue
        values = np.frombuffer(bytes.fromhex(entry["data"]), dtype=dtype)
        if values.size != per_sample:
            raise ValueError(
                f"{path}: sample {index} has {values.size} values, expected {per_sample}; "
                f"the output dtype or shape does not match the model"
            )
        outputs[index] = values
    return outputs


def wilson_interval(good: int, total: int) -> tuple[float, float]:
    if total == 0:
        return (0.0, 0.0)
    p = good / total
    denominator = 1 + Z95**2 / total
    centre = (p + Z95**2 / (2 * total)) / denominator
    half = Z95 * math.sqrt(p * (1 - p) / total + Z95**2 / (4 * total**2)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


def top1(outputs: np.ndarray, labels: np.ndarray, target: float | None = None) -> AccuracyResult:
    """Fraction of samples whose highest output is the label (0..1)."""
    good = int(np.sum(np.argmax(outputs, axis=1) == labels))
    total = len(labels)
    return AccuracyResult("top1", good / total, wilson_interval(good, total), total, target)


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve by the rank-sum (Mann-Whitney) statistic, ties averaged."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(bool)
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if positives == 0 or negatives == 0:
        raise ValueError("AUC needs both normal and anomalous samples")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    start = 0
    while start < len(scores):
        stop = start
        while stop + 1 < len(scores) and sorted_scores[stop + 1] == sorted_scores[start]:
            stop += 1
        ranks[order[start : stop + 1]] = (start + stop) / 2 + 1
        start = stop + 1
    rank_sum = ranks[labels].sum()
    return float((rank_sum - positives * (positives + 1) / 2) / (positives * negatives))


def hanley_mcneil_interval(auc: float, positives: int, negatives: int) -> tuple[float, float]:
    q1 = auc / (2 - auc)
    q2 = 2 * auc**2 / (1 + auc)
    variance = (
        auc * (1 - auc) + (positives - 1) * (q1 - auc**2) + (negatives - 1) * (q2 - auc**2)
    ) / (positives * negatives)
    half = Z95 * math.sqrt(max(variance, 0.0))
    return (max(0.0, auc - half), min(1.0, auc + half))


def anomaly_auc(
    scores: np.ndarray, labels: np.ndarray, target: float | None = None
) -> AccuracyResult:
    labels = np.asarray(labels).astype(bool)
    value = roc_auc(scores, labels)
    interval = hanley_mcneil_interval(value, int(labels.sum()), int((~labels).sum()))
    return AccuracyResult("auc", value, interval, len(labels), target)


def reconstruction_scores(
    inputs: np.ndarray,
    outputs: np.ndarray,
    input_quant: tuple[float, int],
    output_quant: tuple[float, int],
) -> np.ndarray:
    """Autoencoder anomaly score: mean squared error of the dequantized reconstruction."""
    x = (inputs.reshape(len(inputs), -1).astype(np.float64) - input_quant[1]) * input_quant[0]
    y = (outputs.reshape(len(outputs), -1).astype(np.float64) - output_quant[1]) * output_quant[0]
    return np.mean((x - y) ** 2, axis=1)


def format_accuracy_txt(result: AccuracyResult, log_sha256: str) -> str:
    """accuracy.txt in the forms MLPerf's checkers parse (Inference `accuracy=`, Tiny `AUC:`)."""
    low, high = result.ci95
    if result.metric == "top1":
        good = round(result.value * result.count)
        lines = [
            f"accuracy={result.value * 100:.3f}%, good={good}, total={result.count}",
            f"Top-1: {result.value * 100:.3f}%",
        ]
    else:
        lines = [f"AUC: {result.value:.5f}", f"AUC = {result.value:.5f}"]
    lines.append(f"ci95=[{low:.5f}, {high:.5f}]")
    if result.target is not None:
        lines.append(f"target={result.target:.5f} met={'yes' if result.met else 'NO'}")
    lines.append(f"hash={log_sha256}")
    return "\n".join(lines) + "\n"

"""Accuracy mode: LoadGen's accuracy log decoded back to outputs and scored."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from edgebench.agent.runtime import Engine
from edgebench.metrics.accuracy import (
    anomaly_auc,
    read_accuracy_log,
    roc_auc,
    top1,
    wilson_interval,
)
from edgebench.runner.scoring import _mean_per_group

from .support import run_json


def labelled_set(model: Path, path: Path, count: int, flip: int = 0) -> np.ndarray:
    """Random inputs labelled by the model's own top-1 (builtin kernels), `flip` made wrong."""
    engine = Engine(str(model), delegate="none")
    spec = engine.describe()["inputs"][0]
    x = np.random.default_rng(7).integers(-128, 128, (count, *spec["shape"][1:]), dtype=np.int8)
    engine.set_samples([x])
    outputs = []
    for i in range(count):
        engine.infer(i)
        outputs.append(np.frombuffer(engine.output_bytes(), dtype=np.int8).copy())
    y = np.argmax(np.stack(outputs), axis=1)
    classes = len(outputs[0])
    y[:flip] = (y[:flip] + 1) % classes
    np.savez(path, x=x, y=y)
    return np.stack(outputs)


def test_accuracy_log_decodes_to_the_models_outputs(kws_model: Path, tmp_path: Path) -> None:
    expected = labelled_set(kws_model, tmp_path / "eval.npz", 120, flip=30)
    [result] = run_json(
        "--model",
        str(kws_model),
        "--data-dir",
        "eval.npz",
        "-s",
        "Offline",
        "-m",
        "accuracy",
        "--delegate",
        "none",
        "--results",
        "r",
        cwd=tmp_path,
    )
    assert result["status"] == "complete", result["reasons"]
    accuracy = result["metrics"]["accuracy"]
    assert accuracy["metric"] == "top1"
    assert accuracy["count"] == 120
    assert accuracy["value"] == pytest.approx(90 / 120)
    run_dir = tmp_path / "r" / result["run_id"]
    log = run_dir / "mlperf_log_accuracy.json"
    entries = json.loads(log.read_text())
    assert sorted(e["qsl_idx"] for e in entries) == list(range(120))
    assert all(e["data"] == e["data"].upper() for e in entries)
    decoded = read_accuracy_log(log, "int8", 12)
    for index, values in decoded.items():
        np.testing.assert_array_equal(values, expected[index])
    text = (run_dir / "accuracy.txt").read_text()
    assert "accuracy=75.000%, good=90, total=120" in text
    assert "hash=" in text


@pytest.mark.parametrize("scenario", ["SingleStream", "MultiStream"])
def test_accuracy_mode_covers_every_sample_in_streaming_scenarios(
    scenario: str, kws_model: Path, tmp_path: Path
) -> None:
    labelled_set(kws_model, tmp_path / "eval.npz", 40)
    [result] = run_json(
        "--model",
        str(kws_model),
        "--data-dir",
        "eval.npz",
        "-s",
        scenario,
        "-m",
        "accuracy",
        "--delegate",
        "none",
        "--results",
        "r",
        cwd=tmp_path,
    )
    assert result["metrics"]["accuracy"]["value"] == 1.0
    assert result["valid"] is True


def test_roc_auc_matches_pairwise_definition() -> None:
    rng = np.random.default_rng(3)
    scores = np.round(rng.normal(size=60), 1)  # rounding makes ties
    labels = rng.integers(0, 2, 60)
    pairs = [
        1.0 if p > n else 0.5 if p == n else 0.0
        for p, n in itertools.product(scores[labels == 1], scores[labels == 0])
    ]
    assert roc_auc(scores, labels) == pytest.approx(np.mean(pairs))


def test_auc_interval_contains_value_and_narrows_with_more_data() -> None:
    rng = np.random.default_rng(4)
    small = anomaly_auc(rng.normal(size=40) + np.repeat([0, 1], 20), np.repeat([0, 1], 20))
    large = anomaly_auc(rng.normal(size=4000) + np.repeat([0, 1], 2000), np.repeat([0, 1], 2000))
    for result in (small, large):
        assert result.ci95[0] <= result.value <= result.ci95[1]
    assert large.ci95[1] - large.ci95[0] < small.ci95[1] - small.ci95[0]


def test_top1_and_wilson_interval() -> None:
    outputs = np.array([[0, 5], [3, 1], [2, 9], [7, 7]])
    result = top1(outputs, np.array([1, 0, 0, 0]), target=0.5)
    assert result.value == 0.75 and result.met is True
    low, high = wilson_interval(75, 100)
    assert low == pytest.approx(0.6569, abs=1e-3) and high == pytest.approx(0.8245, abs=1e-3)


def test_window_scores_average_per_file() -> None:
    scores, labels = _mean_per_group(
        np.array([1.0, 3.0, 10.0, 20.0, 30.0]), np.array([0, 0, 1, 1, 1]), np.array([4, 4, 9, 9, 9])
    )
    np.testing.assert_allclose(scores, [2.0, 20.0])
    np.testing.assert_array_equal(labels, [0, 1])

"""The native loop end to end on a real TFLite model: every scenario, both modes, the
invalid-run reasons, Ctrl-C, and that nothing it writes passes for a LoadGen log."""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path

import numpy as np
import pytest

from edgebench.agent.native_loop import (
    ACCURACY_NAME,
    DETAIL_NAME,
    HARNESS,
    LOADGEN_LINE,
    SUMMARY_NAME,
    run_native_loop,
)
from edgebench.agent.recorder import QueryRecorder, read_queries
from edgebench.agent.settings import EffectiveSettings, effective_settings

MODEL = Path(__file__).resolve().parents[2] / "shared/reference-models/mlperf-tiny/ad01_int8.tflite"
TOTAL = 64
PERF_COUNT = 32
PERCENTILE_KEYS = [
    f"result_{value}_percentile_latency_ns"
    for value in ("50.00", "90.00", "95.00", "97.00", "99.00", "99.90")
]


@pytest.fixture(scope="module")
def engine():
    if not MODEL.exists():
        pytest.skip(f"reference model not found at {MODEL} (needs the shared reference-models)")
    runtime = pytest.importorskip("edgebench.agent.runtime")
    try:
        loaded = runtime.Engine(str(MODEL))
    except runtime.RuntimeMissing as error:
        pytest.skip(str(error))
    detail = loaded.input_details[0]
    shape = [TOTAL] + [int(d) for d in detail["shape"][1:]]
    samples = np.random.default_rng(1234).integers(-128, 128, size=shape, dtype=np.int8)
    loaded.set_samples([samples])
    return loaded


def run(engine, tmp_path: Path, scenario: str, conf: str, mode: str = "performance", **changes):
    """One run in a fresh directory; returns (results, outdir, recorded index/issue/complete)."""
    settings = effective_settings(conf, "ad01", scenario, mode, TOTAL, PERF_COUNT)
    for key, value in changes.items():
        setattr(settings, key, value)
    outdir = tmp_path / f"{scenario}-{mode}"
    recorder = QueryRecorder(str(outdir / "queries"))
    try:
        results = run_native_loop(settings, engine, recorder, str(outdir), TOTAL)
    finally:
        recorder.close()
    assert_not_loadgen(outdir)
    return results, outdir, read_queries(str(outdir / "queries"))


def assert_not_loadgen(outdir: Path) -> None:
    names = [name for _, _, files in os.walk(outdir) for name in files]
    assert not [name for name in names if name.startswith("mlperf_log_")], names
    summary = (outdir / SUMMARY_NAME).read_text()
    assert summary.splitlines()[1] == HARNESS
    assert LOADGEN_LINE in summary
    assert "MLPerf Results Summary" not in summary


def read_detail(outdir: Path) -> dict:
    return json.loads((outdir / DETAIL_NAME).read_text())


def assert_valid(results: dict) -> None:
    assert results["result_validity"] == "VALID", results["result_invalid_reasons"]
    assert results["result_invalid_reasons"] == []


def assert_latency_keys(results: dict) -> None:
    values = [results["result_min_latency_ns"]] + [results[key] for key in PERCENTILE_KEYS]
    assert values == sorted(values) and values[0] > 0
    assert values[-1] <= results["result_max_latency_ns"]


def test_single_stream(engine, tmp_path):
    conf = "*.SingleStream.min_duration = 300\n*.SingleStream.target_latency = 0.001\n"
    results, outdir, (index, issue, complete) = run(engine, tmp_path, "SingleStream", conf)
    assert_valid(results)
    assert_latency_keys(results)
    count = results["result_query_count"]
    assert count >= 100 and len(index) == count
    assert results["run_status"] == "COMPLETE" and results["result_min_duration_met"]
    assert (issue[-1] - issue[0]) / 1e9 >= 0.29
    assert set(index.tolist()) <= set(results["loaded_qsl_set"])
    assert len(results["loaded_qsl_set"]) == PERF_COUNT
    # The recorded times are the ones the statistics came from.
    ordered = np.sort(complete - issue)
    assert int(ordered[count // 2]) == results["result_50.00_percentile_latency_ns"]
    assert int(ordered[int(count * 0.9)]) == results["result_90.00_percentile_latency_ns"]
    assert 0 < results["early_stopping_latency_ss"] <= results["result_max_latency_ns"]
    assert results["result_qps_with_loadgen_overhead"] > 0
    assert read_detail(outdir)["result_query_count"] == count
    summary = (outdir / SUMMARY_NAME).read_text()
    assert "Result is : VALID" in summary and "Early stopping 90.0th percentile estimate" in summary


def test_single_stream_order_is_seeded(engine, tmp_path):
    conf = "*.SingleStream.min_duration = 0\n*.SingleStream.min_query_count = 200\n"
    first, _, (index_a, _, _) = run(engine, tmp_path / "a", "SingleStream", conf)
    second, _, (index_b, _, _) = run(engine, tmp_path / "b", "SingleStream", conf)
    assert first["loaded_qsl_set"] == second["loaded_qsl_set"]
    assert index_a.tolist() == index_b.tolist()
    other, _, _ = run(engine, tmp_path / "c", "SingleStream", conf, qsl_rng_seed=7)
    assert other["loaded_qsl_set"] != first["loaded_qsl_set"]
    assert "NOT LoadGen's order" in first["sample_order"]


def test_multi_stream(engine, tmp_path):
    conf = "*.MultiStream.min_duration = 300\n*.MultiStream.target_latency = 0.005\n"
    results, _, (index, _, _) = run(engine, tmp_path, "MultiStream", conf)
    assert_valid(results)
    assert_latency_keys(results)
    queries = results["result_query_count"]
    assert queries >= 662 and len(index) == 8 * queries
    # Samples of a query are contiguous in the (padded) loaded set.
    loaded = results["loaded_qsl_set"]
    padded = loaded + loaded[:7]
    first = index[:8].tolist()
    start = padded.index(first[0])
    assert padded[start : start + 8] == first
    per_query = results["result_99.00_percentile_per_query_latency_ns"]
    assert results["result_max_latency_ns"] == results["result_max_query_latency_ns"]
    assert per_query >= results["result_99.00_percentile_latency_ns"]
    assert 0 < results["early_stopping_latency_ms"] <= results["result_max_query_latency_ns"]


def test_server(engine, tmp_path):
    conf = (
        "*.Server.min_duration = 500\n*.Server.target_qps = 2000\n"
        "*.Server.target_latency = 100\n*.Server.min_query_count = 100\n"
    )
    results, _, (index, issue, _) = run(engine, tmp_path, "Server", conf)
    assert_valid(results)
    assert_latency_keys(results)
    assert results["result_perf_constraints_met"] is True
    assert results["result_overlatency_query_count"] < 5
    queries = results["result_query_count"]
    assert queries == len(index) >= 459  # p99 early stopping needs h(0) = 459 at least
    # Poisson arrivals at 2000/s for 0.5 s; one worker keeps up with ad01.
    assert 1500 < results["result_scheduled_samples_per_sec"] < 2600
    assert results["result_completed_samples_per_sec"] == pytest.approx(
        results["result_scheduled_samples_per_sec"], rel=0.1
    )
    gaps = np.diff(issue) / 1e9
    assert 0.0003 < float(np.mean(gaps)) < 0.0007


def test_server_over_latency_is_invalid(engine, tmp_path):
    conf = "*.Server.min_duration = 200\n*.Server.target_qps = 1000\n"
    results, outdir, _ = run(engine, tmp_path, "Server", conf, target_latency_ns=500)
    assert results["result_validity"] == "INVALID"
    assert results["result_perf_constraints_met"] is False
    assert results["early_stopping_met"] is False
    reasons = " ".join(results["result_invalid_reasons"])
    assert "over target_latency 500 ns" in reasons
    assert "Early stopping not met" in reasons
    assert "Performance constraints satisfied : NO" in (outdir / SUMMARY_NAME).read_text()


def test_offline(engine, tmp_path):
    conf = "*.Offline.min_duration = 100\n*.Offline.target_qps = 1000000\n"
    results, _, (index, _, _) = run(engine, tmp_path, "Offline", conf)
    assert_valid(results)
    assert results["effective_samples_per_query"] == 110000
    assert results["result_query_count"] == 1 and len(index) == 110000
    # The loaded set, repeated in order.
    loaded = results["loaded_qsl_set"]
    assert index[: 2 * PERF_COUNT].tolist() == loaded + loaded
    assert results["result_samples_per_second"] == pytest.approx(
        110000 / (results["result_max_latency_ns"] / 1e9)
    )


def test_offline_too_short_is_invalid(engine, tmp_path):
    conf = "*.Offline.min_duration = 1000\n*.Offline.target_qps = 100\n"
    results, _, (index, _, _) = run(engine, tmp_path, "Offline", conf)
    assert results["effective_samples_per_query"] == 110 and len(index) == 110
    assert results["result_validity"] == "INVALID"
    assert results["result_invalid_reasons"][0].startswith("Min duration not met")


def test_too_few_queries_is_invalid(engine, tmp_path):
    conf = "*.SingleStream.min_duration = 0\n*.SingleStream.max_query_count = 30\n"
    results, outdir, (index, _, _) = run(engine, tmp_path, "SingleStream", conf)
    assert len(index) == 30 == results["result_query_count"]
    assert results["result_validity"] == "INVALID"
    assert results["result_min_queries_met"] is False and results["early_stopping_met"] is False
    reasons = results["result_invalid_reasons"]
    assert any(reason.startswith("Min queries not met") for reason in reasons)
    assert any("Need to process at least 64 queries" in reason for reason in reasons)
    assert any("Max query count reached" in reason for reason in reasons)
    summary = (outdir / SUMMARY_NAME).read_text()
    assert "Result is : INVALID" in summary and " * Only processed 30 queries." in summary


def test_pessimistic_latency_hint_runs_out_like_loadgen(engine, tmp_path):
    conf = "*.SingleStream.min_duration = 1000\n*.SingleStream.target_latency = 10\n"
    results, _, (index, _, _) = run(engine, tmp_path, "SingleStream", conf)
    # LoadGen pre-generates 2 * 1000 ms / 10 ms + 1 = 201 queries (>= min_query_count 100).
    assert results["generated_query_count"] == 201 == len(index)
    assert results["result_validity"] == "INVALID"
    assert results["result_min_duration_met"] is False
    assert any("Ran out of generated queries" in error for error in results["native_errors"])


def test_accuracy_mode(engine, tmp_path):
    results, outdir, (index, _, _) = run(engine, tmp_path, "SingleStream", "", mode="accuracy")
    entries = json.loads((outdir / ACCURACY_NAME).read_text())
    assert [entry["seq_id"] for entry in entries] == list(range(TOTAL))
    assert sorted(entry["qsl_idx"] for entry in entries) == list(range(TOTAL))
    assert [entry["qsl_idx"] for entry in entries] == index.tolist() != list(range(TOTAL))
    assert "result_validity" not in results and results["accuracy_log_entries"] == TOTAL
    entry = entries[5]
    assert entry["data"] == entry["data"].upper()
    engine.infer(entry["qsl_idx"])
    assert bytes.fromhex(entry["data"]) == engine.output_bytes()
    summary = (outdir / SUMMARY_NAME).read_text()
    assert "Mode     : AccuracyOnly" in summary and "Result is : COMPLETE" in summary


def test_ctrl_c_leaves_incomplete_files(engine, tmp_path):
    conf = "*.SingleStream.min_duration = 30000\n*.SingleStream.target_latency = 0.001\n"
    timer = threading.Timer(0.4, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            run(engine, tmp_path, "SingleStream", conf)
    finally:
        timer.cancel()
    outdir = tmp_path / "SingleStream-performance"
    assert_not_loadgen(outdir)
    assert "INCOMPLETE" in (outdir / SUMMARY_NAME).read_text()
    detail = read_detail(outdir)
    assert detail["run_status"] == "INCOMPLETE" and detail["result_validity"] == "INVALID"
    assert any("KeyboardInterrupt" in reason for reason in detail["result_invalid_reasons"])
    assert detail["result_query_count"] > 0


class InterruptingEngine:
    """The real engine, with a Ctrl-C arriving during the n-th inference."""

    def __init__(self, engine, after: int) -> None:
        self.engine, self.after, self.calls = engine, after, 0
        self.sample_count = engine.sample_count
        self.output_bytes = engine.output_bytes

    def infer(self, index: int) -> None:
        self.calls += 1
        if self.calls == self.after:
            raise KeyboardInterrupt
        self.engine.infer(index)


def test_interrupted_accuracy_run_closes_its_log(engine, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        run(InterruptingEngine(engine, after=10), tmp_path, "SingleStream", "", mode="accuracy")
    outdir = tmp_path / "SingleStream-accuracy"
    entries = json.loads((outdir / ACCURACY_NAME).read_text())
    assert [entry["seq_id"] for entry in entries] == list(range(9))
    detail = read_detail(outdir)
    assert detail["run_status"] == "INCOMPLETE" and detail["accuracy_log_entries"] == 9
    assert "Result is : INCOMPLETE" in (outdir / SUMMARY_NAME).read_text()


def test_direct_settings_and_bad_settings(engine, tmp_path):
    settings = EffectiveSettings(
        scenario="SingleStream",
        mode="performance",
        samples_per_query=1,
        target_latency_ns=0,
        target_latency_percentile=0.9,
        target_qps=1.0,
        min_duration_ms=0,
        max_duration_ms=0,
        min_query_count=10,
        max_query_count=0,
        max_async_queries=0,
        performance_sample_count=PERF_COUNT,
        accuracy_sample_count=TOTAL,
    )
    recorder = QueryRecorder(str(tmp_path / "queries"))
    try:
        with pytest.raises(ValueError, match="target_latency"):
            run_native_loop(settings, engine, recorder, str(tmp_path), TOTAL)
        with pytest.raises(ValueError, match="total_count"):
            run_native_loop(settings, engine, recorder, str(tmp_path), TOTAL + 1)
    finally:
        recorder.close()

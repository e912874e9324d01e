"""Each MLPerf scenario end to end through the real CLI, the agent subprocess and LoadGen."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgebench.agent.recorder import read_queries

from .support import run_cli, run_json

LOADGEN_LOGS = ("mlperf_log_summary.txt", "mlperf_log_detail.txt", "mlperf_log_accuracy.json")


@pytest.mark.parametrize("scenario", ["SingleStream", "MultiStream", "Server", "Offline"])
def test_scenario_runs_valid_with_loadgen(scenario: str, ad_model: Path, tmp_path: Path) -> None:
    [result] = run_json(
        "--model",
        str(ad_model),
        "-s",
        scenario,
        "--duration",
        "1",
        "--results",
        "res",
        cwd=tmp_path,
    )
    assert result["status"] == "complete"
    assert result["valid"] is True, result["reasons"]
    assert result["loop"] == "loadgen"
    assert result["division"] == "open"
    assert result["submission_grade"] is False
    run_dir = tmp_path / "res" / result["run_id"]
    for name in (*LOADGEN_LOGS, "user.conf", "record.json", "summary.txt", "result.json"):
        assert (run_dir / name).is_file(), name
    summary = (run_dir / "mlperf_log_summary.txt").read_text()
    assert f"Scenario : {scenario}" in summary
    assert "Result is : VALID" in summary

    index, issue, complete = read_queries(str(run_dir / "queries"))
    metrics = result["metrics"]
    per_query = 8 if scenario == "MultiStream" else 1
    if scenario == "Offline":
        assert metrics["query_count"] == 1
        assert len(index) >= 100
    else:
        assert len(index) == metrics["query_count"] * per_query
    assert np.all(complete >= issue)
    assert index.min() >= 0 and index.max() < 64  # the agent's 64 random samples


def test_recorded_latency_matches_loadgen(ad_model: Path, tmp_path: Path) -> None:
    """Our per-query record brackets the inference inside LoadGen's own measurement."""
    [result] = run_json(
        "--model",
        str(ad_model),
        "-s",
        "SingleStream",
        "--duration",
        "1",
        "--results",
        "r",
        cwd=tmp_path,
    )
    _, issue, complete = read_queries(str(tmp_path / "r" / result["run_id"] / "queries"))
    ours = float(np.median(complete - issue))
    loadgen = result["metrics"]["latency_ns"]["p50"]
    assert 0 < ours <= loadgen
    assert loadgen - ours < 5000, (ours, loadgen)


def test_single_user_conf_holds_profile_override_and_hints(ad_model: Path, tmp_path: Path) -> None:
    override = tmp_path / "mine.conf"
    override.write_text("*.SingleStream.min_query_count = 5000\n")
    [result] = run_json(
        "--model",
        str(ad_model),
        "-s",
        "SingleStream",
        "--duration",
        "1",
        "--conf",
        str(override),
        "--results",
        "r",
        cwd=tmp_path,
    )
    run_dir = tmp_path / "r" / result["run_id"]
    conf = (run_dir / "user.conf").read_text()
    assert "ad01_int8.SingleStream.min_duration = 1000" in conf
    assert "ad01_int8.SingleStream.min_query_count = 5000" in conf
    assert "ad01_int8.SingleStream.target_latency" in conf  # calibration hint
    detail = (run_dir / "mlperf_log_detail.txt").read_text()
    assert "Multiple conf files" not in detail
    assert result["metrics"]["query_count"] >= 5000
    assert result["settings"]["min_query_count"] == 5000


def test_show_prints_a_finished_run(ad_model: Path, tmp_path: Path) -> None:
    [result] = run_json(
        "--model",
        str(ad_model),
        "-s",
        "Offline",
        "--duration",
        "1",
        "--results",
        "r",
        cwd=tmp_path,
    )
    shown = run_cli("show", f"r/{result['run_id']}", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "Offline" in shown.stdout and "VALID" in shown.stdout
    as_json = run_cli("show", f"r/{result['run_id']}", "--json", cwd=tmp_path)
    assert json.loads(as_json.stdout)["run_id"] == result["run_id"]

"""`edgebench compare` on real runs: a slower kernel set is a flagged regression with the
setting that caused it named; a run against itself changes nothing; energy is compared where
both runs have it; runs that cannot be compared are refused in one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from .support import run_cli, run_json
from .test_energy_run import meter_profile

RUN = ("-b", "kws", "-s", "SingleStream", "--duration", "1")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Performance and accuracy runs with XNNPACK and with the reference kernels."""
    root = tmp_path_factory.mktemp("compare")
    found = {}
    for delegate in ("xnnpack", "reference"):
        for result in run_json(*RUN, "--delegate", delegate, "--results", str(root), cwd=root):
            found[f"{delegate}-{result['mode']}"] = root / result["run_id"]
    return found


def compare(a: Path, b: Path, *extra: str) -> tuple[int, dict]:
    done = run_cli("compare", str(a), str(b), "--json", *extra, cwd=a.parent)
    assert done.stdout.strip(), done.stderr
    return done.returncode, json.loads(done.stdout)


def metric(report: dict, name: str) -> dict:
    return next(m for m in report["metrics"] if m["name"] == name)


def test_slower_kernels_are_a_flagged_regression(runs) -> None:
    code, report = compare(runs["xnnpack-performance"], runs["reference-performance"])
    assert code == 0  # only --fail-on-regression turns a regression into an exit code
    changed = {d["key"]: (d["a"], d["b"]) for d in report["differences"]}
    assert changed["runtime.delegate"] == ("xnnpack", "reference")
    p50 = metric(report, "latency p50")
    assert p50["verdict"] == "WORSE" and p50["relative_change"] > 0.5
    low, high = p50["a_interval"]
    assert low <= p50["a"] <= high  # the spread brackets the reported figure
    assert metric(report, "qps with loadgen overhead")["verdict"] == "WORSE"
    code, _ = compare(
        runs["xnnpack-performance"], runs["reference-performance"], "--fail-on-regression"
    )
    assert code == 1
    code, report = compare(
        runs["reference-performance"], runs["xnnpack-performance"], "--fail-on-regression"
    )
    assert code == 0 and metric(report, "latency p50")["verdict"] == "BETTER"


def test_a_run_against_itself_changes_nothing(runs) -> None:
    run = runs["xnnpack-performance"]
    code, report = compare(run, run, "--fail-on-regression")
    assert code == 0 and report["differences"] == []
    assert {m["verdict"] for m in report["metrics"]} == {"within spread"}


def test_human_output_names_the_change(runs) -> None:
    done = run_cli(
        "compare", str(runs["xnnpack-performance"]), str(runs["reference-performance"]),
        cwd=runs["xnnpack-performance"].parent, env={"COLUMNS": "200"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "runtime.delegate" in done.stdout and "WORSE" in done.stdout
    assert "latency p50 (us)" in done.stdout


def test_accuracy_runs_compare_with_their_intervals(runs) -> None:
    _, report = compare(runs["xnnpack-accuracy"], runs["reference-accuracy"])
    (accuracy,) = report["metrics"]
    assert accuracy["name"] == "accuracy (top1)" and accuracy["a"] > 0.9
    assert accuracy["a_interval"][0] < accuracy["a"] < accuracy["a_interval"][1]


def test_runs_without_per_query_files_are_shown_not_judged(runs, tmp_path: Path) -> None:
    """As in a submission tree, which leaves the per-query arrays out."""
    copy = tmp_path / "copied"
    shutil.copytree(runs["xnnpack-performance"], copy, ignore=shutil.ignore_patterns("queries"))
    _, report = compare(copy, runs["reference-performance"])
    p50 = metric(report, "latency p50")
    assert p50["verdict"] == "no spread" and p50["a_interval"] is None and p50["b"] is not None


def test_energy_is_compared_when_both_runs_have_it(tmp_path: Path) -> None:
    activity = tmp_path / "activity.jsonl"
    meter = meter_profile(
        tmp_path / "ptd.yaml", activity, ranging=False, volts_range=230, amps_range=1
    )
    (result,) = run_json(
        *RUN, "-m", "performance", "--meter", str(meter), "--results", str(tmp_path),
        cwd=tmp_path, env={"EDGEBENCH_TEST_ACTIVITY_FILE": str(activity)},
    )  # fmt: skip
    run = tmp_path / result["run_id"]
    _, report = compare(run, run)
    energy = metric(report, "energy per inference")
    assert energy["a"] == pytest.approx(result["energy"]["energy_per_inference_j"])
    low, high = energy["a_interval"]
    assert low < energy["a"] < high and energy["verdict"] == "within spread"
    assert metric(report, "average power")["verdict"] == "no spread"


@pytest.mark.parametrize(
    ("pair", "expected"),
    [
        (("xnnpack-performance", "xnnpack-accuracy"), "differ in mode"),
        (("xnnpack-performance", None), "has no result.json"),
    ],
)
def test_incomparable_runs_are_refused(runs, tmp_path: Path, pair, expected: str) -> None:
    a = runs[pair[0]]
    b = runs[pair[1]] if pair[1] else tmp_path
    done = run_cli("compare", str(a), str(b), cwd=tmp_path)
    assert done.returncode == 1
    assert expected in " ".join(done.stderr.split())
    assert "Traceback" not in done.stderr


def test_different_benchmarks_are_refused(runs, tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(runs["xnnpack-performance"], other, ignore=shutil.ignore_patterns("queries"))
    result = json.loads((other / "result.json").read_text())
    (other / "result.json").write_text(json.dumps({**result, "benchmark": "ic"}))
    done = run_cli("compare", str(runs["xnnpack-performance"]), str(other), cwd=tmp_path)
    assert done.returncode == 1 and "differ in benchmark" in " ".join(done.stderr.split())

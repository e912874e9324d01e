"""Accuracy, rescored: the accuracy log is decoded and scored against the evaluation set's
labels again, the way the run itself scored it, and only then compared with the target and
with what accuracy.txt and result.json claim."""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

from ...devices.serial import LOG_FILE
from ...metrics.accuracy import AccuracyResult
from ...runner.scoring import ScoringError, find_accuracy_log, score
from ...runner.tiny_rescore import rescore as tiny_rescore
from ...runner.tiny_rescore import windows_from_log
from ...suite.benchmarks import Benchmark, BenchmarkError, get_benchmark, sha256_file
from ...suite.official import OFFICIAL, official_benchmark
from ..checker import Context, Scenario
from ..run_files import RunFiles

TINY_LOG = LOG_FILE
_VALUE = re.compile(r"^(?:accuracy=([0-9.]+)%|AUC: ([0-9.]+))", re.MULTILINE)
_HASH = re.compile(r"^hash=([0-9a-f]{64})$", re.MULTILINE)


def check_scenario(ctx: Context, scenario: Scenario) -> None:
    run = scenario.accuracy_run()
    if run is None or not run.result:
        return
    _dataset(ctx, scenario, run)
    log = accuracy_log(scenario, run)
    accuracy = rescore(ctx, scenario, run, log)
    if accuracy is None or log is None:
        return
    _target(ctx, scenario, run, accuracy, log)
    _reported(ctx, run, accuracy, log)


def _benchmark(ctx: Context, name: str) -> Benchmark | str:
    """The benchmark with its evaluation set, or why it cannot be had."""
    try:
        if name in OFFICIAL:
            if ctx.data_dir is None:
                return f"{name} is an official MLPerf Tiny benchmark: pass --data-dir DIR"
            return official_benchmark(name, ctx.data_dir)
        return get_benchmark(name)
    except BenchmarkError as error:
        return str(error)


def accuracy_log(scenario: Scenario, run: RunFiles) -> Path | None:
    """The log the outputs are scored from: the loop's accuracy log, or the DUT's transcript."""
    if scenario.tiny:
        return run.path(TINY_LOG) if run.path(TINY_LOG).is_file() else None
    try:
        return find_accuracy_log(run.directory)
    except ScoringError:
        return None  # reported by files.required


def rescore(
    ctx: Context, scenario: Scenario, run: RunFiles, log: Path | None
) -> AccuracyResult | None:
    """The run's accuracy scored again from `log` (accuracy_log's answer)."""
    benchmark = _benchmark(ctx, str(run.result.get("benchmark") or scenario.benchmark))
    if isinstance(benchmark, str):
        ctx.fail(run.path("result.json"), "accuracy.recompute", f"cannot rescore: {benchmark}")
        return None
    if log is None:
        return None
    if scenario.tiny:
        return _rescore_tiny(ctx, run, benchmark, log)
    with tempfile.TemporaryDirectory(prefix="edgebench-check-") as scratch:
        # score() writes its accuracy.txt beside the log: let it do so outside the tree.
        shutil.copyfile(log, Path(scratch) / log.name)
        try:
            return score(benchmark, Path(scratch))
        except (ScoringError, ValueError, KeyError, TypeError) as error:
            ctx.fail(log, "accuracy.recompute", f"cannot rescore: {error}")
            return None


def _rescore_tiny(
    ctx: Context, run: RunFiles, benchmark: Benchmark, log: Path
) -> AccuracyResult | None:
    """Score the DUT's printed results again; every evaluation sample must have run once."""
    try:
        windows = windows_from_log(log)
        scored = tiny_rescore(run.directory, benchmark, windows)["accuracy"]
    except (ValueError, KeyError, TypeError, IndexError, UnicodeDecodeError) as error:
        ctx.fail(log, "accuracy.recompute", f"cannot rescore: {error}")
        return None
    samples = {w["sample"] for w in windows if w.get("results") is not None}
    if len(samples) != benchmark.dataset_count:
        ctx.fail(
            log,
            "accuracy.recompute",
            f"the DUT ran {len(samples)} distinct samples, the evaluation set has "
            f"{benchmark.dataset_count}",
        )
    fields = ("metric", "value", "ci95", "count", "target")
    return AccuracyResult(**{key: scored[key] for key in fields})


def _dataset(ctx: Context, scenario: Scenario, run: RunFiles) -> None:
    reference = ctx.rules.benchmarks.get(scenario.benchmark) or {}
    dataset = run.result.get("dataset") or {}
    path = run.path("result.json")
    expected = reference.get("dataset_sha256")
    if expected and dataset.get("sha256") != expected:
        ctx.fail(
            path,
            "accuracy.dataset",
            f"dataset sha256 {str(dataset.get('sha256'))[:16]}... is not the reference "
            f"evaluation set's ({expected[:16]}...)",
        )
    count = reference.get("dataset_count")
    logged = run.detail.get("effective_accuracy_sample_count") if run.detail else None
    if count and logged is not None and int(logged) != int(count):
        ctx.fail(
            run.detail.path,
            "accuracy.dataset",
            f"effective_accuracy_sample_count is {logged}, the evaluation set has {count}",
        )


def _target(
    ctx: Context, scenario: Scenario, run: RunFiles, accuracy: AccuracyResult, log: Path
) -> None:
    divisions = ctx.rules.param("accuracy.target", "divisions") or []
    if scenario.submitter.division not in divisions:
        return
    target = (ctx.rules.benchmarks.get(scenario.benchmark) or {}).get("target")
    if target is not None and accuracy.value < float(target):
        ctx.fail(
            log,
            "accuracy.target",
            f"{accuracy.metric} rescored from the log is {accuracy.value:.5f}, "
            f"below the target {float(target):.5f}",
        )


def _reported(ctx: Context, run: RunFiles, accuracy: AccuracyResult, log: Path) -> None:
    tolerance = float(ctx.rules.param("accuracy.reported", "tolerance", 0.0005))
    text_path = run.path("accuracy.txt")
    if text_path.is_file():
        text = text_path.read_text(errors="replace")
        match = _VALUE.search(text)
        stated = None
        if match:
            stated = float(match.group(1)) / 100 if match.group(1) else float(match.group(2))
        if stated is None or abs(stated - accuracy.value) > tolerance:
            ctx.fail(
                text_path,
                "accuracy.reported",
                f"states {stated}, the log rescores to {accuracy.value:.5f}",
            )
        logged_hash = _HASH.search(text)
        actual = sha256_file(log)
        if not logged_hash or logged_hash.group(1) != actual:
            ctx.fail(
                text_path,
                "accuracy.log-hash",
                f"hash= is {logged_hash.group(1)[:16] if logged_hash else 'missing'}..., "
                f"{log.name} hashes to {actual[:16]}...",
            )
    claimed = ((run.result.get("metrics") or {}).get("accuracy") or {}).get("value")
    if claimed is None or abs(float(claimed) - accuracy.value) > 1e-9:
        ctx.fail(
            run.path("result.json"),
            "accuracy.reported",
            f"metrics.accuracy.value is {claimed}, the log rescores to {accuracy.value:.6f}",
        )

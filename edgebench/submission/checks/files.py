"""Files and layout: required files per directory, tree hygiene, and whether each run sits
where its result.json says it belongs."""

from __future__ import annotations

import os
from pathlib import Path

from ..checker import Context, Scenario, Submitter
from ..run_files import RunFiles


def missing(directory: Path, required: list) -> list[str]:
    """Names from `required` not present; a nested list is satisfied by any one of its names."""
    absent = []
    for entry in required:
        options = entry if isinstance(entry, list) else [entry]
        if not any((directory / name).exists() for name in options):
            absent.append(" or ".join(options))
    return absent


def check_submitter(ctx: Context, submitter: Submitter) -> None:
    for name in missing(submitter.root, ctx.rules.param("files.required", "submitter") or []):
        ctx.fail(submitter.root / name, "files.required", "missing")
    for sub in ("systems", "results"):
        if not (submitter.root / sub).is_dir():
            ctx.fail(submitter.root / sub, "files.layout", "missing directory")
    _hygiene(ctx, submitter.root)


def _hygiene(ctx: Context, root: Path) -> None:
    limit = float(ctx.rules.param("files.hygiene", "max_file_mb", 500)) * 1e6
    forbidden = set(ctx.rules.param("files.hygiene", "forbidden_names") or [])
    for folder, dirs, names in os.walk(root):
        for name in dirs + names:
            path = Path(folder) / name
            if path.is_symlink():
                ctx.fail(path, "files.hygiene", "symbolic link (copy the file instead)")
            elif name in forbidden:
                ctx.fail(path, "files.hygiene", f"{name} does not belong in a submission")
            elif path.is_file() and path.stat().st_size > limit:
                ctx.fail(path, "files.hygiene", f"larger than {limit / 1e6:g} MB")
        if not dirs and not names:
            ctx.fail(Path(folder), "files.hygiene", "empty directory")


def check_scenario(ctx: Context, scenario: Scenario) -> None:
    def required(kind: str) -> list:
        return ctx.rules.param("files.required", f"tiny-{kind}" if scenario.tiny else kind) or []

    for name in missing(scenario.directory, required("scenario")):
        ctx.fail(scenario.directory / name, "files.required", "missing")
    if not scenario.performance_runs():
        ctx.fail(scenario.directory / "performance/run_1", "files.required", "no performance run")
    if scenario.accuracy_run() is None:
        ctx.fail(scenario.directory / "accuracy", "files.required", "no accuracy run")
    for mode, run in scenario.all_runs():
        for name in missing(run.directory, required(mode)):
            ctx.fail(run.directory / name, "files.required", "missing")
    _benchmark_known(ctx, scenario)
    for mode, run in scenario.all_runs():
        _identity(ctx, scenario, mode, run)


def _benchmark_known(ctx: Context, scenario: Scenario) -> None:
    benchmarks = ctx.rules.benchmarks
    bench_dir = scenario.directory.parent
    if scenario.submitter.division == "closed" and scenario.benchmark not in benchmarks:
        ctx.fail(
            bench_dir,
            "files.benchmark-known",
            f"{scenario.benchmark!r} is not a benchmark of rules {ctx.rules.name} "
            f"({', '.join(benchmarks)})",
        )
        return
    allowed = (benchmarks.get(scenario.benchmark) or {}).get("scenarios")
    if allowed and scenario.scenario not in allowed:
        ctx.fail(
            scenario.directory,
            "files.benchmark-known",
            f"{scenario.scenario!r} is not a scenario of {scenario.benchmark} "
            f"({', '.join(allowed)})",
        )


def _identity(ctx: Context, scenario: Scenario, mode: str, run: RunFiles) -> None:
    result = run.result
    path = run.path("result.json")
    if not result:
        if path.is_file():
            ctx.fail(path, "files.readable", "not a JSON object")
        return  # a missing one is reported by files.required
    expected = {
        "benchmark": scenario.benchmark,
        "scenario": scenario.scenario,
        "mode": mode,
        "division": scenario.submitter.division,
    }
    for key, value in expected.items():
        if result.get(key) != value:
            ctx.fail(
                path,
                "files.run-identity",
                f"{key} is {result.get(key)!r} but the run sits under {value!r}",
            )
    if mode == "compliance":
        test = (result.get("compliance") or {}).get("test")
        if test != run.directory.name:
            ctx.fail(
                path,
                "files.run-identity",
                f"compliance test is {test!r} but the run sits in {run.directory.name}",
            )
    if result.get("status") != "complete":
        ctx.fail(path, "run.complete", f"status is {result.get('status')!r}, not complete")
    profiles = ctx.rules.param("run.submission-grade", "settings_profiles") or []
    if result.get("settings_profile") not in profiles:
        ctx.fail(
            path,
            "run.submission-grade",
            f"settings profile {result.get('settings_profile')!r} is not accepted by rules "
            f"{ctx.rules.name} (accepted: {', '.join(profiles)}); rerun with "
            f"--settings submission",
        )

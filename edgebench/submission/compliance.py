"""`edgebench compliance`: MLPerf-style compliance tests as ordinary runs with a verdict.

As in MLPerf, a compliance test reruns the unchanged benchmark with an audit.config (the
plan's `audit`, see edgebench/agent/audit.py) and compares what it produced with the runs
it audits: TEST01 with an accuracy run and a performance run, TEST04 with a performance run.
Those reference runs are given (`--performance-run`, `--accuracy-run`) or made first, in
the same way `edgebench run` makes them. Each compliance run is a results directory whose
result.json says `"mode": "compliance"` and holds the verdict; `edgebench submit` files it
under TEST01/ or TEST04/ of its benchmark and scenario.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from ..devices.base import Device, SystemInfo
from ..runner.results import ResultWriter, load_result
from ..runner.run import EventHandler, RunError, RunOptions, run_benchmark
from ..runner.scoring import ScoringError, find_accuracy_log
from ..runner.summary import write_summary
from ..suite.benchmarks import Benchmark
from . import SubmissionError, compliance_test01, compliance_test04

TESTS: dict[str, ModuleType] = {"TEST01": compliance_test01, "TEST04": compliance_test04}
CHOICES = (*TESTS, "all")


class ComplianceError(SubmissionError):
    """A compliance test that cannot run as asked; the message names the fix."""


@dataclasses.dataclass
class Step:
    """One run of the sequence: a label for progress, and how to make it."""

    label: str
    execute: Callable[[EventHandler], dict[str, Any]]


def tests_for(device: Device, requested: str) -> list[str]:
    if requested not in CHOICES:
        raise ComplianceError(f"unknown compliance test {requested!r}; use {', '.join(CHOICES)}")
    if device.transport == "serial":
        raise ComplianceError(
            f"{device.name} is a serial device, where compliance tests do not apply: MLPerf "
            f"Tiny's method repeats one input by design (TEST04) and returns no outputs in "
            f"performance mode (TEST01); the rules require neither for microcontrollers"
        )
    return list(TESTS) if requested == "all" else [requested]


def reference(
    path: Path, role: str, benchmark: Benchmark, scenario: str, device: Device, profile: str
) -> dict[str, Any]:
    """A given reference run, refused unless it is a finished run of the same benchmark (and,
    for performance, scenario and settings profile) with the same model on the same device."""
    result = load_result(path)
    wrong = []
    if (result.get("device") or {}).get("name") != device.name:
        wrong.append(
            f"made on device {(result.get('device') or {}).get('name')}, not {device.name}"
        )
    if role == "performance" and result.get("settings_profile") != profile:
        wrong.append(
            f"settings profile {result.get('settings_profile')}, not {profile} (--settings)"
        )
    if result.get("mode") != role:
        wrong.append(f"mode {result.get('mode')}, not {role}")
    if result.get("status") != "complete":
        wrong.append(f"status {result.get('status')}")
    if result.get("benchmark") != benchmark.name:
        wrong.append(f"benchmark {result.get('benchmark')}, not {benchmark.name}")
    if role == "performance" and result.get("scenario") != scenario:
        wrong.append(f"scenario {result.get('scenario')}, not {scenario}")
    if (result.get("model") or {}).get("sha256") != benchmark.model_sha256:
        wrong.append("a different model (sha256)")
    if role == "accuracy":
        try:
            find_accuracy_log(path)
        except ScoringError as error:
            wrong.append(str(error))
    if wrong:
        raise ComplianceError(
            f"--{role}-run {path}: {'; '.join(wrong)}; pass a finished {role} run of "
            f"{benchmark.name} {scenario} (or leave the option out to make one)"
        )
    return result


def plan_steps(
    device: Device,
    system: SystemInfo,
    benchmark: Benchmark,
    scenario: str,
    tests: list[str],
    options: RunOptions,
    given: dict[str, Path | None],
) -> list[Step]:
    """The runs to make, in order: missing reference runs first, then one run per test."""
    references: dict[str, tuple[Path, dict[str, Any]]] = {}
    for role, path in given.items():
        if path is not None:
            found = reference(path, role, benchmark, scenario, device, options.settings_profile)
            references[role] = (path, found)
    needed = [
        role for role in ("performance", "accuracy") if any(role in TESTS[t].NEEDS for t in tests)
    ]
    steps = []
    for role in needed:
        if role in references:
            continue

        def make_reference(on_event: EventHandler, role: str = role) -> dict[str, Any]:
            try:
                result = run_benchmark(device, system, benchmark, scenario, role, options, on_event)
            except RunError as error:
                raise ComplianceError(
                    f"the reference {role} run failed ({error}); fix that first, since the "
                    f"compliance tests compare against it"
                ) from None
            references[role] = (options.results_root / str(result["run_id"]), result)
            return result

        steps.append(Step(f"{benchmark.name} {scenario} {role} (reference)", make_reference))
    for test in tests:

        def make_test(on_event: EventHandler, test: str = test) -> dict[str, Any]:
            return run_test(
                device, system, benchmark, scenario, test, options, references, on_event
            )

        steps.append(Step(f"{benchmark.name} {scenario} {test}", make_test))
    return steps


def run_test(
    device: Device,
    system: SystemInfo,
    benchmark: Benchmark,
    scenario: str,
    test: str,
    options: RunOptions,
    references: dict[str, tuple[Path, dict[str, Any]]],
    on_event: EventHandler,
) -> dict[str, Any]:
    """Run the benchmark with the test's audit settings, then judge it; returns result.json."""
    module = TESTS[test]
    audited = dataclasses.replace(
        options, extra_plan={**options.extra_plan, "audit": dict(module.AUDIT)}
    )
    try:
        result = run_benchmark(
            device, system, benchmark, scenario, "performance", audited, on_event
        )
    except RunError as error:
        result = error.result  # judged below: an unfinished run fails the test
    # The run id says what the run is: ...-<scenario>-TEST01 rather than ...-performance.
    run_id = str(result["run_id"]).removesuffix("-performance") + f"-{test}"
    directory = options.results_root / run_id
    (options.results_root / str(result["run_id"])).rename(directory)
    verdict = module.verify(directory, result, references)
    writer = ResultWriter(directory, load_result(directory))
    writer.update(
        run_id=run_id,
        mode="compliance",
        compliance={
            "test": test,
            "passed": verdict.passed,
            "reasons": verdict.reasons,
            "details": verdict.details,
            "audit": dict(module.AUDIT),
            "reference_runs": [
                {"role": role, "run_id": ref.get("run_id"), "path": str(path)}
                for role, (path, ref) in sorted(references.items())
                if role in module.NEEDS
            ],
        },
    )
    write_summary(directory, writer.data)
    return writer.data

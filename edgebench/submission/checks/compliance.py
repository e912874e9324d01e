"""Compliance tests: present where the device category needs them, and passed.

The tests themselves (TEST01: performance-mode outputs equal the accuracy run's; TEST04: a
repeated sample is not served faster than distinct ones) are run by `edgebench compliance`,
which records its verdict in result.json's `compliance` block; the identity of each test run
(benchmark, scenario, model, system) is checked by the files, model and system families.
"""

from __future__ import annotations

from ..checker import Context, Scenario


def check_scenario(ctx: Context, scenario: Scenario) -> None:
    present = scenario.compliance_runs()
    required = ctx.rules.param("compliance.required", scenario.category) or []
    for test in required:
        if test not in present:
            ctx.fail(
                scenario.directory / test,
                "compliance.required",
                f"missing: {scenario.category} devices need {test}; run `edgebench compliance "
                f"-b {scenario.benchmark} -s {scenario.scenario}` and submit its result",
            )
    accuracy = scenario.accuracy_run()
    submitted = {
        "performance": [run.result.get("run_id") for run in scenario.performance_runs()],
        "accuracy": [accuracy.result.get("run_id")] if accuracy else [],
    }
    for test, run in present.items():
        verdict = run.result.get("compliance") or {}
        if verdict.get("passed") is not True:
            reasons = verdict.get("reasons") or [verdict.get("reason") or "no verdict recorded"]
            ctx.fail(
                run.path("result.json"), "compliance.passed", f"{test} failed: {'; '.join(reasons)}"
            )
        for reference in verdict.get("reference_runs") or []:
            role, run_id = reference.get("role"), reference.get("run_id")
            if role in submitted and run_id not in submitted[role]:
                ctx.fail(
                    run.path("result.json"),
                    "compliance.references",
                    f"{test} audited {role} run {run_id}, not the one submitted here "
                    f"({', '.join(map(str, submitted[role]))})",
                )

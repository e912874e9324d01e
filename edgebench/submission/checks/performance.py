"""Performance runs: valid by the loop's own verdict, long enough, with enough queries and a
large enough sample set, all read from the detail log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..checker import Context, Scenario
from ..run_files import RunFiles

POWER_TIME_FORMAT = "%m-%d-%Y %H:%M:%S.%f"


def check_scenario(ctx: Context, scenario: Scenario) -> None:
    for run in scenario.performance_runs():
        if run.detail is None:
            continue
        _valid(ctx, scenario, run)
        _duration(ctx, scenario, run)
        _queries(ctx, scenario, run)
        _sample_count(ctx, scenario, run)


def _valid(ctx: Context, scenario: Scenario, run: RunFiles) -> None:
    detail = run.detail
    if detail.get("result_validity") != "VALID":
        reasons = detail.get("result_invalid_reasons") or detail.get("result_invalid_reason")
        ctx.fail(
            detail.path,
            "performance.valid",
            f"result_validity is {detail.get('result_validity')!r}"
            + (f" ({reasons})" if reasons else ""),
        )
    stopping = ctx.rules.param("performance.early-stopping", "scenarios") or []
    if scenario.scenario in stopping and detail.get("early_stopping_met") is not True:
        ctx.fail(
            detail.path,
            "performance.early-stopping",
            f"early_stopping_met is {detail.get('early_stopping_met')!r}",
        )


def min_duration_ms(ctx: Context, scenario: Scenario, unset: str) -> Any:
    """The rules' minimum run (or window) length for the scenario on its device category;
    None, reported as `rules <name> set no <unset>`, when they set none."""
    minimum = ctx.rules.scenario_param(
        "performance.min-duration", "min_duration_ms", scenario.category, scenario.scenario
    )
    if minimum is None:
        ctx.fail(
            scenario.directory, "performance.min-duration", f"rules {ctx.rules.name} set no {unset}"
        )
    return minimum


def _duration(ctx: Context, scenario: Scenario, run: RunFiles) -> None:
    detail = run.detail
    minimum = min_duration_ms(
        ctx,
        scenario,
        f"minimum duration for {scenario.scenario} on {scenario.category} devices: "
        "the scenario is not allowed there",
    )
    if minimum is None:
        return
    effective = detail.get("effective_min_duration_ms")
    if effective is not None and float(effective) < float(minimum):
        ctx.fail(
            detail.path,
            "performance.min-duration",
            f"effective_min_duration_ms is {effective}, the rules require at least {minimum}",
        )
    begin, end = detail.get("power_begin"), detail.get("power_end")
    if run.loop != "loadgen" or begin is None or end is None:
        return
    try:
        span = datetime.strptime(end, POWER_TIME_FORMAT) - datetime.strptime(
            begin, POWER_TIME_FORMAT
        )
    except (TypeError, ValueError):
        ctx.fail(detail.path, "performance.measured-duration", "power_begin/power_end unreadable")
        return
    tolerance = float(ctx.rules.param("performance.measured-duration", "tolerance_ms", 1))
    lasted = span.total_seconds() * 1000
    if lasted + tolerance < float(minimum):
        ctx.fail(
            detail.path,
            "performance.measured-duration",
            f"the run lasted {lasted:.0f} ms (power_begin to power_end), "
            f"the rules require {minimum} ms",
        )


def _queries(ctx: Context, scenario: Scenario, run: RunFiles) -> None:
    detail = run.detail
    count = int(detail.get("result_query_count") or 0)
    table = ctx.rules.param("performance.min-queries", "min_query_count") or {}
    minimum = table.get(scenario.scenario)
    if minimum is not None and count < int(minimum):
        ctx.fail(
            detail.path,
            "performance.min-queries",
            f"result_query_count is {count}, the rules require at least {minimum}",
        )
    if scenario.scenario == "Offline":
        samples = count * int(detail.get("effective_samples_per_query") or 0)
        least = ctx.rules.param("performance.min-queries", "min_offline_samples")
        if least is not None and samples < int(least):
            ctx.fail(
                detail.path,
                "performance.min-queries",
                f"the Offline query held {samples} samples, the rules require at least {least}",
            )


def _sample_count(ctx: Context, scenario: Scenario, run: RunFiles) -> None:
    least = ctx.rules.param("performance.sample-count", "min_performance_sample_count")
    if least is None:
        return
    total = run.detail.get("effective_accuracy_sample_count") or least
    wanted = min(int(least), int(total))
    loaded = int(run.detail.get("effective_performance_sample_count") or 0)
    if loaded < wanted:
        ctx.fail(
            run.detail.path,
            "performance.sample-count",
            f"effective_performance_sample_count is {loaded}, the rules require {wanted}",
        )

"""The loop's logs: which loop wrote them, whether they are whole, and whether result.json,
the summary and the device's record say what the detail log says.

The detail log is the reference because it is what LoadGen itself wrote, key by key; every
other file is a derived view, and a derived view that disagrees has been edited.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from ...runner.results import PERCENTILES, performance_metrics, validity
from ..checker import Context, Scenario
from ..run_files import NATIVE_LOGS, RunFiles

_PROCESSED = re.compile(r"Processed at least \d+ queries \((\d+)\)")
# summary label -> detail key, for every performance summary; MultiStream's summary shows
# per-query latencies first (LoadGen's shows only those), the detail log keys them apart.
_LATENCY_KEYS = {
    "Min latency (ns)": "result_min_latency_ns",
    "Max latency (ns)": "result_max_latency_ns",
    "Mean latency (ns)": "result_mean_latency_ns",
    **{f"{p} percentile latency (ns)": f"result_{p}_percentile_latency_ns" for p in PERCENTILES},
}
_QUERY_LATENCY_KEYS = {
    "Min latency (ns)": "result_min_query_latency_ns",
    "Max latency (ns)": "result_max_query_latency_ns",
    "Mean latency (ns)": "result_mean_query_latency_ns",
    **{
        f"{p} percentile latency (ns)": f"result_{p}_percentile_per_query_latency_ns"
        for p in PERCENTILES
    },
}
_SETTING_KEYS = {
    "qsl_rng_seed": "effective_qsl_rng_seed",
    "sample_index_rng_seed": "effective_sample_index_rng_seed",
    "schedule_rng_seed": "effective_schedule_rng_seed",
    "min_duration (ms)": "effective_min_duration_ms",
    "min_query_count": "effective_min_query_count",
    "performance_sample_count": "effective_performance_sample_count",
}
_HEADLINE = {
    "SingleStream": ("90.0th percentile latency (ns)", "result_90.00_percentile_latency_ns"),
    "MultiStream": (
        "99.0th percentile latency (ns)",
        "result_99.00_percentile_per_query_latency_ns",
    ),
    "Server": ("Completed samples per second", "result_completed_samples_per_sec"),
    "Offline": ("Samples per second", "result_samples_per_second"),
}
_RECORD_PREFIXES = ("result_", "early_stopping_", "effective_")


def same(a: Any, b: Any, rel: float = 1e-4) -> bool:
    """Equal, with numbers compared to the precision the summary prints them."""
    try:
        x, y = float(a), float(b)
    except (TypeError, ValueError):
        return a == b
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    return math.isclose(x, y, rel_tol=rel, abs_tol=0.011)


def check_scenario(ctx: Context, scenario: Scenario) -> None:
    for mode, run in scenario.all_runs():
        detail = run.detail
        if detail is None:
            continue  # reported by files.required
        _harness(ctx, run)
        for problem in detail.problems:
            ctx.fail(detail.path, "logs.detail-format", problem)
        _required_keys(ctx, scenario, mode, run)
        if detail.errors or int(detail.get("num_errors") or 0) > 0:
            shown = "; ".join(detail.errors[:3]) or f"num_errors {detail.get('num_errors')}"
            ctx.fail(detail.path, "logs.errors", f"the loop logged errors: {shown}")
        if mode == "performance":
            _result_json(ctx, scenario, run)
            _summary(ctx, scenario, run)
        _record(ctx, run)


def _harness(ctx: Context, run: RunFiles) -> None:
    path = run.detail.path
    claimed = run.result.get("loop")
    if run.loop == "native":
        if not ctx.rules.param("logs.harness", "native_loop", True):
            ctx.fail(path, "logs.harness", "the native loop is not accepted by these rules")
        if run.result and claimed != "native":
            ctx.fail(path, "logs.harness", f"native loop logs, but result.json says {claimed!r}")
        return
    version = str(run.detail.get("loadgen_version") or "").split(" ")[0]
    accepted = [str(v) for v in ctx.rules.param("logs.harness", "loadgen_versions") or []]
    if accepted and version not in accepted:
        ctx.fail(
            path,
            "logs.harness",
            f"LoadGen {version or '(no version logged)'} is not accepted "
            f"(accepted: {', '.join(accepted)})",
        )
    if run.result and claimed != "loadgen":
        ctx.fail(path, "logs.harness", f"LoadGen logs, but result.json says loop {claimed!r}")
    if run.path(NATIVE_LOGS["summary"]).is_file():
        ctx.fail(path, "logs.harness", "both LoadGen's and the native loop's logs are present")


def _required_keys(ctx: Context, scenario: Scenario, mode: str, run: RunFiles) -> None:
    table = ctx.rules.rules.get("logs.detail-keys") or {}
    groups = ["*"]
    if mode != "accuracy":
        groups += ["performance", scenario.scenario]
    if run.loop == "loadgen":
        groups += ["loadgen"] + (["loadgen-performance"] if mode != "accuracy" else [])
    for group in groups:
        for key in table.get(group) or []:
            if key not in run.detail.values:
                ctx.fail(run.detail.path, "logs.detail-keys", f"{key} is missing")


def _loop_results(run: RunFiles) -> dict[str, Any]:
    values = dict(run.detail.values)
    if run.loop == "loadgen":
        values["loadgen_errors"] = list(run.detail.errors)
    return values


def _result_json(ctx: Context, scenario: Scenario, run: RunFiles) -> None:
    result = run.result
    if not result:
        return
    path = run.path("result.json")
    values = _loop_results(run)
    expected = json.loads(json.dumps(performance_metrics(scenario.scenario, values)))
    _compare(ctx, path, "metrics", result.get("metrics") or {}, expected)
    valid, _reasons = validity(values)
    source = "the detail log"
    if "energy" in result:  # an invalid energy result makes the run invalid (energy_step)
        valid = valid and run.json("energy.json").get("valid") is True
        source += " and energy.json"
    if result.get("valid") is not valid:
        ctx.fail(
            path,
            "consistency.result-json",
            f"valid is {result.get('valid')!r}, {source} make it {valid}",
        )


def _compare(ctx: Context, path, prefix: str, claimed: Any, expected: Any) -> None:
    if isinstance(expected, dict):
        for key, value in expected.items():
            inner = claimed.get(key) if isinstance(claimed, dict) else None
            _compare(ctx, path, f"{prefix}.{key}", inner, value)
        return
    if isinstance(expected, list):
        claimed_list = claimed if isinstance(claimed, list) else []
        for index, value in enumerate(expected):
            inner = claimed_list[index] if index < len(claimed_list) else None
            _compare(ctx, path, f"{prefix}[{index}]", inner, value)
        return
    if not same(claimed, expected, rel=1e-9):
        ctx.fail(
            path,
            "consistency.result-json",
            f"{prefix} is {claimed!r}, the detail log gives {expected!r}",
        )


def _summary(ctx: Context, scenario: Scenario, run: RunFiles) -> None:
    summary = run.summary
    if summary is None:
        return
    path = run.log_path("summary")
    detail = run.detail
    stated = str(summary.get("Result is", "")).split(" ")[0]
    if stated != detail.get("result_validity"):
        ctx.fail(
            path,
            "consistency.summary",
            f"Result is {stated!r}, the detail log says {detail.get('result_validity')!r}",
        )
    latency = _QUERY_LATENCY_KEYS if scenario.scenario == "MultiStream" else _LATENCY_KEYS
    pairs = {**latency, **_SETTING_KEYS}
    if scenario.scenario in _HEADLINE:
        label, key = _HEADLINE[scenario.scenario]
        pairs[label] = key
    for label, key in pairs.items():
        if label in summary and key in detail.values and not same(summary[label], detail.get(key)):
            ctx.fail(
                path,
                "consistency.summary",
                f"{label} is {summary[label]}, the detail log says {detail.get(key)}",
            )
    processed = _PROCESSED.search(run.summary_text or "")
    count = detail.get("result_query_count")
    if processed and count is not None and int(processed.group(1)) != int(count):
        ctx.fail(
            path,
            "consistency.summary",
            f"processed {processed.group(1)} queries, the detail log says {count}",
        )


def _record(ctx: Context, run: RunFiles) -> None:
    record = run.record
    if not record:
        return
    if record.get("test_sut_fault"):
        ctx.fail(
            run.path("record.json"),
            "logs.test-fault",
            f"the run had the test-only fault {record['test_sut_fault']!r} switched on",
        )
    results = record.get("results") or {}
    for key, value in results.items():
        if not key.startswith(_RECORD_PREFIXES) or key not in run.detail.values:
            continue
        if not same(value, run.detail.get(key), rel=1e-9):
            ctx.fail(
                run.path("record.json"),
                "consistency.record",
                f"results.{key} is {value!r}, the detail log says {run.detail.get(key)!r}",
            )

"""The native loop's files: the summary text in LoadGen's layout, headed as the native loop's
own, and the detail JSON (the result dict as it is)."""

from __future__ import annotations

import json
import os
from typing import Dict, List

from .native_plan import MODE_NAMES, Plan, Trace
from .native_results import (
    ACCURACY_NAME,
    DETAIL_NAME,
    HARNESS,
    LOADGEN_LINE,
    ORDER_NOTE,
    PERCENTILES,
    SUMMARY_NAME,
    percentile_key,
    stat_key,
)

_RULE = "================================================"


def write_in_progress(
    outdir: str, plan: Plan, note: str = "run in progress or interrupted"
) -> None:
    """Until the run ends its summary says INCOMPLETE, so a killed run never looks finished."""
    lines = [*_identity(plan), f"Result is : INCOMPLETE ({note})"]
    _write_text(os.path.join(outdir, SUMMARY_NAME), "\n".join(lines) + "\n")


def write_outputs(outdir: str, plan: Plan, trace: Trace, results: Dict[str, object]) -> None:
    results["summary_path"] = os.path.join(outdir, SUMMARY_NAME)
    results["detail_path"] = os.path.join(outdir, DETAIL_NAME)
    if plan.mode == "accuracy":
        results["accuracy_log_path"] = os.path.join(outdir, ACCURACY_NAME)
    _write_text(str(results["detail_path"]), json.dumps(results, indent=1) + "\n")
    _write_text(str(results["summary_path"]), _summary(plan, trace, results))


def _write_text(path: str, text: str) -> None:
    """Write via a temporary file so a reader never sees half a file."""
    partial = path + ".part"
    with open(partial, "w") as handle:
        handle.write(text)
    os.replace(partial, path)


def _banner(title: str) -> List[str]:
    return [_RULE, title, _RULE]


def _identity(plan: Plan) -> List[str]:
    return _banner(HARNESS) + [
        LOADGEN_LINE,
        f"Scenario : {plan.scenario}",
        f"Mode     : {MODE_NAMES[plan.mode]}",
    ]


def _yes(flag: object) -> str:
    return "Yes" if flag else "NO"


def _summary(plan: Plan, trace: Trace, results: Dict[str, object]) -> str:
    """LoadGen's summary layout, headed and labelled as the native loop's own."""
    lines = _identity(plan)
    status = results.get("run_status")
    if plan.mode == "accuracy":
        lines += [
            f"Samples issued : {results.get('accuracy_log_entries', 0)} of "
            f"{plan.accuracy_sample_count}",
            f"Accuracy log : {ACCURACY_NAME}",
            f"Result is : {status} (accuracy mode has no performance result)",
        ]
        return "\n".join(lines + _footer(plan, results)) + "\n"
    lines += _headline(plan, results)
    validity = results.get("result_validity", "INVALID")
    lines.append(f"Result is : {validity}" + ("" if status == "COMPLETE" else " (INCOMPLETE)"))
    if "result_perf_constraints_met" in results:
        met = _yes(results["result_perf_constraints_met"])
        lines.append(f"  Performance constraints satisfied : {met}")
    lines += [
        f"  Min duration satisfied : {_yes(results.get('result_min_duration_met'))}",
        f"  Min queries satisfied : {_yes(results.get('result_min_queries_met'))}",
        f"  Early stopping satisfied: {_yes(results.get('early_stopping_met'))}",
    ]
    if validity != "VALID":
        lines.append("Recommendations:")
        lines += [f" * {reason}" for reason in results.get("result_invalid_reasons", [])]
    if trace.stopping_lines is not None:
        lines += ["Early Stopping Result:", *trace.stopping_lines]
    lines += ["", *_banner("Additional Stats"), *_additional(plan, results)]
    return "\n".join(lines + _footer(plan, results)) + "\n"


def _headline(plan: Plan, results: Dict[str, object]) -> List[str]:
    if plan.scenario in ("SingleStream", "MultiStream"):
        value = results.get("result_target_percentile_latency_ns", "n/a")
        return [f"{plan.percentile * 100:.1f}th percentile latency (ns) : {value}"]
    if plan.scenario == "Server":
        value = float(results.get("result_completed_samples_per_sec", 0.0))
        return [f"Completed samples per second    : {value:.2f}"]
    return [f"Samples per second: {float(results.get('result_samples_per_second', 0.0)):.2f}"]


def _additional(plan: Plan, results: Dict[str, object]) -> List[str]:
    lines: List[str] = []
    if plan.scenario == "SingleStream":
        with_overhead = float(results.get("result_qps_with_loadgen_overhead", 0.0))
        without = float(results.get("result_qps_without_loadgen_overhead", 0.0))
        lines += [
            f"QPS w/ native-loop overhead     : {with_overhead:.2f}",
            f"QPS w/o native-loop overhead    : {without:.2f}",
            "",
        ]
    elif plan.scenario == "Server":
        scheduled = float(results.get("result_scheduled_samples_per_sec", 0.0))
        lines += [f"Scheduled samples per second    : {scheduled:.2f}", ""]
    blocks = [("Per-query latency:", True)] if plan.scenario == "MultiStream" else []
    blocks.append(("Per-sample latency:" if blocks else "", False))
    for title, per_query in blocks:
        if stat_key("min", per_query) not in results:
            continue
        if title:
            lines.append(title)
        lines += [
            f"Min latency (ns)                : {results[stat_key('min', per_query)]}",
            f"Max latency (ns)                : {results[stat_key('max', per_query)]}",
            f"Mean latency (ns)               : {results[stat_key('mean', per_query)]}",
        ]
        for percentile in PERCENTILES:
            value = results[percentile_key(percentile, per_query)]
            lines.append(f"{percentile * 100:.2f} percentile latency (ns)   : {value}")
        lines.append("")
    return lines


def _footer(plan: Plan, results: Dict[str, object]) -> List[str]:
    params = [
        ("samples_per_query", plan.samples_per_query),
        ("target_qps", f"{plan.target_qps:g}"),
        ("target_latency (ns)", plan.target_latency_ns),
        ("max_async_queries", plan.max_async_queries),
        ("min_duration (ms)", f"{plan.min_duration_ns / 1e6:g}"),
        ("max_duration (ms)", f"{plan.max_duration_ns / 1e6:g}"),
        ("min_query_count", plan.min_query_count),
        ("max_query_count", plan.max_query_count),
        ("qsl_rng_seed", results.get("effective_qsl_rng_seed")),
        ("sample_index_rng_seed", results.get("effective_sample_index_rng_seed")),
        ("schedule_rng_seed", results.get("effective_schedule_rng_seed")),
        ("performance_sample_count", plan.performance_sample_count),
        ("accuracy_sample_count", plan.accuracy_sample_count),
        ("sample order", ORDER_NOTE),
    ]
    lines = ["", *_banner("Test Parameters Used")]
    lines += [f"{name} : {value}" for name, value in params]
    lines += ["", "No warnings encountered during test.", ""]
    errors = results.get("native_errors") or []
    if errors:
        lines.append(f"{len(errors)} ERROR(S) encountered:")
        lines += [f" * {error}" for error in errors]
    else:
        lines.append("No errors encountered during test.")
    return lines

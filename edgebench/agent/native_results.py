"""The native loop's result: LoadGen's PerformanceSummary (validity, percentiles, early
stopping, throughput) as a dict keyed like LoadGen's detail log, plus the names every output
uses to say it comes from the native loop and never from LoadGen."""

from __future__ import annotations

from array import array
from typing import Dict, List, Optional

import numpy as np

from . import early_stopping
from .native_plan import MODE_NAMES, Plan, Trace
from .settings import EffectiveSettings

SUMMARY_NAME = "native_log_summary.txt"
DETAIL_NAME = "native_log_detail.json"
ACCURACY_NAME = "native_log_accuracy.json"
HARNESS = "edgebench native loop (not MLPerf LoadGen)"
LOADGEN = "none (edgebench native loop)"
LOADGEN_LINE = f"loadgen: {LOADGEN}"
ORDER_NOTE = (
    "numpy MT19937 seeded with the low 32 bits of the MLPerf seeds; "
    "NOT LoadGen's order (LoadGen uses libstdc++ distributions)"
)

PERCENTILES = (0.50, 0.90, 0.95, 0.97, 0.99, 0.999)


def performance_results(plan: Plan, settings: EffectiveSettings, trace: Trace) -> Dict[str, object]:
    """LoadGen's PerformanceSummary: the validity tests, early stopping, then statistics."""
    results: Dict[str, object] = _header("COMPLETE")
    results.update(_effective(plan, settings))
    server = plan.scenario == "Server"
    results["generated_query_count"] = (
        trace.queries_issued if server else plan.generated_query_count
    )
    results["generated_samples_per_query"] = plan.samples_per_query
    results["loaded_qsl_set"] = trace.loaded
    samples = _sorted(trace.latencies)
    queries = trace.queries_issued
    if len(samples) == 0 or queries == 0:
        none_done = ["No query completed.", *trace.errors]
        results.update(_validity(trace, none_done, False, False, None, False))
        results["result_query_count"] = 0
        return results
    reasons: List[str] = []
    perf_met = _perf_constraints(plan, samples, reasons, results) if server else None
    duration_met = _min_duration_met(plan, trace, samples, reasons)
    queries_met = queries >= plan.min_query_count and len(samples) >= plan.min_sample_count
    if not queries_met:
        reasons.append(
            f"Min queries not met: {queries} queries / {len(samples)} samples issued, "
            f"{plan.min_query_count} / {plan.min_sample_count} required (the run ended early)."
        )
    stopping = _early_stopping(plan, trace, samples, results)
    results["early_stopping_result"] = ""  # Offline has none, as in LoadGen's detail log
    if stopping is not None:
        trace.stopping_lines = list(stopping.lines)
        results["early_stopping_result"] = " ".join(line.strip() for line in stopping.lines)
        if not stopping.met:
            reasons.append(stopping.reason)
    reasons.extend(trace.errors)
    stopping_met = stopping.met if stopping is not None else True
    results.update(_validity(trace, reasons, duration_met, queries_met, perf_met, stopping_met))
    results["result_query_count"] = queries
    results.update(_scenario_metrics(plan, trace, samples, stopping))
    results.update(_latency_stats(samples))
    return results


def accuracy_results(
    plan: Plan, settings: EffectiveSettings, trace: Trace, status: str
) -> Dict[str, object]:
    results: Dict[str, object] = _header(status)
    results.update(_effective(plan, settings))
    results["accuracy_log"] = ACCURACY_NAME
    results["accuracy_log_entries"] = trace.accuracy_entries
    results["result_query_count"] = trace.accuracy_entries
    results["native_errors"] = list(trace.errors)
    results["num_errors"] = len(trace.errors)
    return results


def _effective(plan: Plan, settings: EffectiveSettings) -> Dict[str, object]:
    """The settings as the loop used them, under LoadGen's effective_* names."""
    return {
        "effective_scenario": plan.scenario,
        "effective_test_mode": MODE_NAMES[plan.mode],
        "effective_samples_per_query": plan.samples_per_query,
        "effective_target_qps": plan.target_qps,
        "effective_target_latency_ns": plan.target_latency_ns,
        "effective_target_latency_percentile": plan.percentile,
        "effective_max_async_queries": plan.max_async_queries,
        "effective_target_duration_ms": plan.target_duration_ns / 1e6,
        "effective_min_duration_ms": plan.min_duration_ns / 1e6,
        "effective_max_duration_ms": plan.max_duration_ns / 1e6,
        "effective_min_query_count": plan.min_query_count,
        "effective_max_query_count": plan.max_query_count,
        "effective_min_sample_count": plan.min_sample_count,
        "effective_qsl_rng_seed": int(settings.qsl_rng_seed),
        "effective_sample_index_rng_seed": int(settings.sample_index_rng_seed),
        "effective_schedule_rng_seed": int(settings.schedule_rng_seed),
        "effective_performance_sample_count": plan.performance_sample_count,
        "effective_accuracy_sample_count": plan.accuracy_sample_count,
        "effective_accuracy_log_rng_seed": int(settings.accuracy_log_rng_seed),
        "effective_accuracy_log_sampling_target": int(settings.accuracy_log_sampling_target),
        "effective_performance_issue_same": bool(settings.performance_issue_same),
        "effective_performance_issue_same_index": int(settings.performance_issue_same_index),
    }


def _header(status: str) -> Dict[str, object]:
    return {
        "harness": HARNESS,
        "loadgen": LOADGEN,
        "sample_order": ORDER_NOTE,
        "run_status": status,
    }


def _latency_stats(values: np.ndarray, per_query: bool = False) -> Dict[str, int]:
    """Min/max/mean (integer mean, as LoadGen) and the six percentiles of sorted values."""
    n = len(values)
    stats = {
        stat_key("min", per_query): int(values[0]),
        stat_key("max", per_query): int(values[-1]),
        stat_key("mean", per_query): int(values.sum()) // n,
    }
    for percentile in PERCENTILES:
        stats[percentile_key(percentile, per_query)] = int(values[int(n * percentile)])
    return stats


def _rate(count: float, ns: int) -> float:
    return count * 1e9 / ns if ns > 0 else 0.0


def _sorted(values: array) -> np.ndarray:
    return np.sort(np.frombuffer(values, dtype=np.int64)) if len(values) else np.zeros(0, "i8")


def _validity(trace, reasons, duration_met, queries_met, perf_met, stopping_met):
    """LoadGen's detail keys for validity; reasons include the early-stopping shortfall and
    the "Ending early" errors that LoadGen logs separately, so one list explains the run."""
    valid = bool(duration_met and queries_met and stopping_met and perf_met is not False)
    entry: Dict[str, object] = {"result_validity": "VALID" if valid else "INVALID"}
    if perf_met is not None:
        entry["result_perf_constraints_met"] = perf_met
    entry["result_min_duration_met"] = duration_met
    entry["result_min_queries_met"] = queries_met
    entry["early_stopping_met"] = stopping_met
    entry["result_invalid_reasons"] = [] if valid else list(reasons)
    entry["result_invalid_reason"] = "" if valid else " ".join(reasons)
    entry["native_errors"] = list(trace.errors)
    entry["num_errors"] = len(trace.errors)
    return entry


def _perf_constraints(plan: Plan, samples: np.ndarray, reasons: list, results: dict) -> bool:
    """Server: the target-percentile latency (from scheduled time) within target_latency."""
    value = int(samples[int(len(samples) * plan.percentile)])
    results["result_target_percentile_latency_ns"] = value
    if value <= plan.target_latency_ns:
        return True
    reasons.append(
        f"{plan.percentile * 100:.1f}th percentile latency {value} ns is over target_latency "
        f"{plan.target_latency_ns} ns: reduce target_qps to improve latency."
    )
    return False


def _min_duration_met(plan: Plan, trace: Trace, samples: np.ndarray, reasons: list) -> bool:
    """LoadGen's MinDurationMet: each scenario is judged by a different clock."""
    if plan.scenario == "Offline":
        reached, what = int(samples[-1]), "the single query took"
        hint = "increase the expected QPS (target_qps) so the query holds more samples"
    elif plan.scenario == "Server":
        reached, what = trace.final_scheduled_ns, "the last query was scheduled at"
        hint = "increase target_qps so more queries are generated"
    else:
        reached, what = trace.final_issued_ns, "the last query was issued at"
        hint = "decrease the expected latency (target_latency) so more queries are generated"
    if reached >= plan.min_duration_ns:
        return True
    reasons.append(
        f"Min duration not met: {what} {reached / 1e9:.3f} s of "
        f"{plan.min_duration_ns / 1e9:.3f} s required; {hint}."
    )
    return False


def _early_stopping(plan, trace, samples, results) -> Optional[early_stopping.EarlyStopping]:
    if plan.scenario == "SingleStream":
        return early_stopping.latency_estimate(samples, plan.percentile)
    if plan.scenario == "MultiStream":
        return early_stopping.latency_estimate(_sorted(trace.query_latencies), plan.percentile)
    if plan.scenario == "Server":
        over = int(len(samples) - np.searchsorted(samples, plan.target_latency_ns + 1))
        results["result_overlatency_query_count"] = over
        return early_stopping.server_check(trace.queries_issued, over, plan.percentile)
    return None


def _scenario_metrics(plan, trace, samples, stopping) -> Dict[str, object]:
    """Each scenario's headline numbers, by LoadGen's formulas and key names."""
    n = len(samples)
    metrics: Dict[str, object] = {}
    if plan.scenario == "SingleStream":
        mean_ns = int(samples.sum()) // n
        secondary = early_stopping.secondary_estimate(
            samples, early_stopping.MULTISTREAM_PERCENTILE
        )
        trace.stopping_lines = (trace.stopping_lines or []) + secondary.lines
        metrics["result_target_percentile_latency_ns"] = int(samples[int(n * plan.percentile)])
        metrics["result_qps_with_loadgen_overhead"] = _rate(n - 1, trace.final_issued_ns)
        metrics["result_qps_without_loadgen_overhead"] = 1e9 / mean_ns if mean_ns else 0.0
        metrics["early_stopping_latency_ss"] = stopping.estimate_ns or 0
        metrics["early_stopping_latency_ms"] = secondary.estimate_ns or 0
    elif plan.scenario == "MultiStream":
        query_values = _sorted(trace.query_latencies)
        target = int(query_values[int(len(query_values) * plan.percentile)])
        metrics["result_target_percentile_latency_ns"] = target
        metrics.update(_latency_stats(query_values, per_query=True))
        metrics["early_stopping_latency_ms"] = stopping.estimate_ns or 0
    elif plan.scenario == "Server":
        metrics["result_scheduled_samples_per_sec"] = _rate(n - 1, trace.final_scheduled_ns)
        metrics["result_completed_samples_per_sec"] = _rate(n - 1, trace.final_done_ns)
    else:
        metrics["result_samples_per_second"] = _rate(n, int(samples[-1]))
    return metrics


def stat_key(stat: str, per_query: bool = False) -> str:
    """LoadGen's key for the min, max or mean latency (MultiStream also has per-query ones)."""
    return f"result_{stat}_{'query_latency' if per_query else 'latency'}_ns"


def percentile_key(percentile: float, per_query: bool = False) -> str:
    middle = "per_query_latency" if per_query else "latency"
    return f"result_{percentile * 100:.2f}_percentile_{middle}_ns"

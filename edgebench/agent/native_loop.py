"""The benchmark loop used where the official MLPerf LoadGen cannot be imported.

It runs LoadGen's scenario semantics (research notes §1, §2, §6; LoadGen 6.0.x
``loadgen.cc``, ``issue_query_controller.cc``, ``results.cc``) with one worker on the calling
thread, so a device without ``mlperf_loadgen`` still gives comparable numbers:

* queries are "pre-generated" as LoadGen does: SingleStream/MultiStream get a budget of
  ``max(min_query_count, 2 * min_duration / expected latency + 1)`` queries and end with
  "Ran out of generated queries" when the latency hint is too pessimistic; Server follows a
  Poisson schedule until a scheduled time reaches min_duration; Offline issues one query of
  ``max(min_query_count, 1.1 * min_duration_s * target_qps)`` samples;
* latency runs from the query's scheduled time (SS/MS: its issue time; Offline: the start;
  Server: start + exponential offsets, so queueing counts) to each sample's completion;
* SS/MS stop after a query once min_query_count and min_duration (by issue time) are both met,
  or at max_query_count / max_duration; validity, percentiles (``sorted[floor(n*p)]``), early
  stopping and throughput use LoadGen's formulas.

What differs, on purpose, and is said in every output: the sample order. LoadGen draws with
libstdc++'s ``std::shuffle``/``uniform_int_distribution``/``exponential_distribution`` over
``std::mt19937``; here the same three seeds (low 32 bits) feed numpy's MT19937 and numpy's
distributions, so the order is reproducible but is NOT LoadGen's. Offline also honours
max_duration as a safety stop (LoadGen cannot interrupt its single query).

Outputs: ``native_log_summary.txt``, ``native_log_detail.json`` and, in accuracy mode,
``native_log_accuracy.json``. They use LoadGen's key names so consumers read both loops alike,
but never LoadGen's file names and never claim to come from LoadGen.
"""

from __future__ import annotations

import json
import os
import time
from array import array
from dataclasses import dataclass, field
from itertools import cycle, islice
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from . import early_stopping
from .recorder import AccuracyLog, QueryRecorder
from .runtime import Engine
from .settings import EffectiveSettings

SUMMARY_NAME = "native_log_summary.txt"
DETAIL_NAME = "native_log_detail.json"
ACCURACY_NAME = "native_log_accuracy.json"
HARNESS = "edgebench native loop (not MLPerf LoadGen)"
LOADGEN_LINE = "loadgen: none (edgebench native loop)"
ORDER_NOTE = (
    "numpy MT19937 seeded with the low 32 bits of the MLPerf seeds; "
    "NOT LoadGen's order (LoadGen uses libstdc++ distributions)"
)

PERCENTILES = (0.50, 0.90, 0.95, 0.97, 0.99, 0.999)
CHUNK = 4096  # queries drawn (and checked against count limits) per batch
_NEVER = 1 << 62
_MODE_NAMES = {"performance": "PerformanceOnly", "accuracy": "AccuracyOnly"}
_RULE = "================================================"


class NativeLoopError(ValueError):
    """Settings the loop cannot run (raised before anything is measured)."""


@dataclass
class _Plan:
    """LoadGen's internal view of the settings (its TestSettingsInternal), in ns."""

    scenario: str
    mode: str
    samples_per_query: int
    target_qps: float
    target_latency_ns: int
    percentile: float
    max_async_queries: int
    target_duration_ns: int
    min_duration_ns: int
    max_duration_ns: int
    min_query_count: int
    max_query_count: int
    min_sample_count: int
    generated_query_count: int  # SS/MS budget, Offline 1; Server: set by its schedule
    performance_sample_count: int
    accuracy_sample_count: int
    total_count: int


@dataclass
class _Trace:
    """What the loop measured, filled as it goes so an interrupted run can still report."""

    start_ns: int = 0
    latencies: array = field(default_factory=lambda: array("q"))  # per sample
    query_latencies: array = field(default_factory=lambda: array("q"))  # MultiStream
    final_issued_ns: int = 0  # offsets from start_ns, of the last issued query
    final_scheduled_ns: int = 0
    final_done_ns: int = 0
    queries_issued: int = 0
    errors: List[str] = field(default_factory=list)
    loaded: List[int] = field(default_factory=list)
    accuracy_entries: int = 0
    stopping_lines: Optional[List[str]] = None  # the summary's early-stopping block


def run_native_loop(
    settings: EffectiveSettings,
    engine: Engine,
    recorder: QueryRecorder,
    outdir: str,
    total_count: int,
) -> Dict[str, object]:
    """Run one scenario in one mode and return LoadGen-style result keys (see module doc).

    On any exception (Ctrl-C included) the summary and detail are rewritten as INCOMPLETE
    with what was measured, the accuracy log is closed, and the exception propagates.
    """
    plan = _make_plan(settings, engine, total_count)
    os.makedirs(outdir, exist_ok=True)
    trace = _Trace()
    _write_text(os.path.join(outdir, SUMMARY_NAME), _in_progress_summary(plan))
    accuracy_log: Optional[AccuracyLog] = None
    try:
        if plan.mode == "accuracy":
            accuracy_log = AccuracyLog(os.path.join(outdir, ACCURACY_NAME))
            _run_accuracy(plan, settings, engine, recorder, accuracy_log, trace)
            accuracy_log.close()
            accuracy_log = None
            results = _accuracy_results(plan, settings, trace, "COMPLETE")
        else:
            _run_performance(plan, settings, engine, recorder, trace)
            results = _performance_results(plan, settings, trace)
    except BaseException as error:
        if accuracy_log is not None:
            accuracy_log.close()
            accuracy_log = None
        _record_interruption(plan, settings, trace, outdir, error)
        raise
    finally:
        recorder.flush()
    _write_outputs(outdir, plan, trace, results)
    return results


# --------------------------------------------------------------------------- settings


def _make_plan(settings: EffectiveSettings, engine: Engine, total_count: int) -> _Plan:
    """Derive what LoadGen derives (target_qps from the latency hint, the Offline query size,
    the query budget) and reject settings no run could satisfy."""
    scenario, mode = settings.scenario, settings.mode
    if scenario not in ("SingleStream", "MultiStream", "Server", "Offline"):
        raise NativeLoopError(f"unknown scenario {scenario!r}")
    if mode not in _MODE_NAMES:
        raise NativeLoopError(f"unknown mode {mode!r} (use performance or accuracy)")
    available = int(getattr(engine, "sample_count", total_count))
    if total_count < 1 or total_count > available:
        raise NativeLoopError(
            f"total_count {total_count} must be between 1 and the {available} samples "
            f"given to the engine (Engine.set_samples)"
        )
    psc = min(int(settings.performance_sample_count), total_count)
    if psc < 1:
        raise NativeLoopError("performance_sample_count must be at least 1")
    accuracy_count = min(int(settings.accuracy_sample_count or total_count), total_count)
    spq = int(settings.samples_per_query) if scenario == "MultiStream" else 1
    if spq < 1:
        raise NativeLoopError(f"samples_per_query must be >= 1, got {spq}")
    min_duration_ns = int(settings.min_duration_ms * 1_000_000)
    min_queries = int(settings.min_query_count)
    target_duration_ns = min_duration_ns
    max_async = 1
    generated = 1
    if scenario in ("SingleStream", "MultiStream"):
        if settings.target_latency_ns <= 0:
            raise NativeLoopError(
                f"{scenario} needs target_latency > 0 (the expected latency that sizes the run)"
            )
        target_qps = 1e9 / settings.target_latency_ns
        generated = _closed_loop_budget(2 * target_duration_ns, target_qps, min_queries)
    else:
        target_qps = float(settings.target_qps)
        if target_qps <= 0:
            raise NativeLoopError(f"{scenario} needs target_qps > 0, got {target_qps}")
    if scenario == "Server":
        max_async = int(settings.max_async_queries)
    if scenario == "Offline":
        # LoadGen: kSlack * seconds * qps, truncated; then the query count becomes 1.
        spq = max(min_queries, int(1.1 * (target_duration_ns / 1e9) * target_qps), 1)
        min_queries = 1
        target_duration_ns = 0
    return _Plan(
        scenario=scenario,
        mode=mode,
        samples_per_query=spq,
        target_qps=target_qps,
        target_latency_ns=int(settings.target_latency_ns),
        percentile=float(settings.target_latency_percentile),
        max_async_queries=max_async,
        target_duration_ns=target_duration_ns,
        min_duration_ns=min_duration_ns,
        max_duration_ns=int(settings.max_duration_ms * 1_000_000),
        min_query_count=min_queries,
        max_query_count=int(settings.max_query_count),
        min_sample_count=min_queries * spq,
        generated_query_count=generated,
        performance_sample_count=psc,
        accuracy_sample_count=accuracy_count,
        total_count=total_count,
    )


def _closed_loop_budget(gen_duration_ns: int, qps: float, min_queries: int) -> int:
    """LoadGen's SS/MS pre-generation: timestamps 0, P, 2P, ... until the previous one has
    reached gen_duration (twice min_duration) and there are min_query_count of them."""
    period = max(1, int((1.0 / qps) * 1e9))
    by_time = 0 if gen_duration_ns <= 0 else -(-gen_duration_ns // period) + 1
    return max(by_time, min_queries, 1)


def _rng(seed: int) -> np.random.Generator:
    return np.random.Generator(np.random.MT19937(int(seed) & 0xFFFFFFFF))


# --------------------------------------------------------------------------- performance


def _run_performance(
    plan: _Plan,
    settings: EffectiveSettings,
    engine: Engine,
    recorder: QueryRecorder,
    trace: _Trace,
) -> None:
    """Load the first loadable set of a seeded shuffle and run the scenario over it."""
    order = _rng(settings.qsl_rng_seed).permutation(plan.total_count)
    loaded = order[: plan.performance_sample_count].astype(np.int64)
    trace.loaded = loaded.tolist()
    sample_rng = _rng(settings.sample_index_rng_seed)
    if plan.scenario == "SingleStream":
        _single_stream(plan, engine, recorder, trace, loaded, sample_rng)
    elif plan.scenario == "MultiStream":
        _multi_stream(plan, engine, recorder, trace, loaded, sample_rng)
    elif plan.scenario == "Server":
        schedule_rng = _rng(settings.schedule_rng_seed)
        _server(plan, engine, recorder, trace, loaded, sample_rng, schedule_rng)
    else:
        _offline(plan, engine, recorder, trace, loaded)


def _single_stream_chunk(indices, deadline, now, infer, record, append) -> Tuple[bool, int]:
    """The timed inner loop: nothing but the sample copy and invoke between the two clocks.

    Everything is a parameter so each name is a fast local; the only per-query check is one
    compare against a deadline (count limits are handled by the batch size).
    """
    issued = 0
    for index in indices:
        issued = now()
        infer(index)
        done = now()
        record(index, issued, done)
        append(done - issued)
        if issued >= deadline:
            return True, issued
    return False, issued


def _multi_stream_chunk(
    queries, deadline, now, infer, record, append_sample, append_query
) -> Tuple[bool, int]:
    """A query's samples back to back; its latency is the last completion minus its issue."""
    issued = 0
    for samples in queries:
        issued = now()
        done = issued
        for index in samples:
            started = now()
            infer(index)
            done = now()
            record(index, started, done)
            append_sample(done - issued)
        append_query(done - issued)
        if issued >= deadline:
            return True, issued
    return False, issued


def _drive_closed_loop(
    plan: _Plan,
    trace: _Trace,
    draw: Callable[[int], list],
    run_chunk: Callable[[list, int], Tuple[bool, int]],
    count: Callable[[], int],
) -> None:
    """LoadGen's SS/MS issue loop. After each query, in LoadGen's order: stop naturally (min
    queries and min duration by issue time), then on max_query_count, then on max_duration;
    running through the pre-generated budget is the "ran out" error.

    Batches end exactly at min_query_count, max_query_count and the budget, so inside a batch
    only the time deadline needs checking: max_duration before min_query_count is reached,
    the earlier of min_duration and max_duration after.
    """
    start = trace.start_ns
    min_end = start + plan.min_duration_ns
    max_end = start + plan.max_duration_ns if plan.max_duration_ns > 0 else _NEVER
    stop_at = plan.generated_query_count
    if plan.max_query_count > 0:
        stop_at = min(stop_at, plan.max_query_count)
    while True:
        issued_count = count()
        enough = issued_count >= plan.min_query_count
        boundary = stop_at if enough else min(stop_at, plan.min_query_count)
        deadline = min(min_end, max_end + 1) if enough else max_end + 1
        broke, issued = run_chunk(draw(min(CHUNK, boundary - issued_count)), deadline)
        issued_count = count()
        trace.queries_issued = issued_count
        trace.final_issued_ns = issued - start
        if issued_count >= plan.min_query_count and issued >= min_end:
            return
        if plan.max_query_count > 0 and issued_count >= plan.max_query_count:
            trace.errors.append(_max_queries_error(issued_count))
            return
        if broke:
            duration = issued - start
            trace.errors.append(f"Ending early: Max test duration reached. duration_ns {duration}")
            return
        if issued_count >= plan.generated_query_count:
            trace.errors.append(
                "Ending early: Ran out of generated queries to issue before the minimum query "
                "count and test duration were reached. Set target_latency closer to the real "
                "latency so more queries are generated."
            )
            return


def _max_queries_error(count: int) -> str:
    return f"Ending early: Max query count reached. query_count {count}"


def _single_stream(plan, engine, recorder, trace, loaded, sample_rng) -> None:
    """One sample per query, drawn uniformly with replacement from the loaded set."""
    now, infer, record = time.monotonic_ns, engine.infer, recorder.record
    append = trace.latencies.append
    psc = len(loaded)

    def draw(size: int) -> list:
        return loaded[sample_rng.integers(0, psc, size=size)].tolist()

    def run_chunk(indices: list, deadline: int) -> Tuple[bool, int]:
        return _single_stream_chunk(indices, deadline, now, infer, record, append)

    trace.start_ns = now()
    _drive_closed_loop(plan, trace, draw, run_chunk, trace.latencies.__len__)


def _multi_stream(plan, engine, recorder, trace, loaded, sample_rng) -> None:
    """samples_per_query contiguous samples from a uniform start in the loaded set."""
    now, infer, record = time.monotonic_ns, engine.infer, recorder.record
    append_sample, append_query = trace.latencies.append, trace.query_latencies.append
    spq, psc = plan.samples_per_query, len(loaded)
    # As LoadGen does, pad the loaded set with its first spq - 1 samples so any start fits.
    padded = [int(loaded[i % psc]) for i in range(psc + spq - 1)]

    def draw(size: int) -> list:
        return [padded[s : s + spq] for s in sample_rng.integers(0, psc, size=size).tolist()]

    def run_chunk(queries: list, deadline: int) -> Tuple[bool, int]:
        return _multi_stream_chunk(
            queries, deadline, now, infer, record, append_sample, append_query
        )

    trace.start_ns = now()
    _drive_closed_loop(plan, trace, draw, run_chunk, trace.query_latencies.__len__)


def _server_chunk(
    indices, scheduled, max_end, now, sleep, infer, record, append
) -> Tuple[bool, int, int]:
    """Wait for each query's scheduled time by sleeping (as LoadGen's sleep_until does, so
    wake-up lateness is charged the same way), then run it; latency counts from the
    scheduled time, so a backlog shows up as queueing delay."""
    started = due = 0
    for index, due in zip(indices, scheduled):
        started = now()
        if started < due:
            sleep((due - started) * 1e-9)
            started = now()
        infer(index)
        done = now()
        record(index, started, done)
        append(done - due)
        if started > max_end:
            return True, started, due
    return False, started, due


def _server_schedule(
    plan: _Plan, schedule_rng: np.random.Generator, first_offset: int, issued: int, size: int
) -> Tuple[np.ndarray, int, bool]:
    """The next `size` scheduled offsets (ns from start), cut where LoadGen's generation loop
    would stop: at the first query at or past min_duration once min_query_count exist.
    Returns (offsets, the offset after the last one, whether the schedule ends here)."""
    gaps = (schedule_rng.exponential(1.0 / plan.target_qps, size=size) * 1e9).astype(np.int64)
    offsets = np.empty(size, dtype=np.int64)
    offsets[0] = first_offset
    np.cumsum(gaps[:-1], out=offsets[1:])
    offsets[1:] += first_offset
    following = int(offsets[-1] + gaps[-1])
    positions = np.arange(issued + 1, issued + size + 1)
    last = np.nonzero((offsets >= plan.target_duration_ns) & (positions >= plan.min_query_count))
    if len(last[0]):
        return offsets[: int(last[0][0]) + 1], following, True
    return offsets, following, False


def _server(plan, engine, recorder, trace, loaded, sample_rng, schedule_rng) -> None:
    """Poisson arrivals at target_qps, one worker; max_query_count / max_duration stop early."""
    now, infer, record = time.monotonic_ns, engine.infer, recorder.record
    append = trace.latencies.append
    psc = len(loaded)
    issued_count = 0
    next_offset = 0
    start = trace.start_ns = now()
    max_end = start + plan.max_duration_ns if plan.max_duration_ns > 0 else _NEVER
    while True:
        size = CHUNK
        if plan.max_query_count > 0:
            size = min(size, plan.max_query_count - issued_count)
        offsets, next_offset, exhausted = _server_schedule(
            plan, schedule_rng, next_offset, issued_count, size
        )
        indices = loaded[sample_rng.integers(0, psc, size=len(offsets))].tolist()
        scheduled = (offsets + start).tolist()
        broke, started, due = _server_chunk(
            indices, scheduled, max_end, now, time.sleep, infer, record, append
        )
        issued_count = len(trace.latencies)
        trace.queries_issued = issued_count
        trace.final_issued_ns = started - start
        trace.final_scheduled_ns = due - start
        trace.final_done_ns = trace.final_scheduled_ns + trace.latencies[-1]
        if plan.max_query_count > 0 and issued_count >= plan.max_query_count:
            trace.errors.append(_max_queries_error(issued_count))
            return
        if broke:
            duration = started - start
            trace.errors.append(f"Ending early: Max test duration reached. duration_ns {duration}")
            return
        if exhausted:
            return


def _offline_run(samples, start, max_end, now, infer, record, append) -> int:
    done = start
    for index in samples:
        started = now()
        infer(index)
        done = now()
        record(index, started, done)
        append(done - start)
        if done > max_end:
            break
    return done


def _offline(plan, engine, recorder, trace, loaded) -> None:
    """One query of samples_per_query samples at t = 0: the loaded set repeated in order, as
    LoadGen's Offline performance query is (no random draws)."""
    now = time.monotonic_ns
    samples = islice(cycle(loaded.tolist()), plan.samples_per_query)
    start = trace.start_ns = now()
    max_end = start + plan.max_duration_ns if plan.max_duration_ns > 0 else _NEVER
    trace.queries_issued = 1
    done = _offline_run(
        samples, start, max_end, now, engine.infer, recorder.record, trace.latencies.append
    )
    trace.final_done_ns = done - start
    completed = len(trace.latencies)
    if completed < plan.samples_per_query:
        trace.errors.append(
            f"Ending early: Max test duration reached after {completed} of "
            f"{plan.samples_per_query} samples (the native loop's Offline safety stop)."
        )


# --------------------------------------------------------------------------- accuracy


def _run_accuracy(
    plan: _Plan,
    settings: EffectiveSettings,
    engine: Engine,
    recorder: QueryRecorder,
    log: AccuracyLog,
    trace: _Trace,
) -> None:
    """Every sample exactly once: a qsl-seeded shuffle cut into loadable sets, each set issued
    in a sample-seeded order; every output goes to the accuracy log (qsl_idx = index)."""
    order = _rng(settings.qsl_rng_seed).permutation(plan.accuracy_sample_count)
    sample_rng = _rng(settings.sample_index_rng_seed)
    now, infer, record = time.monotonic_ns, engine.infer, recorder.record
    output, add = engine.output_bytes, log.add
    append = trace.latencies.append
    trace.start_ns = now()
    seq_id = 0
    step = plan.performance_sample_count
    for first in range(0, len(order), step):
        chunk = order[first : first + step]
        for index in chunk[sample_rng.permutation(len(chunk))].tolist():
            started = now()
            infer(index)
            done = now()
            record(index, started, done)
            append(done - started)
            add(seq_id, index, output())
            seq_id += 1
            trace.accuracy_entries = seq_id
    trace.queries_issued = seq_id
    trace.final_done_ns = now() - trace.start_ns


# --------------------------------------------------------------------------- results


def _effective(plan: _Plan, settings: EffectiveSettings) -> Dict[str, object]:
    """The settings as the loop used them, under LoadGen's effective_* names."""
    return {
        "effective_scenario": plan.scenario,
        "effective_test_mode": _MODE_NAMES[plan.mode],
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
    }


def _header(status: str) -> Dict[str, object]:
    return {
        "harness": HARNESS,
        "loadgen": "none (edgebench native loop)",
        "sample_order": ORDER_NOTE,
        "run_status": status,
    }


def _percentile_key(percentile: float, per_query: bool = False) -> str:
    middle = "per_query_latency" if per_query else "latency"
    return f"result_{percentile * 100:.2f}_percentile_{middle}_ns"


def _latency_stats(values: np.ndarray, per_query: bool = False) -> Dict[str, int]:
    """Min/max/mean (integer mean, as LoadGen) and the six percentiles of sorted values."""
    n = len(values)
    label = "query_latency" if per_query else "latency"
    stats = {
        f"result_min_{label}_ns": int(values[0]),
        f"result_max_{label}_ns": int(values[-1]),
        f"result_mean_{label}_ns": int(values.sum()) // n,
    }
    for percentile in PERCENTILES:
        stats[_percentile_key(percentile, per_query)] = int(values[int(n * percentile)])
    return stats


def _rate(count: float, ns: int) -> float:
    return count * 1e9 / ns if ns > 0 else 0.0


def _sorted(values: array) -> np.ndarray:
    return np.sort(np.frombuffer(values, dtype=np.int64)) if len(values) else np.zeros(0, "i8")


def _performance_results(
    plan: _Plan, settings: EffectiveSettings, trace: _Trace
) -> Dict[str, object]:
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
        reasons = ["No query completed.", *trace.errors]
        results.update(_validity(trace, reasons, False, False, None, False))
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


def _perf_constraints(plan: _Plan, samples: np.ndarray, reasons: list, results: dict) -> bool:
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


def _min_duration_met(plan: _Plan, trace: _Trace, samples: np.ndarray, reasons: list) -> bool:
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


def _accuracy_results(plan, settings, trace, status: str) -> Dict[str, object]:
    results: Dict[str, object] = _header(status)
    results.update(_effective(plan, settings))
    results["accuracy_log"] = ACCURACY_NAME
    results["accuracy_log_entries"] = trace.accuracy_entries
    results["result_query_count"] = trace.accuracy_entries
    results["native_errors"] = list(trace.errors)
    results["num_errors"] = len(trace.errors)
    return results


def _settle_partial(plan: _Plan, trace: _Trace) -> None:
    """Fill in the counters a cut-off loop had no chance to update."""
    if plan.scenario == "MultiStream":
        trace.queries_issued = len(trace.query_latencies)
    elif plan.scenario == "Offline":
        trace.queries_issued = 1 if len(trace.latencies) else 0
        trace.final_done_ns = max(trace.latencies) if len(trace.latencies) else 0
    else:
        trace.queries_issued = len(trace.latencies)


def _record_interruption(plan, settings, trace, outdir, error: BaseException) -> None:
    """Best effort: the run's files must say INCOMPLETE even if computing more fails."""
    detail = str(error)
    note = f"Run interrupted ({type(error).__name__}{': ' + detail if detail else ''})"
    trace.errors.append(note)
    try:
        _write_text(os.path.join(outdir, SUMMARY_NAME), _in_progress_summary(plan, note))
        if plan.mode == "accuracy":
            results = _accuracy_results(plan, settings, trace, "INCOMPLETE")
        else:
            _settle_partial(plan, trace)
            results = _performance_results(plan, settings, trace)
            results["run_status"] = "INCOMPLETE"
            results["result_validity"] = "INVALID"
            reasons = list(results.get("result_invalid_reasons") or []) or [note]
            results["result_invalid_reasons"] = reasons
            results["result_invalid_reason"] = " ".join(reasons)
        _write_outputs(outdir, plan, trace, results)
    except Exception:  # never let reporting hide the interruption itself
        pass


# --------------------------------------------------------------------------- files


def _write_text(path: str, text: str) -> None:
    """Write via a temporary file so a reader never sees half a file."""
    partial = path + ".part"
    with open(partial, "w") as handle:
        handle.write(text)
    os.replace(partial, path)


def _write_outputs(outdir: str, plan: _Plan, trace: _Trace, results: Dict[str, object]) -> None:
    results["summary_path"] = os.path.join(outdir, SUMMARY_NAME)
    results["detail_path"] = os.path.join(outdir, DETAIL_NAME)
    if plan.mode == "accuracy":
        results["accuracy_log_path"] = os.path.join(outdir, ACCURACY_NAME)
    _write_text(str(results["detail_path"]), json.dumps(results, indent=1) + "\n")
    _write_text(str(results["summary_path"]), _summary(plan, trace, results))


def _banner(title: str) -> List[str]:
    return [_RULE, title, _RULE]


def _identity(plan: _Plan) -> List[str]:
    return _banner(HARNESS) + [
        LOADGEN_LINE,
        f"Scenario : {plan.scenario}",
        f"Mode     : {_MODE_NAMES[plan.mode]}",
    ]


def _in_progress_summary(plan: _Plan, note: str = "run in progress or interrupted") -> str:
    return "\n".join([*_identity(plan), f"Result is : INCOMPLETE ({note})"]) + "\n"


def _yes(flag: object) -> str:
    return "Yes" if flag else "NO"


def _summary(plan: _Plan, trace: _Trace, results: Dict[str, object]) -> str:
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


def _headline(plan: _Plan, results: Dict[str, object]) -> List[str]:
    if plan.scenario in ("SingleStream", "MultiStream"):
        value = results.get("result_target_percentile_latency_ns", "n/a")
        return [f"{plan.percentile * 100:.1f}th percentile latency (ns) : {value}"]
    if plan.scenario == "Server":
        value = float(results.get("result_completed_samples_per_sec", 0.0))
        return [f"Completed samples per second    : {value:.2f}"]
    return [f"Samples per second: {float(results.get('result_samples_per_second', 0.0)):.2f}"]


def _additional(plan: _Plan, results: Dict[str, object]) -> List[str]:
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
        label = "query_latency" if per_query else "latency"
        if f"result_min_{label}_ns" not in results:
            continue
        if title:
            lines.append(title)
        lines += [
            f"Min latency (ns)                : {results[f'result_min_{label}_ns']}",
            f"Max latency (ns)                : {results[f'result_max_{label}_ns']}",
            f"Mean latency (ns)               : {results[f'result_mean_{label}_ns']}",
        ]
        for percentile in PERCENTILES:
            value = results[_percentile_key(percentile, per_query)]
            lines.append(f"{percentile * 100:.2f} percentile latency (ns)   : {value}")
        lines.append("")
    return lines


def _footer(plan: _Plan, results: Dict[str, object]) -> List[str]:
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

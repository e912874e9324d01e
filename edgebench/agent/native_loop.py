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

The parts: ``native_plan`` (settings to LoadGen's derived plan), ``native_scenarios`` (the
timed loops), ``native_results`` (the result dict) and ``native_summary`` (the files).
"""

from __future__ import annotations

import os
from typing import Dict, Optional

from .audit import sample_outputs, sampling_probability
from .native_plan import NativeLoopError, Plan, Trace, make_plan
from .native_results import (
    ACCURACY_NAME,
    DETAIL_NAME,
    HARNESS,
    LOADGEN_LINE,
    ORDER_NOTE,
    SUMMARY_NAME,
    accuracy_results,
    performance_results,
)
from .native_scenarios import run_accuracy, run_performance, settle_partial
from .native_summary import write_in_progress, write_outputs
from .recorder import AccuracyLog, QueryRecorder
from .runtime import Engine
from .settings import EffectiveSettings

__all__ = [
    "ACCURACY_NAME",
    "DETAIL_NAME",
    "HARNESS",
    "LOADGEN_LINE",
    "ORDER_NOTE",
    "SUMMARY_NAME",
    "NativeLoopError",
    "run_native_loop",
]


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
    plan = make_plan(settings, engine, total_count)
    os.makedirs(outdir, exist_ok=True)
    trace = Trace()
    write_in_progress(outdir, plan)
    accuracy_log: Optional[AccuracyLog] = None
    try:
        if plan.mode == "accuracy":
            accuracy_log = AccuracyLog(os.path.join(outdir, ACCURACY_NAME))
            run_accuracy(plan, settings, engine, recorder, accuracy_log, trace)
            accuracy_log.close()
            accuracy_log = None
            results = accuracy_results(plan, settings, trace, "COMPLETE")
        else:
            if settings.accuracy_log_sampling_target > 0:  # TEST01: log a sample of outputs
                accuracy_log = AccuracyLog(os.path.join(outdir, ACCURACY_NAME))
                sampled = sample_outputs(
                    engine.infer,
                    engine.output_bytes,
                    accuracy_log,
                    sampling_probability(plan, settings.accuracy_log_sampling_target),
                    settings.accuracy_log_rng_seed,
                )
                engine.infer = sampled  # type: ignore[method-assign]
            run_performance(plan, settings, engine, recorder, trace)
            if accuracy_log is not None:
                accuracy_log.close()
                accuracy_log = None
            results = performance_results(plan, settings, trace)
    except BaseException as error:
        if accuracy_log is not None:
            accuracy_log.close()
        _record_interruption(plan, settings, trace, outdir, error)
        raise
    finally:
        recorder.flush()
    write_outputs(outdir, plan, trace, results)
    return results


def _record_interruption(
    plan: Plan, settings: EffectiveSettings, trace: Trace, outdir: str, error: BaseException
) -> None:
    """Best effort: the run's files must say INCOMPLETE even if computing more fails."""
    detail = str(error)
    note = f"Run interrupted ({type(error).__name__}{': ' + detail if detail else ''})"
    trace.errors.append(note)
    try:
        write_in_progress(outdir, plan, note)
        if plan.mode == "accuracy":
            results = accuracy_results(plan, settings, trace, "INCOMPLETE")
        else:
            settle_partial(plan, trace)
            results = performance_results(plan, settings, trace)
            results["run_status"] = "INCOMPLETE"
            results["result_validity"] = "INVALID"
            reasons = list(results.get("result_invalid_reasons") or []) or [note]
            results["result_invalid_reasons"] = reasons
            results["result_invalid_reason"] = " ".join(reasons)
        write_outputs(outdir, plan, trace, results)
    except Exception:  # never let reporting hide the interruption itself
        pass

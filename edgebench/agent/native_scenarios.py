"""The native loop's timed part: the four scenarios and accuracy mode, one worker on the
calling thread, filling a Trace.

The inner loops take everything as parameters so each name is a fast local and nothing but
the sample copy and invoke sits between the two clock reads.
"""

from __future__ import annotations

import time
from itertools import cycle, islice
from typing import Callable, Tuple

import numpy as np

from .audit import issued_sample
from .native_plan import Plan, Trace
from .recorder import AccuracyLog, QueryRecorder
from .runtime import Engine
from .settings import EffectiveSettings

CHUNK = 4096  # queries drawn (and checked against count limits) per batch
_NEVER = 1 << 62


def _rng(seed: int) -> np.random.Generator:
    return np.random.Generator(np.random.MT19937(int(seed) & 0xFFFFFFFF))


def _max_end(plan: Plan, start: int) -> int:
    return start + plan.max_duration_ns if plan.max_duration_ns > 0 else _NEVER


def _max_queries_error(count: int) -> str:
    return f"Ending early: Max query count reached. query_count {count}"


def _max_duration_error(duration_ns: int) -> str:
    return f"Ending early: Max test duration reached. duration_ns {duration_ns}"


def run_performance(
    plan: Plan,
    settings: EffectiveSettings,
    engine: Engine,
    recorder: QueryRecorder,
    trace: Trace,
) -> None:
    """Load the first loadable set of a seeded shuffle and run the scenario over it."""
    order = _rng(settings.qsl_rng_seed).permutation(plan.total_count)
    loaded = order[: plan.performance_sample_count].astype(np.int64)
    trace.loaded = loaded.tolist()
    same = issued_sample(loaded, settings)
    if same is not None:  # TEST04: every query repeats one loaded sample
        loaded = np.full_like(loaded, same)
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
    """The only per-query check is one compare against a deadline (count limits are handled
    by the batch size)."""
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
    plan: Plan,
    trace: Trace,
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
    max_end = _max_end(plan, start)
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
            trace.errors.append(_max_duration_error(issued - start))
            return
        if issued_count >= plan.generated_query_count:
            trace.errors.append(
                "Ending early: Ran out of generated queries to issue before the minimum query "
                "count and test duration were reached. Set target_latency closer to the real "
                "latency so more queries are generated."
            )
            return


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
    plan: Plan, schedule_rng: np.random.Generator, first_offset: int, issued: int, size: int
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
    max_end = _max_end(plan, start)
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
            trace.errors.append(_max_duration_error(started - start))
            return
        if exhausted:
            return


def _offline_run(samples, start, max_end, now, infer, record, append) -> int:
    """Every latency counts from the query's start; past max_end the query is cut short."""
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
    max_end = _max_end(plan, start)
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


def run_accuracy(
    plan: Plan,
    settings: EffectiveSettings,
    engine: Engine,
    recorder: QueryRecorder,
    log: AccuracyLog,
    trace: Trace,
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


def settle_partial(plan: Plan, trace: Trace) -> None:
    """Fill in the counters a cut-off loop had no chance to update."""
    if plan.scenario == "MultiStream":
        trace.queries_issued = len(trace.query_latencies)
    elif plan.scenario == "Offline":
        trace.queries_issued = 1 if len(trace.latencies) else 0
        trace.final_done_ns = max(trace.latencies) if len(trace.latencies) else 0
    else:
        trace.queries_issued = len(trace.latencies)

"""The native loop's plan and trace: what LoadGen would derive from the settings (checked
before anything is measured) and what the run measured, shared by the loop's modules."""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from typing import List, Optional

from .runtime import Engine
from .settings import EffectiveSettings

MODE_NAMES = {"performance": "PerformanceOnly", "accuracy": "AccuracyOnly"}


class NativeLoopError(ValueError):
    """Settings the loop cannot run (raised before anything is measured)."""


@dataclass
class Plan:
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
class Trace:
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


def make_plan(settings: EffectiveSettings, engine: Engine, total_count: int) -> Plan:
    """Derive what LoadGen derives (target_qps from the latency hint, the Offline query size,
    the query budget) and reject settings no run could satisfy."""
    scenario, mode = settings.scenario, settings.mode
    if scenario not in ("SingleStream", "MultiStream", "Server", "Offline"):
        raise NativeLoopError(f"unknown scenario {scenario!r}")
    if mode not in MODE_NAMES:
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
    return Plan(
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

"""The results directory of one run and its result.json (versioned schema).

result.json is written when the run starts (status "running") and rewritten at each step, so
a crash or Ctrl-C leaves a directory that says what happened: "incomplete" (interrupted) or
"failed" (with the error), never an empty folder.
"""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULT_SCHEMA = "edgebench.result/1"
PERCENTILES = ("50.00", "90.00", "95.00", "97.00", "99.00", "99.90")


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def new_run_id(device: str, benchmark: str, scenario: str, mode: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-%f")[:-3]
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{device}-{benchmark}-{scenario}-{mode}")
    return f"{stamp}-{safe}"


def result_head(
    run_id: str,
    benchmark: Any,
    scenario: str,
    mode: str,
    device: Any,
    settings_profile: Any,
    version: str,
) -> dict[str, Any]:
    """The fields every result.json starts with, whatever the transport: what runs, where,
    on which model and data, under which settings profile."""
    return {
        "run_id": run_id,
        "status": "running",
        "valid": None,
        "benchmark": benchmark.name,
        "benchmark_source": benchmark.source,
        "division": benchmark.division,
        "task": benchmark.task,
        "scenario": scenario,
        "mode": mode,
        "device": {"name": device.name, "transport": device.transport},
        "model": {"file": str(benchmark.model_path), "sha256": benchmark.model_sha256},
        "dataset": {
            "file": str(benchmark.dataset_path) if benchmark.dataset_path else None,
            "sha256": benchmark.dataset_sha256,
            "count": benchmark.dataset_count,
        },
        "settings_profile": settings_profile.name,
        "submission_grade": settings_profile.submission_grade,
        "edgebench_version": version,
        "started_utc": utc_now(),
    }


class ResultWriter:
    """Keeps result.json current; every update is an atomic replace."""

    def __init__(self, directory: Path, initial: dict[str, Any]) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.data: dict[str, Any] = {"schema": RESULT_SCHEMA, **initial}
        self.write()

    def update(self, **fields: Any) -> None:
        self.data.update(fields)
        self.write()

    def write(self) -> None:
        path = self.directory / "result.json"
        temporary = path.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(self.data, indent=2, default=str) + "\n")
        os.replace(temporary, path)


class ResultsError(ValueError):
    """A directory that is not an edgebench results directory."""


def load_result(directory: Path) -> dict[str, Any]:
    path = directory / "result.json"
    if not path.is_file():
        raise ResultsError(
            f"{directory} has no result.json; pass a run directory such as results/<run-id>"
        )
    data = json.loads(path.read_text())
    if data.get("schema") != RESULT_SCHEMA:
        raise ResultsError(f"{path}: schema {data.get('schema')!r}, expected {RESULT_SCHEMA}")
    return data


def performance_metrics(scenario: str, results: dict[str, Any]) -> dict[str, Any]:
    """The figures a reader wants, from LoadGen's (or the native loop's) detail keys."""
    latency = {
        "min": results.get("result_min_latency_ns"),
        "mean": results.get("result_mean_latency_ns"),
        "max": results.get("result_max_latency_ns"),
    }
    for pct in PERCENTILES:
        latency[f"p{pct.rstrip('0').rstrip('.')}"] = results.get(
            f"result_{pct}_percentile_latency_ns"
        )
    metrics: dict[str, Any] = {
        "latency_ns": latency,
        "query_count": results.get("result_query_count"),
        "qps_with_loadgen_overhead": results.get("result_qps_with_loadgen_overhead"),
        "qps_without_loadgen_overhead": results.get("result_qps_without_loadgen_overhead"),
    }
    if scenario == "SingleStream":
        metrics["early_stopping_p90_latency_ns"] = results.get("early_stopping_latency_ss")
        metrics["primary"] = ("p90 latency (ms)", _ms(results.get("early_stopping_latency_ss")))
    elif scenario == "MultiStream":
        metrics["early_stopping_p99_query_latency_ns"] = results.get("early_stopping_latency_ms")
        metrics["primary"] = (
            "p99 query latency (ms)",
            _ms(results.get("early_stopping_latency_ms")),
        )
    elif scenario == "Server":
        rate = results.get("result_completed_samples_per_sec")
        metrics["completed_samples_per_second"] = rate
        metrics["perf_constraints_met"] = results.get("result_perf_constraints_met")
        metrics["primary"] = ("samples/s", rate)
    else:
        rate = results.get("result_samples_per_second")
        metrics["samples_per_second"] = rate
        metrics["primary"] = ("samples/s", rate)
    return metrics


def _ms(value: Any) -> float | None:
    return None if value is None else round(float(value) / 1e6, 6)


def validity(results: dict[str, Any]) -> tuple[bool, list[str]]:
    """VALID only if the loop said so and logged no errors; reasons otherwise."""
    reasons = list(results.get("result_invalid_reasons") or [])
    if results.get("result_validity") != "VALID":
        if results.get("result_min_duration_met") is False:
            reasons.append("min duration not met")
        if results.get("result_min_queries_met") is False:
            reasons.append("min query count not met")
        if results.get("early_stopping_met") is False:
            reasons.append("early stopping criterion not met")
        if results.get("result_perf_constraints_met") is False:
            reasons.append("latency constraint not met")
        if not reasons:
            reasons.append(f"result is {results.get('result_validity', 'missing')}")
    for error in results.get("loadgen_errors") or []:
        reasons.append(f"LoadGen error: {error}")
    for error in results.get("native_errors") or []:
        reasons.append(f"native loop error: {error}")
    return (not reasons, sorted(set(reasons), key=reasons.index))

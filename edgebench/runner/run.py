"""One run end to end: device + benchmark + scenario + mode -> a results directory.

Like LoadGen seen from outside, a run is one call with plain-data settings whose only output
is its directory: result.json (updated as the run goes), the device's logs and per-query
times, accuracy.txt in accuracy mode, and summary.txt for people.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from ..agent.settings import MODES, SCENARIOS, SettingsError
from ..devices.base import Device, RunRecord, SystemInfo
from ..meters.base import Meter
from ..suite.benchmarks import Benchmark
from .clock_step import clock_mapped
from .energy_step import attach, meter_for_mode, run_metered
from .results import ResultWriter, new_run_id, performance_metrics, result_head, utc_now, validity
from .scoring import score
from .settings_profiles import merged_settings, settings_profile
from .summary import write_summary
from .tiny_run import run_tiny

EventHandler = Callable[[dict], None]


@dataclass
class RunOptions:
    """How to run, beyond what the device profile says. None = take the profile's value."""

    settings_profile: str = "quick"
    override_file: Path | None = None
    min_duration_s: float | None = None
    runtime: str | None = None
    delegate: str | None = None
    threads: int | None = None
    affinity: list[int] | None = None
    loop: str | None = None
    trace: bool = False
    results_root: Path = Path("results")
    #: An open power meter recording each run (energy.json beside result.json); None = none.
    meter: Meter | None = None
    extra_plan: dict[str, Any] = field(default_factory=dict)


class RunError(RuntimeError):
    """The run could not produce a result; `result` is result.json as written."""

    def __init__(self, message: str, result: dict[str, Any]) -> None:
        super().__init__(message)
        self.result = result


def _choose(option: Any, profile: dict[str, Any], key: str) -> Any:
    return profile.get(key) if option is None else option


def build_plan(
    device: Device, benchmark: Benchmark, scenario: str, mode: str, options: RunOptions
) -> dict[str, Any]:
    if scenario not in SCENARIOS:
        raise SettingsError(f"unknown scenario {scenario!r}; use one of {', '.join(SCENARIOS)}")
    if scenario not in benchmark.scenarios:
        raise SettingsError(
            f"{benchmark.name} does not allow {scenario}; "
            f"use one of {', '.join(benchmark.scenarios)}"
        )
    if mode not in MODES:
        raise SettingsError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
    extra = {}
    if options.min_duration_s is not None:
        extra["min_duration"] = int(options.min_duration_s * 1000)
    profile = settings_profile(options.settings_profile)
    values = merged_settings(profile, benchmark.name, scenario, options.override_file, extra)
    return {
        "schema": "edgebench.plan/1",
        "benchmark": benchmark.name,
        "scenario": scenario,
        "mode": mode,
        "settings": values,
        "settings_profile": profile.name,
        "performance_sample_count": benchmark.performance_sample_count,
        "runtime": _choose(options.runtime, device.profile, "runtime"),
        "delegate": _choose(options.delegate, device.profile, "delegate"),
        "threads": _choose(options.threads, device.profile, "threads"),
        "affinity": _choose(options.affinity, device.profile, "affinity"),
        "loop": _choose(options.loop, device.profile, "loop"),
        "trace": options.trace,
        **options.extra_plan,
    }


def run_benchmark(
    device: Device,
    system: SystemInfo,
    benchmark: Benchmark,
    scenario: str,
    mode: str,
    options: RunOptions,
    on_event: EventHandler = lambda event: None,
) -> dict[str, Any]:
    """Run once; returns result.json's content (also on failure, then re-raises)."""
    if device.transport == "serial":  # microcontrollers: the MLPerf Tiny method
        return run_tiny(device, benchmark, mode, options, on_event)  # type: ignore[arg-type]
    if mode == "energy":
        raise SettingsError(
            "-m energy needs a DUT that marks its windows for a power meter; for now only "
            "serial (MLPerf Tiny) devices do; use -m performance or -m accuracy here"
        )
    plan = build_plan(device, benchmark, scenario, mode, options)
    benchmark.verify()
    run_id = new_run_id(device.name, benchmark.name, scenario, mode)
    directory = options.results_root / run_id
    profile = settings_profile(options.settings_profile)
    writer = ResultWriter(
        directory,
        {
            **result_head(run_id, benchmark, scenario, mode, device, profile, __version__),
            "system": system.to_dict(),
            "files": {},
        },
    )
    try:
        device.deploy(benchmark.model_path, benchmark.dataset_path)

        def run_once(out: Path) -> RunRecord:
            with clock_mapped(device, out):
                return device.run(plan, out, on_event)

        why = "energy is measured on performance runs, as MLPerf Power does"
        meter = meter_for_mode(options.meter, mode, "performance", writer, why)
        grade = profile.submission_grade
        record, metered = run_metered(meter, directory, grade, run_once, on_event)
        finish(writer, benchmark, record.data, scenario, mode)
        if metered is not None:
            attach(writer, metered.finish())
    except KeyboardInterrupt:
        writer.update(
            status="incomplete",
            valid=False,
            reasons=["interrupted (Ctrl-C)"],
            finished_utc=utc_now(),
        )
        raise
    except RunError:
        raise
    except Exception as error:
        (directory / "host_error.txt").write_text(traceback.format_exc())
        writer.update(status="failed", valid=False, reasons=[str(error)], finished_utc=utc_now())
        raise
    finally:
        write_summary(directory, writer.data)
    return writer.data


def finish(
    writer: ResultWriter, benchmark: Benchmark, record: dict[str, Any], scenario: str, mode: str
) -> None:
    """Turn the device's record into metrics, validity and the files list."""
    directory = writer.directory
    engine = record.get("engine") or {}
    common = {
        "loop": record.get("loop"),
        "loadgen": record.get("loadgen"),
        "runtime": {
            k: engine.get(k) for k in ("runtime", "runtime_version", "delegate", "threads")
        },
        "affinity": (record.get("plan") or {}).get("affinity"),
        "settings": record.get("settings"),
        "calibration_latency_ns": record.get("calibration_latency_ns"),
        "finished_utc": utc_now(),
        "files": sorted(p.name for p in directory.iterdir() if p.name != "result.json.tmp"),
    }
    if record.get("status") != "complete":
        error = record.get("error") or f"agent exited with code {record.get('exit_code')}"
        status = "incomplete" if record.get("status") == "interrupted" else "failed"
        writer.update(status=status, valid=False, reasons=[str(error)], **common)
        raise RunError(f"{benchmark.name} {scenario} {mode}: {error}", writer.data)
    results = record.get("results") or {}
    if mode == "performance":
        valid, reasons = validity(results)
        writer.update(
            status="complete",
            valid=valid,
            reasons=reasons,
            metrics=performance_metrics(scenario, results),
            **common,
        )
        return
    accuracy = score(benchmark, directory)
    reasons = []
    if accuracy.met is False:
        reasons.append(f"{accuracy.metric} {accuracy.value:.4f} below target {accuracy.target:.4f}")
    writer.update(
        status="complete",
        valid=not reasons,
        reasons=reasons,
        metrics={"accuracy": accuracy.to_dict()},
        **common,
    )

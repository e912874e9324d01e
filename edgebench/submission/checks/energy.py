"""Energy beside a performance run: present for a power submission, its trace whole, its
figures integrated again from the trace over the windows it states, and those windows the
run's own timed part (as the detail log counts and times it).

The recomputation calls the same code the run used (edgebench.metrics.energy), so a figure
edited in energy.json or result.json, or a trace swapped underneath them, shows up as a
difference; the window check ties the trace to this run rather than to any other.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from ...metrics.energy import compute_energy
from ...metrics.energy_integrate import EnergyError, Window
from ...metrics.power_trace import PowerTrace, TraceError
from ...runner.energy_step import ENERGY_FILE, POWER_DIR, EnergyInputs, energy_options
from ..checker import Context, Scenario
from ..run_files import RunFiles
from .performance import POWER_TIME_FORMAT

FIGURES = ("energy_per_inference_j", "average_power_w", "idle_power_w")


def check_scenario(ctx: Context, scenario: Scenario) -> None:
    power = scenario.description.get("power_measurement") is True
    if scenario.tiny:  # MLPerf Tiny: a separate energy-mode run beside performance
        energy_run = scenario.energy_run()
        if energy_run is None and power:
            ctx.fail(
                scenario.directory / "energy",
                "energy.required",
                "missing: the system description declares power_measurement, so every "
                "benchmark needs an energy-mode run (-m energy with a meter)",
            )
        runs = [energy_run] if energy_run is not None else []
    else:
        runs = scenario.performance_runs()
    for run in runs:
        present = run.path(ENERGY_FILE).is_file()
        if not present:
            if power or scenario.tiny:
                ctx.fail(
                    run.path(ENERGY_FILE),
                    "energy.required",
                    "missing: the system description declares power_measurement, so every "
                    "performance run needs its energy (run with --meter)",
                )
            continue
        energy = run.json(ENERGY_FILE)
        trace = _trace(ctx, run)
        if energy.get("valid") is not True:
            reasons = "; ".join(energy.get("reasons") or []) or "no verdict recorded"
            ctx.fail(run.path(ENERGY_FILE), "energy.valid", f"energy result invalid: {reasons}")
        _consistency(ctx, run, energy)
        _window(ctx, run, energy)
        if trace is not None:
            _recompute(ctx, run, energy, trace)


def _trace(ctx: Context, run: RunFiles) -> PowerTrace | None:
    try:
        trace = PowerTrace.open(run.path(POWER_DIR))
    except (TraceError, OSError, ValueError) as error:
        ctx.fail(run.path(POWER_DIR), "energy.trace", f"the power trace does not open: {error}")
        return None
    if trace.status != "complete":
        ctx.fail(run.path(POWER_DIR), "energy.trace", f"trace status is {trace.status!r}")
    return trace


def _close(a: Any, b: Any, rel: float) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(float(a), float(b), rel_tol=rel, abs_tol=1e-12)


def _consistency(ctx: Context, run: RunFiles, energy: dict[str, Any]) -> None:
    rel = float(ctx.rules.param("energy.consistency", "rel_tolerance", 0.001))
    path = run.path(ENERGY_FILE)
    for k, window in enumerate(energy.get("windows") or []):
        count, joules = window.get("inferences"), window.get("energy_j")
        duration = float(window.get("end_s", 0)) - float(window.get("start_s", 0))
        if count and not _close(window.get("energy_per_inference_j"), joules / count, rel):
            ctx.fail(
                path,
                "energy.consistency",
                f"windows[{k}]: energy_per_inference_j {window.get('energy_per_inference_j')} "
                f"is not energy_j / inferences = {joules / count}",
            )
        if duration > 0 and not _close(window.get("average_power_w"), joules / duration, rel):
            ctx.fail(
                path,
                "energy.consistency",
                f"windows[{k}]: average_power_w {window.get('average_power_w')} is not "
                f"energy_j / duration = {joules / duration}",
            )
    claimed = run.result.get("energy") or {}
    for key in FIGURES:
        if key in claimed and not _close(claimed.get(key), energy.get(key), rel):
            ctx.fail(
                run.path("result.json"),
                "energy.consistency",
                f"energy.{key} is {claimed.get(key)}, energy.json says {energy.get(key)}",
            )


def _window(ctx: Context, run: RunFiles, energy: dict[str, Any]) -> None:
    """One window from the per-query times: it must hold the run's samples and last as long
    as LoadGen's timed part. (Serial runs' windows come from the meter's marks instead.)"""
    windows = energy.get("windows") or []
    detail = run.detail
    if len(windows) != 1 or detail is None or energy.get("tier") == "meter-marks":
        return
    window = windows[0]
    path = run.path(ENERGY_FILE)
    samples = int(detail.get("result_query_count") or 0) * int(
        detail.get("effective_samples_per_query") or 1
    )
    if int(window.get("inferences") or 0) != samples:
        ctx.fail(
            path,
            "energy.window",
            f"the window counts {window.get('inferences')} inferences, the detail log {samples}",
        )
    begin, end = detail.get("power_begin"), detail.get("power_end")
    if run.loop != "loadgen" or not begin or not end:
        return
    try:
        logged = (
            datetime.strptime(end, POWER_TIME_FORMAT) - datetime.strptime(begin, POWER_TIME_FORMAT)
        ).total_seconds()
    except ValueError:
        return  # reported by performance.measured-duration
    duration = float(window.get("end_s", 0)) - float(window.get("start_s", 0))
    rel = float(ctx.rules.param("energy.window", "rel_tolerance", 0.01))
    slack = float(ctx.rules.param("energy.window", "abs_tolerance_s", 0.01))
    if abs(duration - logged) > rel * logged + slack:
        ctx.fail(
            path,
            "energy.window",
            f"the window lasts {duration:.3f} s, the run (power_begin to power_end) {logged:.3f} s",
        )


def _as_window(data: dict[str, Any]) -> Window:
    return Window(
        start=float(data["start_s"]),
        end=float(data["end_s"]),
        inferences=int(data.get("inferences") or 0),
        start_uncertainty_s=float(data.get("start_uncertainty_s") or 0.0),
        end_uncertainty_s=float(data.get("end_uncertainty_s") or 0.0),
        label=str(data.get("label") or ""),
    )


def _recompute(ctx: Context, run: RunFiles, energy: dict[str, Any], trace: PowerTrace) -> None:
    path = run.path(ENERGY_FILE)
    inputs = energy.get("inputs") or {}
    tier = str(energy.get("tier") or "clock-mapping")
    try:
        windows = [_as_window(w) for w in energy.get("windows") or []]
        idle = _as_window(energy["idle"]) if energy.get("idle") else None
        method = str(energy.get("method") or "auto")
        options = energy_options(EnergyInputs.from_dict(inputs), method, tier)
        again = compute_energy(trace, windows, options, idle)
    except (EnergyError, TraceError, KeyError, TypeError, ValueError) as error:
        ctx.fail(path, "energy.recompute", f"cannot recompute from the trace: {error}")
        return
    rel = float(ctx.rules.param("energy.recompute", "rel_tolerance", 0.001))
    for k, (stated, computed) in enumerate(
        zip(energy.get("windows") or [], again["windows"], strict=False)
    ):
        if not _close(stated.get("energy_j"), computed["energy_j"], rel):
            ctx.fail(
                path,
                "energy.recompute",
                f"windows[{k}].energy_j is {stated.get('energy_j')}, the trace gives "
                f"{computed['energy_j']}",
            )
    for key in FIGURES:
        if not _close(energy.get(key), again.get(key), rel):
            ctx.fail(
                path,
                "energy.recompute",
                f"{key} is {energy.get(key)}, the trace gives {again.get(key)}",
            )

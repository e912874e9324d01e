"""Microcontroller runs (MLPerf Tiny's method): the windows are rebuilt from the raw DUT log
(dut_log.txt, every line the device sent) and scored again, then held to the rules and
compared with what result.json and results.txt claim."""

from __future__ import annotations

import re
from typing import Any

from ...devices.serial import LOG_FILE
from ...runner import tiny_score
from ...runner.tiny_rescore import windows_from_log
from ..checker import Context, Scenario
from ..run_files import RunFiles
from .logs import same
from .performance import min_duration_ms

LOG = LOG_FILE
_MEDIAN = re.compile(r"^Median throughput is ([0-9.]+) inf\./sec\.$", re.MULTILINE)


def check_scenario(ctx: Context, scenario: Scenario) -> None:
    if not scenario.tiny:
        return
    for run in scenario.performance_runs():
        windows = read_windows(ctx, run)
        if windows is not None:
            _performance(ctx, scenario, run, windows)


def read_windows(ctx: Context, run: RunFiles) -> list[dict[str, Any]] | None:
    if not run.path(LOG).is_file():
        return None  # reported by files.required
    try:
        return windows_from_log(run.path(LOG))
    except (ValueError, KeyError, UnicodeDecodeError) as error:
        ctx.fail(run.path(LOG), "logs.detail-format", f"the DUT log does not parse: {error}")
        return None


def _performance(
    ctx: Context, scenario: Scenario, run: RunFiles, windows: list[dict[str, Any]]
) -> None:
    log = run.path(LOG)
    minimum_ms = min_duration_ms(ctx, scenario, f"window length for {scenario.category} devices")
    if minimum_ms is None:
        return
    count = ctx.rules.param("performance.windows", "count")
    if count is not None and len(windows) != int(count):
        ctx.fail(log, "performance.windows", f"{len(windows)} windows, the rules need {count}")
    if len({w["sample"] for w in windows}) != len(windows):
        ctx.fail(log, "performance.windows", "windows reused an input; each needs its own")
    for window in windows:
        elapsed = window.get("elapsed_us")
        if elapsed is None:
            ctx.fail(log, "performance.valid", f"window {window['window']} has no m-lap-us stamps")
        elif elapsed / 1000 < float(minimum_ms):
            ctx.fail(
                log,
                "performance.min-duration",
                f"window {window['window']} lasted {elapsed / 1000:.0f} ms, "
                f"the rules require {minimum_ms} ms",
            )
    if run.result and run.result.get("valid") is not True:
        reasons = "; ".join(run.result.get("reasons") or []) or "no reason recorded"
        ctx.fail(run.path("result.json"), "performance.valid", f"the run is invalid: {reasons}")
    metrics, _reasons = tiny_score.performance(windows, float(minimum_ms) / 1000)
    _claims(ctx, run, metrics)


def _claims(ctx: Context, run: RunFiles, metrics: dict[str, Any]) -> None:
    claimed = run.result.get("metrics") or {}
    for key in ("median_throughput", "latency_ms"):
        if not same(claimed.get(key), metrics[key], rel=1e-9):
            ctx.fail(
                run.path("result.json"),
                "consistency.result-json",
                f"metrics.{key} is {claimed.get(key)}, the DUT log gives {metrics[key]}",
            )
    text = run.path("results.txt")
    if text.is_file():
        match = _MEDIAN.search(text.read_text(errors="replace"))
        stated = float(match.group(1)) if match else None
        if stated is None or not same(stated, metrics["median_throughput"], rel=1e-5):
            ctx.fail(
                text,
                "consistency.summary",
                f"median throughput {stated}, the DUT log gives {metrics['median_throughput']:.3f}",
            )

"""summary.txt: the few lines a person reads first in a results directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def summary_lines(result: dict[str, Any]) -> list[str]:
    valid = {True: "VALID", False: "INVALID", None: "-"}[result.get("valid")]
    lines = [
        f"run        {result.get('run_id')}",
        f"benchmark  {result.get('benchmark')} ({result.get('task')})",
        f"scenario   {result.get('scenario')}   mode {result.get('mode')}",
        f"device     {result.get('device', {}).get('name')}   loop {result.get('loadgen') or '-'}",
        f"runtime    {_runtime(result.get('runtime'))}",
        f"settings   {result.get('settings_profile')}"
        + ("" if result.get("submission_grade") else " (not submission-grade)"),
        f"status     {result.get('status')}   result {valid}",
    ]
    if result.get("timing_note"):
        lines.append(f"timing     {result['timing_note']}")
    for reason in result.get("reasons") or []:
        lines.append(f"  reason   {reason}")
    metrics = result.get("metrics") or {}
    if "primary" in metrics:
        label, value = metrics["primary"]
        lines.append(f"metric     {label}: {value}")
        latency = metrics.get("latency_ns") or {}
        if latency.get("p50") is not None:
            lines.append(
                "latency    "
                + "  ".join(f"{k} {v / 1e3:.1f} us" for k, v in latency.items() if v is not None)
            )
    if "accuracy" in metrics:
        acc = metrics["accuracy"]
        low, high = acc["ci95"]
        target = "-" if acc["target"] is None else f"{acc['target']:.4f}"
        lines.append(
            f"accuracy   {acc['metric']} {acc['value']:.4f} (95% CI {low:.4f}-{high:.4f}, "
            f"n={acc['count']}), target {target}"
        )
    return lines


def _runtime(runtime: dict[str, Any] | None) -> str:
    if not runtime:
        return "-"
    return (
        f"{runtime.get('runtime')} {runtime.get('runtime_version')}, "
        f"delegate {runtime.get('delegate')}, threads {runtime.get('threads')}"
    )


def write_summary(directory: Path, result: dict[str, Any]) -> None:
    (directory / "summary.txt").write_text("\n".join(summary_lines(result)) + "\n")

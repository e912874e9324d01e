"""`edgebench compare RUN_A RUN_B`: what changed from A to B, metrics judged by their spread."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.table import Table

from ..runner.compare import Comparison, compare_runs
from .render import print_json, stdout

STYLE = {"WORSE": "[red]WORSE[/]", "BETTER": "[green]BETTER[/]"}


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "compare", help="what changed between two runs of the same benchmark"
    )
    parser.add_argument("run_a", type=Path, help="the earlier or baseline run (results/<run-id>)")
    parser.add_argument("run_b", type=Path, help="the run to compare with it")
    parser.add_argument(
        "--fail-on-regression",
        action="store_true",
        help="exit 1 when a metric got worse beyond its spread (for CI)",
    )
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(handler=compare_command)


def compare_command(args: argparse.Namespace) -> int:
    comparison = compare_runs(args.run_a, args.run_b)
    if args.json:
        print_json(comparison.to_dict())
    else:
        _print(comparison)
    worse = [m for m in comparison.metrics if m.verdict == "WORSE"]
    return 1 if args.fail_on_regression and worse else 0


def _print(comparison: Comparison) -> None:
    a, b = comparison.a, comparison.b
    stdout.print(f"A  {a.get('run_id')}\nB  {b.get('run_id')}", highlight=False)
    changes = Table(title="settings and system: what differs")
    for column in ("section", "key", "A", "B"):
        changes.add_column(column, overflow="fold")
    for difference in comparison.differences:
        changes.add_row(
            difference.section, difference.key, _text(difference.a), _text(difference.b)
        )
    if comparison.differences:
        stdout.print(changes)
    else:
        stdout.print("settings and system: identical")
    metrics = Table(
        title="metrics (spread: range over 10 time blocks, accuracy 95% CI, energy bound); "
        "flagged only when the spreads do not overlap"
    )
    for column in ("metric", "A", "B", "change", "verdict"):
        metrics.add_column(column, overflow="fold")
    for change in comparison.metrics:
        unit, scale = ("us", 1e-3) if change.unit == "ns" else (change.unit, 1.0)
        metrics.add_row(
            f"{change.name} ({unit})" if unit else change.name,
            _value(change.a, change.a_interval, scale),
            _value(change.b, change.b_interval, scale),
            "-" if change.relative_change is None else f"{change.relative_change:+.1%}",
            STYLE.get(change.verdict, change.verdict),
        )
    stdout.print(metrics)


def _text(value: Any) -> str:
    return "-" if value is None else str(value)


def _value(value: float | None, interval: tuple[float, float] | None, scale: float) -> str:
    if value is None:
        return "-"
    if interval is None:
        return f"{value * scale:.4g}"
    return f"{value * scale:.4g} [{interval[0] * scale:.4g}, {interval[1] * scale:.4g}]"

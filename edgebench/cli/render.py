"""Tables people read at the end of a command; --json output is the same data, unformatted."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ..runner.summary import summary_lines

stdout = Console()
stderr = Console(stderr=True)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def print_results(results: list[dict[str, Any]], as_json: bool, results_root: Path) -> None:
    """What a command that made runs prints last: their JSON, or the table and their folders."""
    if as_json:
        print_json(results)
        return
    stdout.print(results_table(results))
    for result in results:
        stdout.print(f"  {results_root / str(result.get('run_id'))}", highlight=False)


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def results_table(results: list[dict[str, Any]]) -> Table:
    table = Table(title="edgebench results", show_lines=False)
    for column in ("benchmark", "scenario", "mode", "result", "metric", "p50 (us)", "accuracy"):
        table.add_column(column, overflow="fold")
    for result in results:
        metrics = result.get("metrics") or {}
        label, value = metrics.get("primary", ("", None))
        # Offline issues every sample in one query: per-sample latency says nothing there.
        p50 = (
            None
            if result.get("scenario") == "Offline"
            else (metrics.get("latency_ns") or {}).get("p50")
        )
        accuracy = metrics.get("accuracy")
        verdict = {True: "[green]VALID[/]", False: "[red]INVALID[/]"}.get(result.get("valid"), "-")
        if result.get("status") != "complete":
            verdict = f"[red]{str(result.get('status')).upper()}[/]"
        table.add_row(
            str(result.get("benchmark")),
            str(result.get("scenario")),
            str(result.get("mode")),
            verdict,
            f"{value:.4g} {label}" if label and value is not None else "-",
            _fmt(p50 / 1e3 if p50 else None, 1),
            _accuracy_cell(accuracy),
        )
    return table


def profiles_table(title: str, kind: str, rows: list[dict[str, Any]]) -> Table:
    """Profiles found on disk; a broken one shows its error where its description would be."""
    table = Table(title=title)
    for column in ("name", kind, "description", "file"):
        table.add_column(column, overflow="fold")
    for row in rows:
        description = f"[red]{row['error']}[/]" if row["error"] else row["description"]
        table.add_row(row["name"], row[kind], description, row["path"])
    return table


def _accuracy_cell(accuracy: dict[str, Any] | None) -> str:
    if not accuracy:
        return "-"
    return f"{accuracy['metric']} {accuracy['value']:.4f} (target {_fmt(accuracy['target'], 4)})"


def print_result(result: dict[str, Any]) -> None:
    for line in summary_lines(result):
        stdout.print(line, highlight=False, markup=False)

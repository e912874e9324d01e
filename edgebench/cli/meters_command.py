"""`edgebench meters`: the meter drivers and profiles; `edgebench meters probe PROFILE` talks
to one meter for about a second and prints what it read, the first thing to try on a bench."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from ..meters.base import MeterError
from ..meters.profiles import find_meter_profiles, load_meter_profile, open_meter
from ..meters.registry import METERS, _load_builtin
from ..runner.energy_plot import envelope
from .render import print_json, profiles_table, stdout


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(handler=meters_command)
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    probe = actions.add_parser("probe", help="open a meter, describe it, record ~1 s, print it")
    probe.add_argument("meter", help="meter profile name or YAML path")
    probe.add_argument("--seconds", type=float, default=1.0, help="how long to record")
    probe.add_argument("--json", action="store_true")
    probe.set_defaults(handler=probe_command)


def meters_command(args: argparse.Namespace) -> int:
    _load_builtin()
    drivers = [
        {
            "driver": name,
            "description": _first_line(cls.__doc__ or sys.modules[cls.__module__].__doc__),
            "needs_ranging": cls.needs_ranging,
            "tested_against": cls.tested_against,
        }
        for name, cls in sorted(METERS.items())
    ]
    profiles = [
        _profile_row(name, found.path) for name, found in sorted(find_meter_profiles().items())
    ]
    status = 0 if all(p["error"] is None for p in profiles) else 1
    if args.json:
        print_json({"drivers": drivers, "profiles": profiles})
        return status
    table = Table(title="meter drivers")
    for column in ("driver", "tested against", "ranging run", "description"):
        table.add_column(column, overflow="fold")
    for row in drivers:
        table.add_row(row["driver"], row["tested_against"],
                      "yes" if row["needs_ranging"] else "-", row["description"])  # fmt: skip
    stdout.print(table)
    stdout.print(profiles_table("meter profiles", "driver", profiles))
    return status


def _first_line(text: str | None) -> str:
    return (text or "").strip().split("\n", 1)[0]


def _profile_row(name: str, path: Path) -> dict[str, Any]:
    row: dict[str, Any] = {"name": name, "driver": "?", "path": str(path), "description": ""}
    try:
        profile = load_meter_profile(str(path))
    except MeterError as error:
        return {**row, "error": str(error)}
    return {**row, "driver": profile["driver"], "description": profile.get("description", ""),
            "error": None}  # fmt: skip


def probe_command(args: argparse.Namespace) -> int:
    if args.seconds <= 0:
        raise MeterError(f"--seconds must be > 0, got {args.seconds:g}")
    meter = open_meter(args.meter)
    with meter, tempfile.TemporaryDirectory(prefix="edgebench-probe-") as scratch:
        info = meter.describe()
        if meter.records_alone:
            meter.start(Path(scratch) / "power", "ranging" if meter.needs_ranging else "testing")
            time.sleep(args.seconds)
            report = _report(meter.stop(), info.to_dict())
        else:
            report = _described(info.to_dict())
    if args.json:
        print_json(report)
        return 0
    table = Table(title=f"meter {meter.name}", show_header=False)
    table.add_column("what")
    table.add_column("value", overflow="fold")
    for key, value in report.items():
        table.add_row(key, str(value))
    stdout.print(table)
    return 0


def _described(info: dict[str, Any]) -> dict[str, Any]:
    return {
        "model": info["model"],
        "serial": info["serial"],
        "sample_rate_hz": info["sample_rate_hz"],
        "ranges": ", ".join(info["ranges"]),
        "accuracy": info["accuracy"],
        "records_marks": info["records_marks"],
        "notes": info["notes"],
        "recorded": "nothing: this meter measures only around a run; it opened (server reached)",
    }


def _report(trace: Any, info: dict[str, Any]) -> dict[str, Any]:
    report: dict[str, Any] = {
        **{k: v for k, v in _described(info).items() if k != "recorded"},
        "trace_kind": trace.kind,
        "trace_clock": trace.clock,
        "status": trace.status,
        "samples": trace.sample_count,
        "marks": len(trace.marks()),
        "events": [f"{e['kind']}: {e.get('text', '')}" for e in trace.events()],
    }
    if trace.sample_count:
        _, low, high, mean = envelope(trace, bins=1)
        first, last = trace.span
        report["span_s"] = round(last - first, 6)
        report["power_w"] = {"min": float(np.nanmin(low)), "mean": float(np.nanmean(mean)),
                             "max": float(np.nanmax(high))}  # fmt: skip
    return report

"""The `edgebench` command. Every expected failure ends as one line naming the problem and
the fix, and a non-zero exit code; tracebacks are kept for bugs (and EDGEBENCH_DEBUG=1)."""

from __future__ import annotations

import argparse
import errno
import os
import sys
from pathlib import Path

from rich.table import Table

from .. import __version__
from ..agent.runtime import ModelError, RuntimeMissing
from ..agent.settings import SettingsError
from ..devices.base import DeviceError
from ..devices.profiles import find_profiles, load_profile
from ..meters.base import MeterError
from ..metrics.energy_integrate import EnergyError
from ..metrics.power_trace import TraceError
from ..runner.results import ResultsError, load_result
from ..runner.run import RunError
from ..runner.scoring import ScoringError
from ..submission import SubmissionError
from ..suite.benchmarks import BenchmarkError, bundled_benchmarks
from ..suite.official import OFFICIAL
from ..suite.official import SCENARIOS as OFFICIAL_SCENARIOS
from . import (
    compare_command,
    compliance_command,
    deploy_command,
    devices_check,
    energy_command,
    lab_command,
    meters_command,
    publish_command,
    run_command,
    submission_command,
)
from .render import print_json, print_result, profiles_table, stderr, stdout

# The host's own disk filling up: not a bug, a one-line error like the others.
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)

EXPECTED_ERRORS = (
    BenchmarkError,
    DeviceError,
    EnergyError,
    MeterError,
    ModelError,
    ResultsError,
    RunError,
    RuntimeMissing,
    ScoringError,
    SettingsError,
    SubmissionError,
    TraceError,
)


def benchmarks_command(args: argparse.Namespace) -> int:
    rows = [
        {
            "name": b.name,
            "source": "edgebench reference suite (bundled)",
            "task": b.task,
            "model": b.model_path.name,
            "sha256": b.model_sha256,
            "metric": b.metric,
            "target": b.target,
            "scenarios": list(b.scenarios),
            "eval_samples": b.dataset_count,
        }
        for b in bundled_benchmarks().values()
    ]
    rows += [
        {
            "name": spec.id,
            "source": "MLPerf Tiny official (needs --data-dir)",
            "task": spec.task,
            "model": spec.model_names[0],
            "sha256": spec.model_sha256,
            "metric": spec.metric,
            "target": spec.target,
            "scenarios": list(OFFICIAL_SCENARIOS),
            "eval_samples": None,
        }
        for spec in OFFICIAL.values()
    ]
    if args.json:
        print_json(rows)
        return 0
    table = Table(title="benchmarks")
    for column in ("name", "task", "model", "sha256", "metric", "target", "scenarios", "eval"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            row["name"],
            row["task"],
            row["model"],
            row["sha256"][:16] + "...",
            row["metric"],
            f"{row['target']:.4f}",
            ", ".join(row["scenarios"]),
            "--data-dir" if row["eval_samples"] is None else str(row["eval_samples"]),
        )
    stdout.print(table)
    return 0


def devices_command(args: argparse.Namespace) -> int:
    rows = []
    for name, found in sorted(find_profiles().items()):
        row = {"name": name, "transport": "?", "description": "", "path": str(found.path)}
        try:
            profile = load_profile(str(found.path))
        except DeviceError as error:
            rows.append({**row, "error": str(error)})
            continue
        rows.append({**row, "transport": profile["transport"],
                     "description": profile.get("description", ""), "error": None})  # fmt: skip
    status = 0 if all(r["error"] is None for r in rows) else 1
    if args.json:
        print_json(rows)
        return status
    stdout.print(profiles_table("device profiles", "transport", rows))
    return status


def show_command(args: argparse.Namespace) -> int:
    result = load_result(args.run)
    if args.json:
        print_json(result)
    else:
        print_result(result)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgebench",
        description="Benchmark int8 ML inference on edge devices with MLPerf semantics.",
    )
    parser.add_argument("--version", action="version", version=f"edgebench {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = commands.add_parser("run", help="run benchmarks on a device")
    run_command.add_arguments(run)
    run.set_defaults(handler=run_command.run_command)

    bench = commands.add_parser("benchmarks", help="list the bundled benchmarks")
    bench.add_argument("--json", action="store_true")
    bench.set_defaults(handler=benchmarks_command)

    devices = commands.add_parser("devices", help="list device profiles")
    devices.add_argument("--json", action="store_true")
    devices.set_defaults(handler=devices_command)
    devices_check.add_check_parser(devices.add_subparsers(dest="action", metavar="ACTION"))

    lab_command.add_lab_parser(commands)

    meters = commands.add_parser("meters", help="list power meter drivers and profiles")
    meters_command.add_arguments(meters)

    energy = commands.add_parser("energy", help="recompute a run's energy from its trace")
    energy_command.add_arguments(energy)

    show = commands.add_parser("show", help="print a finished run's summary")
    show.add_argument("run", type=Path, help="results/<run-id>")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=show_command)

    submission_command.add_parsers(commands)
    compliance_command.add_parser(commands)
    publish_command.add_parser(commands)
    compare_command.add_parser(commands)
    deploy_command.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        stderr.print("edgebench: interrupted; the current run is marked incomplete")
        return 130
    except EXPECTED_ERRORS as error:
        if os.environ.get("EDGEBENCH_DEBUG"):
            raise
        stderr.print(f"edgebench: error: {error}", highlight=False, markup=False)
        return 1
    except OSError as error:
        if error.errno not in DISK_FULL or os.environ.get("EDGEBENCH_DEBUG"):
            raise
        where = error.filename or "the results directory"
        stderr.print(
            f"edgebench: error: writing {where} failed: no space left on this machine's disk; "
            f"free space (or pass --results on a larger filesystem) and run again",
            highlight=False,
            markup=False,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())

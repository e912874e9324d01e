"""`edgebench compliance`: the reference runs it needs (unless given), then each test's run
and its verdict. It takes `edgebench run`'s options, so a compliance run is made exactly as
the runs it audits were."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..devices.profiles import open_device
from ..submission.compliance import CHOICES, ComplianceError, plan_steps, tests_for
from . import run_command
from .progress import RunProgress
from .render import print_results, stderr


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "compliance", help="run the compliance tests (TEST01, TEST04) for one result"
    )
    run_command.add_arguments(parser)
    parser.add_argument(
        "--test", default="all", choices=CHOICES, help="which compliance test (default: all)"
    )
    parser.add_argument(
        "--performance-run",
        type=Path,
        help="the performance run to audit (results/<run-id>); default: make one first",
    )
    parser.add_argument(
        "--accuracy-run",
        type=Path,
        help="the accuracy run TEST01 compares outputs with; default: make one first",
    )
    parser.set_defaults(handler=compliance_command)


def compliance_command(args: argparse.Namespace) -> int:
    if args.mode:
        raise ComplianceError("compliance runs are performance runs with audit settings; drop -m")
    benchmarks = run_command._benchmarks(args)
    scenarios = args.scenario or []
    if len(benchmarks) != 1 or len(scenarios) != 1:
        raise ComplianceError(
            "name exactly one benchmark and one scenario (-b NAME -s SCENARIO): the tests "
            "audit one performance result at a time"
        )
    device = open_device(args.device)
    tests = tests_for(device, args.test)
    options = run_command.options_from(args)
    given = {"performance": args.performance_run, "accuracy": args.accuracy_run}
    results: list[dict[str, Any]] = []
    with device:
        system = device.describe()
        steps = plan_steps(device, system, benchmarks[0], scenarios[0], tests, options, given)
        for number, step in enumerate(steps, 1):
            label = f"[{number}/{len(steps)}] {step.label}"
            with RunProgress(label, enabled=not args.json) as progress:
                result = step.execute(progress.handle)
            results.append(result)
            if not args.json:
                stderr.print(f"{label}: {_verdict(result)}", highlight=False, markup=False)
    print_results(results, args.json, options.results_root)
    verdicts = [r["compliance"]["passed"] for r in results if r.get("mode") == "compliance"]
    return 0 if verdicts and all(verdicts) else 1


def _verdict(result: dict[str, Any]) -> str:
    compliance = result.get("compliance")
    if compliance is None:
        return (
            "VALID" if result.get("valid") else "INVALID: " + "; ".join(result.get("reasons") or [])
        )
    if compliance["passed"]:
        return f"{compliance['test']} PASS"
    return f"{compliance['test']} FAIL: " + "; ".join(compliance["reasons"])

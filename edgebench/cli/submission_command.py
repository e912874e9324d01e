"""`edgebench submit` (assemble a submission tree) and `edgebench check` (hold it to a rule
set). The checker prints one line per failure, `<file>: <rule id>: <what is wrong>`, and
exits 0 only when there is none."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..submission import SubmissionError
from ..submission import system_description as sysdesc
from ..submission.checker import check_tree
from ..submission.rules import DEFAULT_RULES, available_rules, load_rules
from ..submission.tree import assemble, collect_runs
from .render import print_json, stderr


def add_parsers(commands: argparse._SubParsersAction) -> None:
    submit = commands.add_parser(
        "submit", help="assemble results directories into a submission tree"
    )
    submit.add_argument("runs", nargs="*", type=Path, help="results/<run-id> directories")
    submit.add_argument("--system", type=Path, help="system description JSON (your values)")
    submit.add_argument("--submitter", help="organisation or person submitting")
    submit.add_argument("--division", choices=("closed", "open"), default="closed")
    submit.add_argument("--out", type=Path, default=Path("submission"), help="tree root")
    submit.add_argument(
        "--system-template",
        action="store_true",
        help="print a system description with every field (pre-filled from RUNS if given)",
    )
    submit.set_defaults(handler=submit_command)

    check = commands.add_parser("check", help="check a submission tree against the rules")
    check.add_argument("tree", type=Path, help="the directory `edgebench submit --out` wrote")
    check.add_argument(
        "--rules",
        default=DEFAULT_RULES,
        help=f"rule set: {', '.join(available_rules())} or a YAML path (default {DEFAULT_RULES})",
    )
    check.add_argument(
        "--data-dir", type=Path, help="official MLPerf Tiny data, to rescore kws01/ic01/..."
    )
    check.add_argument("--json", action="store_true")
    check.set_defaults(handler=check_command)


def submit_command(args: argparse.Namespace) -> int:
    if args.system_template:
        data = sysdesc.template()
        if args.runs:
            runs, _skipped = collect_runs(args.runs)
            power = any((r.directory / "energy.json").is_file() for r in runs)
            data = sysdesc.prefill(
                [r.result for r in runs],
                args.submitter or data["submitter"],
                args.division,
                power,
            )
        print_json(data)
        return 0
    if not args.runs:
        raise SubmissionError("no runs given; pass results/<run-id> directories (e.g. results/*)")
    if not args.submitter:
        raise SubmissionError("--submitter NAME is required (your organisation or name)")
    assembly = assemble(args.runs, args.out, args.submitter, args.division, args.system)
    for source, target in assembly.placed:
        stderr.print(f"{source} -> {target}", highlight=False)
    for note in assembly.skipped:
        stderr.print(f"skipped {note}", highlight=False)
    stderr.print(f"system description: {assembly.system_path}", highlight=False)
    if assembly.missing_fields:
        stderr.print(
            f"fill in {', '.join(assembly.missing_fields)} in {assembly.system_path} "
            f"(or pass --system FILE), then run `edgebench check {args.out}`",
            highlight=False,
        )
    return 0


def check_command(args: argparse.Namespace) -> int:
    rules = load_rules(args.rules)
    ctx = check_tree(args.tree, rules, args.data_dir)
    if args.json:
        print_json(
            {
                "rules": rules.name,
                "passed": not ctx.findings,
                "failures": [
                    {"file": f.path, "rule": f.rule, "message": f.message} for f in ctx.findings
                ],
            }
        )
    else:
        for finding in ctx.findings:
            sys.stdout.write(f"{finding}\n")
        verdict = "passed" if not ctx.findings else f"{len(ctx.findings)} failure(s)"
        stderr.print(f"rules {rules.name}: {verdict}", highlight=False)
    return 0 if not ctx.findings else 1

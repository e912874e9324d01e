"""`edgebench publish SUBMISSION... --out site/`: the results tables (CSV) and the static site."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..submission.publish import publish
from .render import print_json, stdout


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "publish", help="results tables (CSV) and a static HTML site from submission trees"
    )
    parser.add_argument("submissions", nargs="+", type=Path, help="submission trees (submit --out)")
    parser.add_argument("--out", type=Path, required=True, help="directory for the site")
    parser.add_argument("--json", action="store_true", help="print what was written as JSON")
    parser.set_defaults(handler=publish_command)


def publish_command(args: argparse.Namespace) -> int:
    written = publish(args.submissions, args.out)
    if args.json:
        print_json(written)
        return 0
    stdout.print(
        f"{written['rows']} result rows in {written['tables']} tables -> "
        f"{args.out / 'index.html'} (and {len(written['files']) - 1} CSV files)",
        highlight=False,
    )
    return 0

"""A compliance test's verdict, and the checks every compliance run shares.

Both tests first ask whether the run itself counts: it finished, its loop judged it VALID,
and the loop really ran with the test's audit setting (a device whose agent ignored the
plan's `audit` would otherwise pass TEST04 by never repeating a sample).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Verdict:
    test: str
    passed: bool
    reasons: list[str]
    details: dict[str, Any] = field(default_factory=dict)


def loop_results(directory: Path) -> dict[str, Any]:
    """The loop's result keys (LoadGen's detail-log keys) from the device's record.json."""
    path = directory / "record.json"
    try:
        return dict(json.loads(path.read_text()).get("results") or {})
    except (OSError, ValueError):
        return {}


def run_problems(directory: Path, result: dict[str, Any], audit_key: str) -> list[str]:
    problems = []
    if result.get("status") != "complete":
        problems.append(f"the compliance run did not complete (status {result.get('status')})")
    elif not result.get("valid"):
        reasons = "; ".join(result.get("reasons") or []) or "no reason given"
        problems.append(f"the compliance run is INVALID: {reasons}")
    if not loop_results(directory).get(f"effective_{audit_key}"):
        problems.append(
            f"the loop did not apply {audit_key} (effective_{audit_key} is not set in its "
            f"log); the device's agent must honour the plan's audit settings"
        )
    return problems

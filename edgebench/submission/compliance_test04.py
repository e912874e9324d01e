"""TEST04: one sample issued over and over is not served faster than distinct samples.

A performance run with MLPerf TEST04's audit.config (`performance_issue_same = 1`,
`performance_issue_same_index = 3`) repeats one sample of the loaded set in every query. A
system that caches or deduplicates results answers such a run far faster than the
submission's run over distinct samples; the test fails when it is faster by more than the
margin (compliance_perf). It does not apply to serial devices: MLPerf Tiny's method times N
inferences of one input by design, so there the repeated sample is the measurement.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .compliance_perf import compare, problems_not_faster
from .compliance_verdict import Verdict, run_problems

NAME = "TEST04"
AUDIT = {"performance_issue_same": 1, "performance_issue_same_index": 3}
NEEDS = ("performance",)


def verify(
    directory: Path, result: dict[str, Any], references: dict[str, tuple[Path, dict[str, Any]]]
) -> Verdict:
    reasons = run_problems(directory, result, "performance_issue_same")
    _, performance = references["performance"]
    comparison = compare(str(result.get("scenario")), performance, result)
    reasons += problems_not_faster(comparison)
    details = {"issued_sample_position": AUDIT["performance_issue_same_index"]}
    details["performance"] = comparison.to_dict()
    return Verdict(NAME, not reasons, reasons, details)

"""TEST01: what the timed run returns is what the accuracy run scored.

A performance run with LoadGen's accuracy-log sampling on (MLPerf TEST01's audit.config:
its seed, a sampling target) copies a spread of responses into the accuracy log. Each one
must equal, byte for byte, the accuracy run's output for the same sample, and the run must
be as fast as the submission's performance run (compliance_perf). MLPerf falls back to
comparing accuracy on the sampled indices when a runtime is not deterministic; edgebench's
int8 runtimes are, so any differing byte fails the test.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..runner.scoring import ScoringError, find_accuracy_log
from .compliance_perf import compare, problems_within
from .compliance_verdict import Verdict, run_problems

NAME = "TEST01"
# MLPerf TEST01's seed; the target is larger than MLPerf's small-dataset 64 because our
# evaluation sets are small and the check is cheap.
ACCURACY_LOG_RNG_SEED = 720381539243781796
SAMPLING_TARGET = 256
AUDIT = {
    "accuracy_log_rng_seed": ACCURACY_LOG_RNG_SEED,
    "accuracy_log_sampling_target": SAMPLING_TARGET,
}
NEEDS = ("performance", "accuracy")
LISTED = 10  # mismatching samples named in the details


def read_outputs(directory: Path) -> list[tuple[int, str]]:
    """(qsl_idx, uppercase hex) per entry of the run's accuracy log, in log order."""
    path = find_accuracy_log(directory)
    try:
        entries = json.loads(path.read_text())
        return [(int(e["qsl_idx"]), str(e["data"]).upper()) for e in entries]
    except (ValueError, KeyError, TypeError) as error:
        raise ScoringError(f"{path}: not an accuracy log ({error}); rerun the run") from None


def compare_outputs(sampled: list[tuple[int, str]], reference: dict[int, str]) -> dict[str, Any]:
    known = [(index, data) for index, data in sampled if index in reference]
    mismatched = [index for index, data in known if reference[index] != data]
    missing = sorted({index for index, _ in sampled if index not in reference})
    return {
        "sampled": len(sampled),
        "matched": len(known) - len(mismatched),
        "mismatched": len(mismatched),
        "mismatched_samples": mismatched[:LISTED],
        "not_in_accuracy_run": missing[:LISTED],
    }


def verify(
    directory: Path, result: dict[str, Any], references: dict[str, tuple[Path, dict[str, Any]]]
) -> Verdict:
    reasons = run_problems(directory, result, "accuracy_log_sampling_target")
    details: dict[str, Any] = {"sampling_target": SAMPLING_TARGET}
    accuracy_dir, _ = references["accuracy"]
    try:
        sampled = read_outputs(directory)
    except ScoringError as error:
        sampled = []
        reasons.append(f"no sampled outputs: {error}")
    reference = {}
    for index, data in read_outputs(accuracy_dir):
        reference.setdefault(index, data)  # first response per sample, as MLPerf reads it
    outputs = compare_outputs(sampled, reference)
    details["outputs"] = outputs
    if outputs["sampled"] == 0 and not reasons:
        reasons.append("the performance run logged no outputs to compare")
    if outputs["mismatched"]:
        reasons.append(
            f"{outputs['mismatched']} of {outputs['sampled']} outputs sampled in performance "
            f"mode differ from the accuracy run's (samples {outputs['mismatched_samples']})"
        )
    if outputs["not_in_accuracy_run"]:
        reasons.append(
            f"samples {outputs['not_in_accuracy_run']} are not in the accuracy run's log "
            f"(it did not cover the evaluation set)"
        )
    _, performance = references["performance"]
    comparison = compare(str(result.get("scenario")), performance, result)
    details["performance"] = comparison.to_dict()
    reasons += problems_within(comparison)
    return Verdict(NAME, not reasons, reasons, details)

"""The model: the reference one in the closed division, carried in src/models so its bytes
can be hashed, and the same (with the same runtime) in every run of a scenario."""

from __future__ import annotations

import json

from ...suite.benchmarks import sha256_file
from ..checker import Context, Scenario


def check_scenario(ctx: Context, scenario: Scenario) -> None:
    runs = scenario.all_runs()
    reference = (ctx.rules.benchmarks.get(scenario.benchmark) or {}).get("model_sha256")
    closed = scenario.submitter.division in (ctx.rules.param("model.reference", "divisions") or [])
    for _mode, run in runs:
        sha = (run.result.get("model") or {}).get("sha256")
        if closed and reference and run.result and sha != reference:
            ctx.fail(
                run.path("result.json"),
                "model.reference",
                f"model sha256 {str(sha)[:16]}... is not the reference model's "
                f"({reference[:16]}...); the closed division runs the reference model",
            )
    _same_in_all_runs(ctx, runs)
    _model_file(ctx, scenario)


def _same_in_all_runs(ctx: Context, runs: list) -> None:
    with_results = [run for _mode, run in runs if run.result]
    if not with_results:
        return
    first = with_results[0]
    for run in with_results[1:]:
        for key in ("model", "runtime"):
            mine = _identity(run.result.get(key), key)
            theirs = _identity(first.result.get(key), key)
            if mine != theirs:
                ctx.fail(
                    run.path("result.json"),
                    "model.same-in-all-runs",
                    f"{key} {mine} differs from {first.directory.name}'s {theirs}",
                )


def _identity(value: object, key: str) -> str:
    """What must match: the model's hash (paths differ between runs), the whole runtime."""
    if key == "model" and isinstance(value, dict):
        value = value.get("sha256")
    return json.dumps(value, sort_keys=True)


def _model_file(ctx: Context, scenario: Scenario) -> None:
    path = scenario.directory / "measurements.json"
    if not path.is_file():
        return  # reported by files.required
    try:
        measurements = json.loads(path.read_text())
    except ValueError:
        ctx.fail(path, "model.file", "not valid JSON")
        return
    stated = measurements.get("model_sha256")
    model_file = scenario.submitter.root / str(measurements.get("model_file"))
    if not measurements.get("model_file") or not model_file.is_file():
        ctx.fail(path, "model.file", f"model_file {measurements.get('model_file')!r} not found")
        return
    actual = sha256_file(model_file)
    if actual != stated:
        ctx.fail(
            model_file,
            "model.file",
            f"hashes to {actual[:16]}..., measurements.json says {str(stated)[:16]}...",
        )
    for _mode, run in scenario.all_runs():
        sha = (run.result.get("model") or {}).get("sha256")
        if run.result and sha != actual:
            ctx.fail(
                run.path("result.json"),
                "model.file",
                f"model sha256 {str(sha)[:16]}... is not {model_file.name}'s ({actual[:16]}...)",
            )

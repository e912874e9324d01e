"""Orchestrate the suite build: one worker process per benchmark, the TFLM check, the manifest.

Usage (from the repository root, with the build dependencies installed)::

    python -m edgebench.suite.build                 # all four, into edgebench/suite/
    python -m edgebench.suite.build --only kws,ic   # just these; other manifest entries kept
    python -m edgebench.suite.build --out /tmp/s    # somewhere else (e.g. to compare hashes)

Why this process never imports TensorFlow: every benchmark is built in its own
fresh interpreter (see ``worker``), so nothing one build leaves behind in
TensorFlow or Keras can change the next one's bytes. The build fails (exit 1,
no manifest written) if any int8 model misses its quality target.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from edgebench.suite.build import BENCHMARKS, manifest
from edgebench.suite.build.tfenv import ENV

SUITE_DIR = Path(__file__).resolve().parent.parent
REPO_ROOT = SUITE_DIR.parent.parent
TFLM_SAMPLES = 16
TFLM_TIMEOUT_S = 600


def _say(message: str) -> None:
    print(message, flush=True)


def _child_env() -> dict[str, str]:
    """Our environment plus the determinism settings, with the repo importable."""
    env = {**os.environ, **ENV}
    path = env.get("PYTHONPATH", "")
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + path if path else "")
    return env


def parse_only(text: str | None) -> list[str]:
    """Validate ``--only`` (comma-separated names) and return them in build order."""
    if not text:
        return list(BENCHMARKS)
    wanted = [name.strip() for name in text.split(",") if name.strip()]
    unknown = sorted(set(wanted) - set(BENCHMARKS))
    if unknown:
        raise SystemExit(
            f"error: unknown benchmark(s) {', '.join(unknown)} in --only; "
            f"choose from {', '.join(BENCHMARKS)}"
        )
    return [name for name in BENCHMARKS if name in wanted]


def run_worker(name: str, out_dir: Path, result: Path) -> dict[str, Any]:
    """Build one benchmark in a fresh interpreter; return its result entry."""
    cmd = [sys.executable, "-m", "edgebench.suite.build.worker", name]
    cmd += ["--out", str(out_dir), "--result", str(result)]
    proc = subprocess.run(cmd, env=_child_env(), cwd=REPO_ROOT, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"error: building {name} failed (worker exit code {proc.returncode})")
    return json.loads(result.read_text())


def run_tflm_check(name: str, out_dir: Path) -> dict[str, Any]:
    """Run the TFLM check in its own process; a crash or timeout means ``runs: false``."""
    cmd = [sys.executable, "-m", "edgebench.suite.build.tflm_check"]
    cmd += [str(out_dir / "models" / f"{name}.tflite"), str(out_dir / "data" / f"{name}_eval.npz")]
    cmd += ["--samples", str(TFLM_SAMPLES)]
    try:
        proc = subprocess.run(
            cmd,
            env=_child_env(),
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=TFLM_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"runs": False, "matches_litert_no_delegate": False, "error": "timeout"}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {
            "runs": False,
            "matches_litert_no_delegate": False,
            "error": f"exit code {proc.returncode}: {tail}",
        }
    return json.loads(lines[-1])


def _tool_versions(entries: list[dict[str, Any]]) -> dict[str, str]:
    versions: dict[str, str] = {}
    for entry in entries:
        versions.update(entry["_built_with"])
    try:
        versions["tflite-micro"] = metadata.version("tflite-micro")
    except metadata.PackageNotFoundError:
        versions["tflite-micro"] = "not installed"
    return versions


def _summary_line(name: str, entry: dict[str, Any], seconds: float) -> str:
    tflm = entry["tflm"]
    tflm_text = "runs" if tflm["runs"] else "FAILS"
    if tflm["runs"]:
        same = tflm["matches_litert_no_delegate"]
        tflm_text += ", = LiteRT" if same else f", max diff {tflm.get('max_abs_diff')} LSB"
    return (
        f"{name:4} {entry['metric']:4} fp32 {entry['fp32_metric']:.4f} "
        f"int8 {entry['int8_metric']:.4f} (xnnpack {entry['int8_metric_xnnpack']:.4f}) "
        f"target {entry['target']:.4f} n={entry['dataset']['count']} "
        f"{entry['model']['bytes']} B; TFLM {tflm_text}; {seconds:.0f} s"
    )


def main(argv: list[str] | None = None) -> int:
    """Build the selected benchmarks and write (or update) the manifest."""
    parser = argparse.ArgumentParser(
        prog="python -m edgebench.suite.build",
        description="Rebuild the edgebench reference suite (models, eval sets, manifest).",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=SUITE_DIR,
        help=f"output directory (default: the package's suite dir, {SUITE_DIR})",
    )
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(BENCHMARKS)}")
    args = parser.parse_args(argv)
    names = parse_only(args.only)
    out_dir: Path = args.out.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)

    start = time.monotonic()
    results: dict[str, dict[str, Any]] = {}
    finished: dict[str, dict[str, Any]] = {}
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="edgebench-build-") as tmp:
        for i, name in enumerate(names, start=1):
            t0 = time.monotonic()
            _say(f"== {name} ({i}/{len(names)}): building in a fresh process")
            results[name] = run_worker(name, out_dir, Path(tmp) / f"{name}.json")
            _say(f"== {name}: TFLM check on {TFLM_SAMPLES} eval samples (separate process)")
            tflm = run_tflm_check(name, out_dir)
            finished[name] = manifest.finish_entry(results[name], out_dir, tflm)
            timings[name] = time.monotonic() - t0
            _say(f"== {name}: done in {timings[name]:.0f} s")

    _say("")
    for name in names:
        _say(_summary_line(name, finished[name], timings[name]))
    _say(f"total {time.monotonic() - start:.0f} s")

    missed = [n for n in names if not results[n]["meets_target"]]
    broken = [n for n in names if not finished[n]["tflm"]["runs"]]
    if missed or broken:
        if missed:
            _say(f"error: int8 metric below target for {', '.join(missed)}; manifest not written")
        if broken:
            _say(f"error: TFLM cannot run {', '.join(broken)}; manifest not written")
        return 1

    path = out_dir / manifest.MANIFEST_NAME
    previous = manifest.load(path)
    entries = dict(previous["benchmarks"]) if previous and args.only else {}
    entries.update(finished)
    versions = _tool_versions(list(results.values()))
    if previous and args.only and previous.get("built_with") != versions:
        _say("warning: kept entries were built with other tool versions; rebuild all to align")
    manifest.write(path, manifest.assemble(dict(sorted(entries.items())), versions))
    _say(f"wrote {path}")
    return 0

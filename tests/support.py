"""Helpers the tests share: paths to ../shared and running the real `edgebench` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
TINY_MODELS = SHARED / "reference-models" / "mlperf-tiny"
# The real command, as a user runs it (the console script needs an install; -m does not).
CLI = (sys.executable, "-m", "edgebench.cli.main")


def shared_model(name: str) -> Path:
    path = TINY_MODELS / name
    if not path.is_file():
        pytest.skip(f"{path} not found: these tests need ../shared/reference-models")
    return path


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    full_env = dict(os.environ, **(env or {}))
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), full_env.get("PYTHONPATH")]))
    return subprocess.run(
        [*CLI, *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_json(*args: str, cwd: Path, **kwargs) -> list[dict]:
    """`edgebench run ... --json` and its parsed results (asserting the command worked)."""
    done = run_cli("run", *args, "--json", cwd=cwd, **kwargs)
    assert done.stdout.strip(), f"no JSON output; stderr: {done.stderr}"
    return json.loads(done.stdout)

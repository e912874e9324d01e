"""Helpers the tests share: paths to ../shared, running the real `edgebench` command, and
waiting on (or cutting short) the processes it starts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
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


def wait_for(predicate: Callable[[], object], timeout: float) -> bool:
    """Poll `predicate` every 0.1 s until it holds (True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def ctrl_c(process: subprocess.Popen, started: Callable[[], bool], why: str, timeout: float) -> str:
    """Ctrl-C a running `edgebench` once `started()` (a wait that says whether the run got
    there; asserted, with `why`) and return its stderr when it has exited within `timeout`.
    The process is killed if anything fails before it exits."""
    try:
        assert started(), why
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
    return stderr


def processes_mentioning(text: str) -> list[int]:
    """Processes (not this one) whose command line holds `text`, e.g. a test's own directory."""
    needle, found = text.encode(), []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if needle in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found

"""Ctrl-C in the middle of a run leaves a results directory marked incomplete, not empty."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

from edgebench.agent.recorder import read_queries

from .support import CLI, REPO, ctrl_c, wait_for


def test_ctrl_c_marks_the_run_incomplete_and_keeps_measurements(
    kws_model: Path, tmp_path: Path
) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    process = subprocess.Popen(
        [
            *CLI,
            "run",
            "--model",
            str(kws_model),
            "-s",
            "SingleStream",
            "--duration",
            "60",
            "--results",
            "res",
            "--json",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def measuring() -> bool:
        # The first chunk of per-query times reaches the disk after 65,536 queries.
        files = list((tmp_path / "res").glob("*/queries/index.i64"))
        return bool(files) and files[0].stat().st_size > 0

    stderr = ctrl_c(
        process, lambda: wait_for(measuring, 60), "the run never started measuring", timeout=30
    )
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr
    [run_dir] = list((tmp_path / "res").iterdir())
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "incomplete"
    assert result["valid"] is False
    record = json.loads((run_dir / "record.json").read_text())
    assert record["status"] == "interrupted"
    assert record["query_count"] > 0
    index, issue, complete = read_queries(str(run_dir / "queries"))
    assert len(index) == record["query_count"]
    assert (complete >= issue).all()
    assert (run_dir / "summary.txt").read_text().count("incomplete") >= 1


def agent_pids(cwd: Path) -> list[int]:
    """The local agents started from `cwd` (the CLI's working directory in this test)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            words = (entry / "cmdline").read_bytes().split(b"\0")
            where = os.readlink(entry / "cwd")
        except OSError:
            continue
        if b"edgebench.agent" in words and where == str(cwd):
            pids.append(int(entry.name))
    return pids


def test_agent_killed_mid_run_is_named_and_what_it_measured_is_kept(
    kws_model: Path, tmp_path: Path
) -> None:
    """As the OOM killer would: SIGKILL, no last word; the host says so in one line."""
    env = dict(os.environ, PYTHONPATH=str(REPO), COLUMNS="1000")  # one line, not wrapped
    command = [*CLI, "run", "--model", str(kws_model), "-s", "SingleStream"]
    command += ["--duration", "60", "--loop", "native", "--results", "res", "--json"]
    process = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:

        def measuring() -> bool:
            files = list((tmp_path / "res").glob("*/queries/index.i64"))
            return bool(files) and files[0].stat().st_size > 0

        assert wait_for(measuring, 60), "the run never started measuring"
        pids = agent_pids(tmp_path)
        assert pids, "no agent process found"
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert process.returncode == 1 and "Traceback" not in stderr, stderr
    assert len(lines) == 1 and "killed by SIGKILL while running" in lines[0], lines
    [result] = json.loads(stdout)
    assert result["status"] == "failed" and "what it measured was kept" in result["reasons"][0]
    [run_dir] = list((tmp_path / "res").iterdir())
    assert (run_dir / "queries" / "index.i64").stat().st_size > 0

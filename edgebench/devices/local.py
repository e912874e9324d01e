"""The host itself as the device under test: the agent runs as a subprocess, as on a board.

Running the agent in its own process (rather than calling it in-process) keeps one code path
with the SSH device, gives LoadGen the fresh process its one-FromConfig rule needs, and lets
Ctrl-C stop the run while the host still writes the record.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

from ..agent.clock import clock_from_env
from ..agent.progress import EVENT_PREFIX
from ..metrics.clock_mapping import ClockAnchor, measure_subprocess
from .base import FINAL_STATUSES, Device, DeviceError, EventHandler, RunRecord, SystemInfo
from .registry import register

AGENT_MODULE = "edgebench.agent"
STOP_GRACE_SECONDS = 10.0


def agent_environment() -> dict[str, str]:
    """The agent must import this checkout's edgebench, wherever the cwd is."""
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


@register
class LocalDevice(Device):
    """Runs on this machine with this Python."""

    transport = "local"
    profile_keys: ClassVar[dict[str, type | tuple[type, ...]]] = {"python": str}

    def open(self) -> None:
        self.python = str(self.profile.get("python") or sys.executable)
        self._model: Path | None = None
        self._samples: Path | None = None

    def describe(self) -> SystemInfo:
        result = subprocess.run(
            [self.python, "-m", AGENT_MODULE, "--describe"],
            capture_output=True,
            text=True,
            env=agent_environment(),
            check=False,
        )
        if result.returncode != 0:
            raise DeviceError(
                f"{self.name}: the agent could not describe the device: "
                f"{result.stderr.strip().splitlines()[-1:]}"
            )
        return SystemInfo(json.loads(result.stdout))

    def deploy(self, model: Path, samples: Path | None) -> None:
        for path in (model, samples):
            if path is not None and not path.is_file():
                raise DeviceError(f"{path} does not exist; check the path")
        self._model, self._samples = model, samples

    def run(self, plan: dict[str, Any], outdir: Path, on_event: EventHandler) -> RunRecord:
        if self._model is None:
            raise DeviceError("run() before deploy(): nothing to run")
        plan = dict(
            plan, model=str(self._model), samples=str(self._samples) if self._samples else None
        )
        outdir.mkdir(parents=True, exist_ok=True)
        plan_path = outdir / "plan.json"
        plan_path.write_text(json.dumps(plan, indent=2))
        with open(outdir / "agent.log", "w") as log:
            process = subprocess.Popen(
                [self.python, "-m", AGENT_MODULE, str(plan_path), str(outdir)],
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                env=agent_environment(),
                start_new_session=True,
            )
            try:
                relay_events(process.stdout, on_event, log)
                process.wait()
            except KeyboardInterrupt:
                stop_agent(process)
                raise
        record = RunRecord.load(outdir)
        record.data.setdefault("exit_code", process.returncode)
        if record.status == "missing" or record.status not in FINAL_STATUSES:
            record.data["error"] = _death(process.returncode, record.status, outdir)
            record.data["status"] = "failed"
        return record

    def measure_clock(self) -> ClockAnchor:
        """The agent reads this machine's CLOCK_MONOTONIC: the identity, nothing to estimate.

        Only when a test shifts the agent's clock (EDGEBENCH_TEST_CLOCK_* in the environment,
        which the agent inherits) is the offset measured, through the same round-trip
        estimator an SSH device uses, so the estimator can be tested end to end here.
        """
        if clock_from_env().identity:
            return ClockAnchor.identity()
        return measure_subprocess(
            [self.python, "-m", AGENT_MODULE, "--clock"], env=agent_environment()
        )

    def close(self) -> None:
        pass


def relay_events(stream: Any, on_event: EventHandler, log: Any) -> None:
    """Pass the agent's event lines to the host; anything else goes to the agent log."""
    for line in stream:
        if line.startswith(EVENT_PREFIX):
            on_event(json.loads(line[len(EVENT_PREFIX) :]))
        else:
            log.write(line)


def stop_agent(process: subprocess.Popen) -> None:
    """Ask the agent to stop (it marks its record interrupted), then make sure it did."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _death(code: int | None, phase: str, outdir: Path) -> str:
    """Why the agent ended without its last word: a signal (the OOM killer, kill -9) or an
    exit before any record, with the last line it logged."""
    if code is not None and code < 0:
        name = signal.Signals(-code).name
        return (
            f"the agent was killed by {name} while {phase} (out of memory? see `dmesg`); "
            f"what it measured was kept"
        )
    lines = [line for line in (outdir / "agent.log").read_text().splitlines() if line.strip()]
    last = lines[-1] if lines else "no output"
    if phase == "missing":
        return f"the agent exited with code {code} before writing a record: {last}"
    return f"the agent exited with code {code} while {phase}: {last}"

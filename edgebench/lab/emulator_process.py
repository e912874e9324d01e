"""Start a meter emulator as its own process and learn where it listens.

Virtual meters are real processes speaking the real wire protocol (a TCP port, a pty), so a
driver talks to them exactly as to hardware. Each emulator prints where it can be reached as
its first stdout line; this waits for that line, and reports the emulator's own error output
when it dies instead. Only the process started here is ever signalled.
"""

from __future__ import annotations

import os
import selectors
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import edgebench

START_TIMEOUT_S = 15.0
#: Where the virtual bench's activity file is, when a virtual meter profile does not say.
ACTIVITY_ENV = "EDGEBENCH_ACTIVITY"


class EmulatorError(RuntimeError):
    """The emulator did not come up; the message carries its own complaint."""


def emulator_args(options: dict[str, object]) -> list[str]:
    """A virtual meter profile's `emulator:` mapping as command-line flags (`idle_w` ->
    `--idle-w`); the activity file defaults to $EDGEBENCH_ACTIVITY, set by whoever runs the
    virtual device, so one profile serves every run."""
    options = dict(options)
    if "activity" not in options and os.environ.get(ACTIVITY_ENV):
        options["activity"] = os.environ[ACTIVITY_ENV]
    args: list[str] = []
    for key, value in options.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    return args


class EmulatorProcess:
    """`python -m <module> <args>`; `address` is the first line it printed."""

    def __init__(self, module: str, args: list[str], timeout_s: float = START_TIMEOUT_S) -> None:
        self.module = module
        self._stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed in stop())
        env = dict(os.environ)
        source_root = str(Path(edgebench.__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [source_root, env.get("PYTHONPATH")]))
        self.process = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        self.address = self._first_line(timeout_s)

    def _first_line(self, timeout_s: float) -> str:
        assert self.process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                if selector.select(timeout=0.1):
                    line = self.process.stdout.readline().strip()
                    if line:
                        return line
                    break  # end of output: the process is exiting
                if self.process.poll() is not None:
                    break
        complaint = self.stderr_tail() or "no error output"
        self.stop()
        raise EmulatorError(f"{self.module} did not start: {complaint}")

    def stderr_tail(self, lines: int = 3) -> str:
        self._stderr.seek(0)
        return " | ".join(self._stderr.read().strip().splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._stderr.close()

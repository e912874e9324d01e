"""Start a stand-in for hardware as its own process and learn where to reach it.

Virtual devices and meters are real processes speaking the real wire protocol (a TCP port, a
pty), so drivers and transports talk to them exactly as to hardware. Each prints where it
can be reached on stdout; this waits for that line and, when the process dies or stays
silent instead, reports its own error output. Only the process started here is signalled.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

import edgebench

START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 5.0
#: Where the virtual bench's activity file is, when a virtual meter profile does not say.
ACTIVITY_ENV = "EDGEBENCH_ACTIVITY"


class EmulatorError(RuntimeError):
    """The stand-in did not come up; the message carries its own complaint."""


def end_process(
    process: subprocess.Popen, timeout_s: float = STOP_TIMEOUT_S, *, terminate: bool = True
) -> int:
    """End `process` if it still runs and return its exit code: terminate it (unless
    `terminate` is False: it is ending by itself), wait up to `timeout_s`, then kill it."""
    if process.poll() is None:
        if terminate:
            process.terminate()
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def first_line(line: str) -> str | None:
    return line or None


class StandInProcess:
    """`argv` running until stop(); `address` is what `ready` found in its output.

    `ready` is called with each stripped stdout line and returns the address once the line
    announcing it has come (None to keep reading). Failures raise `error`."""

    def __init__(
        self,
        argv: Sequence[str],
        what: str,
        ready: Callable[[str], str | None] = first_line,
        *,
        stdin: int | None = subprocess.DEVNULL,
        env: dict[str, str] | None = None,
        timeout_s: float = START_TIMEOUT_S,
        error: type[Exception] = EmulatorError,
    ) -> None:
        self.what = what
        self._stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop())
        self._final_stderr = ""
        self._drainer: threading.Thread | None = None
        self.process = subprocess.Popen(
            list(argv), stdin=stdin, stdout=subprocess.PIPE, stderr=self._stderr, env=env
        )
        try:
            self.address = self._wait(ready, timeout_s, error)
        except BaseException:
            self.stop()
            raise
        # Whatever it prints later (the PTDaemon emulator's console, say) is read and
        # dropped: a full pipe would block the stand-in mid-run.
        self._drainer = threading.Thread(target=self._drain, name=f"{what} output", daemon=True)
        self._drainer.start()

    def _drain(self) -> None:
        stream = self.process.stdout
        with contextlib.suppress(OSError, ValueError):
            while stream is not None and os.read(stream.fileno(), 65536):
                pass

    def _wait(
        self, ready: Callable[[str], str | None], timeout_s: float, error: type[Exception]
    ) -> str:
        assert self.process.stdout is not None
        output = b""
        deadline = time.monotonic() + timeout_s
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise error(f"{self.what} did not start within {timeout_s:g} s: {self._why()}")
                if not selector.select(timeout=min(left, 0.1)):
                    if self.process.poll() is not None:
                        break
                    continue
                chunk = os.read(self.process.stdout.fileno(), 4096)
                if not chunk:
                    break  # end of output: the process is exiting
                output += chunk
                *lines, rest = output.split(b"\n")
                for line in lines:
                    found = ready(line.decode(errors="replace").strip())
                    if found:
                        return found
                output = rest
        self.process.wait()
        raise error(
            f"{self.what} did not start (exit code {self.process.returncode}): {self._why()}"
        )

    def _why(self) -> str:
        return self.stderr_tail() or "no error output"

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def stderr_text(self) -> str:
        """What the process wrote to stderr so far (all of it, once stopped)."""
        if self._stderr.closed:
            return self._final_stderr
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    def stderr_tail(self, lines: int = 3) -> str:
        return " | ".join(self.stderr_text().strip().splitlines()[-lines:])

    def stop(self) -> None:
        end_process(self.process, STOP_TIMEOUT_S)
        if self._drainer is not None:  # it ends at the output's end; its fd must stay ours
            self._drainer.join(timeout=STOP_TIMEOUT_S)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        if not self._stderr.closed:
            self._final_stderr = self.stderr_text()
            self._stderr.close()


def python_module_argv(module: str, args: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """`python -m module args` with this edgebench importable, whatever the working dir."""
    env = dict(os.environ)
    source_root = str(Path(edgebench.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [source_root, env.get("PYTHONPATH")]))
    return [sys.executable, "-m", module, *args], env


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


class EmulatorProcess(StandInProcess):
    """`python -m <module> <args>`; `address` is the first line it printed."""

    def __init__(self, module: str, args: list[str], timeout_s: float = START_TIMEOUT_S) -> None:
        self.module = module
        argv, env = python_module_argv(module, args)
        super().__init__(argv, module, env=env, timeout_s=timeout_s)

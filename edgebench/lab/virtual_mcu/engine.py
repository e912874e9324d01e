"""The virtual MCU's side of the TFLM worker: start it, talk to it, survive its death.

A worker that dies (TFLM aborting on a model it cannot run, or anything else) becomes an
EngineDied naming why; the next request starts a fresh worker, so the device stays up and
answers every command, as a host expects of firmware that merely failed an inference.
"""

from __future__ import annotations

import contextlib
import pickle
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..emulator_process import end_process

WORKER = "edgebench.lab.virtual_mcu.tflm_worker"


class EngineDied(RuntimeError):
    """The TFLM worker process ended; the message says how (signal, exit code, last error)."""


@dataclass
class Invocation:
    elapsed_ns: int  # the worker's own measure of the inference loop
    output: np.ndarray


class TflmEngine:
    def __init__(self, model: Path) -> None:
        self.model = model
        self._process: subprocess.Popen | None = None
        self._stderr: Any = None

    def _start(self) -> subprocess.Popen:
        if self._process is not None and self._process.poll() is None:
            return self._process
        self._discard()
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the worker)
        self._process = subprocess.Popen(
            [sys.executable, "-m", WORKER, str(self.model)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        self._receive()  # the ready message, or the reason it never came
        return self._process

    def _receive(self) -> dict:
        assert self._process is not None and self._process.stdout is not None
        try:
            return pickle.load(self._process.stdout)
        except (EOFError, pickle.UnpicklingError, OSError):
            raise EngineDied(self._death()) from None

    def _death(self) -> str:
        assert self._process is not None
        code = end_process(self._process, 5.0, terminate=False)  # it is dying already
        if code < 0:
            try:
                how = f"worker killed by {signal.Signals(-code).name}"
            except ValueError:
                how = f"worker killed by signal {-code}"
        else:
            how = f"worker exited with code {code}"
        self._stderr.seek(0)
        lines = [line.strip() for line in self._stderr.read().decode(errors="replace").splitlines()]
        last = next((line for line in reversed(lines) if line), "")
        self._discard()
        return f"{how}: {last}" if last else how

    def _request(self, message: dict) -> dict:
        process = self._start()
        assert process.stdin is not None
        try:
            pickle.dump(message, process.stdin)
            process.stdin.flush()
        except OSError:
            raise EngineDied(self._death()) from None
        return self._receive()

    def load(self, tensor: np.ndarray) -> None:
        self._request({"op": "load", "tensor": tensor})

    def invoke(self, count: int) -> Invocation:
        reply = self._request({"op": "invoke", "count": count})
        return Invocation(int(reply["elapsed_ns"]), reply["output"])

    def warm(self) -> str | None:
        """Start the worker now; None if it runs, else why it died (the MCU boots anyway)."""
        try:
            self._start()
        except EngineDied as error:
            return str(error)
        return None

    def _discard(self) -> None:
        if self._process is not None:
            for stream in (self._process.stdin, self._process.stdout):
                with contextlib.suppress(OSError):
                    stream.close()
            if self._process.poll() is None:
                self._process.kill()
                self._process.wait()
            self._process = None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def close(self) -> None:
        self._discard()

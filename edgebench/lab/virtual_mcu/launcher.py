"""Start a virtual MCU process from Python and get its port: for tests, `edgebench lab up`
and the serial transport's `port: virtual`.

    with VirtualMcu.start(model, "eb-kws", baud=115200) as vm:
        serial.Serial(vm.port, 115200)

The device runs in its own process (as a board is its own machine), tied to this one by
its stdin: if the launcher dies the device exits too. Its stderr goes to a file, and any
failure to start quotes it, so a test failure says why.
"""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

from ...protocol.tiny_models import model_for_benchmark
from ...suite.benchmarks import get_benchmark
from .errors import VirtualMcuError

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 5.0


class VirtualMcu:
    def __init__(self, process: subprocess.Popen, stderr: IO[bytes]) -> None:
        self.process = process
        self._stderr = stderr
        self._final_stderr = ""
        self.port = self._wait_for_port()

    @classmethod
    @contextlib.contextmanager
    def start(
        cls,
        model: Path | str,
        model_id: str,
        *,
        baud: int = 115200,
        timing: str = "performance",
        activity: Path | str | None = None,
        vendor: str | None = None,
        infer_us: float | None = None,
        drift_ppm: float | None = None,
        boot: str = "start",
        link: Path | str | None = None,
        extra_args: Sequence[str] = (),
    ) -> Iterator[VirtualMcu]:
        """Run one virtual MCU for the `with` block; extra_args take fault options."""
        argv = ["--model", str(model), "--model-id", model_id, "--baud", str(baud)]
        argv += ["--timing", timing, "--boot", boot, "--exit-on-stdin-eof"]
        for flag, value in (
            ("--activity", activity),
            ("--vendor", vendor),
            ("--infer-us", infer_us),
            ("--drift-ppm", drift_ppm),
            ("--link", link),
        ):
            if value is not None:
                argv += [flag, str(value)]
        device = cls.spawn([*argv, *extra_args])
        try:
            yield device
        finally:
            device.stop()

    @classmethod
    def spawn(cls, argv: Sequence[str]) -> VirtualMcu:
        stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed by stop())
        process = subprocess.Popen(
            [sys.executable, "-m", "edgebench.lab.virtual_mcu", *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
        try:
            return cls(process, stderr)
        except BaseException:
            _end(process)
            stderr.close()
            raise

    def _wait_for_port(self) -> str:
        assert self.process.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.process.stdout], [], [], max(0.0, left))
            if not ready:
                raise VirtualMcuError(
                    f"virtual MCU printed no port within {START_TIMEOUT_S:g} s "
                    f"({self.stderr_text().strip() or 'no error output'})"
                )
            chunk = os.read(self.process.stdout.fileno(), 1)
            if not chunk:
                self.process.wait()
                raise VirtualMcuError(
                    f"virtual MCU exited with code {self.process.returncode} before serving: "
                    f"{self.stderr_text().strip() or 'no error output'}"
                )
            line += chunk
        text = line.decode(errors="replace").strip()
        if not text.startswith("port "):
            raise VirtualMcuError(f"virtual MCU announced {text!r} instead of 'port <path>'")
        return text.split(" ", 1)[1]

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def stderr_text(self) -> str:
        """What the device process wrote to stderr so far (all of it, once stopped)."""
        if self._stderr.closed:
            return self._final_stderr
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    def stop(self) -> None:
        if self._stderr.closed:
            return
        _end(self.process)
        self._final_stderr = self.stderr_text()
        self._stderr.close()


def _end(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for stream in (process.stdin, process.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


def benchmark_model(name: str) -> tuple[Path, str]:
    """The model file and id a virtual MCU runs for bundled benchmark `name`."""
    tiny = model_for_benchmark(name)
    if tiny.official:
        raise VirtualMcuError(
            f"{name} is an official MLPerf Tiny benchmark whose model is not bundled; "
            f"start the virtual MCU with --model <its .tflite> --model-id {tiny.model_id}"
        )
    return get_benchmark(tiny.benchmark).model_path, tiny.model_id

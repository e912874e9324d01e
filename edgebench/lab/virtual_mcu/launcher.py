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
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

from ...protocol.tiny_models import model_for_benchmark
from ...suite.benchmarks import get_benchmark
from ..emulator_process import StandInProcess, python_module_argv
from .errors import VirtualMcuError

START_TIMEOUT_S = 30.0


class VirtualMcu(StandInProcess):
    """A running virtual MCU; `port` is its pty."""

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
        command, env = python_module_argv("edgebench.lab.virtual_mcu", argv)
        # stdin ties the device to this process: --exit-on-stdin-eof ends it with us.
        return cls(
            command,
            "virtual MCU",
            _port_line,
            stdin=subprocess.PIPE,
            env=env,
            timeout_s=START_TIMEOUT_S,
            error=VirtualMcuError,
        )

    @property
    def port(self) -> str:
        return self.address


def _port_line(line: str) -> str | None:
    return line.split(" ", 1)[1] if line.startswith("port ") else None


def benchmark_model(name: str) -> tuple[Path, str]:
    """The model file and id a virtual MCU runs for bundled benchmark `name`."""
    tiny = model_for_benchmark(name)
    if tiny.official:
        raise VirtualMcuError(
            f"{name} is an official MLPerf Tiny benchmark whose model is not bundled; "
            f"start the virtual MCU with --model <its .tflite> --model-id {tiny.model_id}"
        )
    return get_benchmark(tiny.benchmark).model_path, tiny.model_id

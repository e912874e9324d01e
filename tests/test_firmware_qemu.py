"""The Cortex-M4 port (MPS2 AN386) cross-compiled and booted under QEMU: it answers like the
POSIX build, its results equal the host's reference scores, and with -icount its microsecond
timer is deterministic run after run (it counts instructions: functional timing only)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from edgebench.firmware.ports import firmware_port
from edgebench.metrics.accuracy import reconstruction_scores
from edgebench.suite.benchmarks import bundled_benchmarks

from .test_firmware_bridge import Bridge
from .tflm_reference import quantization, tflm_outputs

serial = pytest.importorskip("serial")
pytestmark = pytest.mark.skipif(
    shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
    reason="gcc-arm-none-eabi / qemu-system-arm not installed (.ci/run installs them)",
)


def run_on_qemu(samples: np.ndarray, iterations: int) -> tuple[list[str], list[int]]:
    bench = bundled_benchmarks()["ad"]
    port = firmware_port("qemu-mps2-an386")
    results, laps = [], []
    with (
        port.running(bench.model_path, "eb-ad") as firmware,
        serial.Serial(firmware.port, 115200, timeout=20) as line,
    ):
        firmware.resume()
        device = Bridge(line)
        assert device.read_until_ready()[-3:] == [
            "m-timestamp-mode-performance",
            "m-init-done",
            "m-ready",
        ]
        assert device.command("name") == ["m-name-dut-[edgebench mps2-an386]"]
        assert device.command("profile")[1] == "m-model-[eb-ad]"
        for sample in samples:
            replies = device.infer(sample.tobytes(), iterations=iterations)
            first, second = (int(text.removeprefix("m-lap-us-")) for text in replies[3:5])
            laps.append(second - first)
            results.append(replies[-1])
        assert device.command("bogus") == ["e-[Unknown command: bogus]"]
    return results, laps


def test_cortex_m4_results_equal_host_scores_and_timer_is_deterministic():
    bench = bundled_benchmarks()["ad"]
    samples = np.load(bench.dataset_path)["x"][:4]
    scores = reconstruction_scores(
        samples, tflm_outputs(bench.model_path, samples), *quantization(bench.model_path)
    )
    results, laps = run_on_qemu(samples, iterations=20)
    assert results == [f"m-results-[{score:.6f}]" for score in scores]
    again, laps_again = run_on_qemu(samples[:1], iterations=20)
    assert again == results[:1]
    # one timer tick of jitter from where the command's bytes land against the tick
    assert abs(laps_again[0] - laps[0]) <= 1
    assert all(lap > 0 for lap in laps)

"""Speed of firmware_bridges' reference int8 kernels against TFLM, side by side on this host.

Both are plain reference kernels (no SIMD), so the ratio says whether the C core is a sane
starting point for a port, not how fast a microcontroller is. Each model's whole evaluation
set is run through the host build of the kernels (one process, inputs on stdin) and through
the tflite-micro interpreter, in alternation, `--repeats` times; the medians are printed.

    python benchmarks/firmware_kernels.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from tflite_micro.python.tflite_micro import runtime

from edgebench.firmware.build import COMMON_FLAGS, FIRMWARE_ROOT, build_with_model, find_tool
from edgebench.suite.benchmarks import bundled_benchmarks


def c_seconds(program: Path, inputs: np.ndarray) -> float:
    data = inputs.tobytes()
    started = time.perf_counter()
    subprocess.run([program], input=data, capture_output=True, check=True)
    return time.perf_counter() - started


def tflm_seconds(model: Path, inputs: np.ndarray) -> float:
    interpreter = runtime.Interpreter.from_file(str(model))
    started = time.perf_counter()
    for sample in inputs:
        interpreter.set_input(sample[np.newaxis], 0)
        interpreter.invoke()
        interpreter.get_output(0)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    compiler = find_tool(("cc", "gcc", "clang"), "apt-get install gcc")
    print(f"{'model':6} {'samples':>7} {'C us/inf':>9} {'TFLM us/inf':>11} {'TFLM/C':>7}")
    with tempfile.TemporaryDirectory() as scratch:
        for name, bench in bundled_benchmarks().items():
            program, _ = build_with_model(
                bench.model_path,
                "bench",
                compiler,
                COMMON_FLAGS,
                [FIRMWARE_ROOT / "tools" / "run_model.c"],
                Path(scratch) / name,
                "run_model",
                kernels_only=True,
            )
            inputs = np.load(bench.dataset_path)["x"]
            c_times, tflm_times = [], []
            for _ in range(args.repeats):
                c_times.append(c_seconds(program, inputs))
                tflm_times.append(tflm_seconds(bench.model_path, inputs))
            c_us = statistics.median(c_times) / len(inputs) * 1e6
            tflm_us = statistics.median(tflm_times) / len(inputs) * 1e6
            print(f"{name:6} {len(inputs):7d} {c_us:9.1f} {tflm_us:11.1f} {tflm_us / c_us:7.2f}")


if __name__ == "__main__":
    main()

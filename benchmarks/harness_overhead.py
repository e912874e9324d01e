"""What edgebench adds to each inference: its reported SingleStream p50 beside a bare loop.

For every bundled model (and any --model given), this alternates, in one run, a bare
`interpreter.invoke()` loop in this process with a full `edgebench` SingleStream run on the
local device (agent subprocess + LoadGen), and prints the medians side by side: bare p50,
edgebench p50, the difference in us and the ratio. Interleaving keeps machine noise (other
processes, frequency changes) from landing on one side only.

    python benchmarks/harness_overhead.py [--repeats 3] [--duration 3] [--model extra.tflite]

Target (issue #2): at most 1.0 us added per query, ratio <= 1.05 for models of 20 us or more.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from edgebench.agent.runtime import import_runtime
from edgebench.devices.profiles import open_device
from edgebench.runner.run import RunOptions, run_benchmark
from edgebench.suite.benchmarks import Benchmark, bundled_benchmarks
from edgebench.suite.user_model import user_benchmark


def bare_p50_ns(model: Path, seconds: float, threads: int = 1) -> float:
    """Median of individually timed invoke() calls on one fixed random input."""
    _, _, module = import_runtime()
    interpreter = module.Interpreter(model_path=str(model), num_threads=threads)
    interpreter.allocate_tensors()
    for detail in interpreter.get_input_details():
        dtype = np.dtype(detail["dtype"])
        rng = np.random.default_rng(0)
        if dtype.kind in "iu":
            info = np.iinfo(dtype)
            data = rng.integers(info.min, info.max, detail["shape"], dtype=dtype, endpoint=True)
        else:
            data = rng.standard_normal(detail["shape"]).astype(dtype)
        interpreter.set_tensor(detail["index"], data)
    invoke = interpreter.invoke
    clock = time.perf_counter_ns
    for _ in range(200):
        invoke()
    timings = []
    append = timings.append
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for _ in range(1000):
            started = clock()
            invoke()
            append(clock() - started)
    return float(np.median(timings))


def edgebench_p50_ns(benchmark: Benchmark, seconds: float, results: Path) -> float:
    options = RunOptions(min_duration_s=seconds, results_root=results)
    with open_device("local") as device:
        result = run_benchmark(
            device, device.describe(), benchmark, "SingleStream", "performance", options
        )
    if not result["valid"]:
        raise SystemExit(f"{benchmark.name}: run not VALID: {result['reasons']}")
    return float(result["metrics"]["latency_ns"]["p50"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per measurement")
    parser.add_argument("--model", type=Path, action="append", default=[])
    parser.add_argument("--no-suite", action="store_true", help="only the --model files")
    args = parser.parse_args()

    bundled = [] if args.no_suite else list(bundled_benchmarks().values())
    benchmarks = bundled + [user_benchmark(m) for m in args.model]
    header = f"{'model':<22}{'bare p50 us':>12}{'edgebench p50 us':>18}{'added us':>10}{'ratio':>8}"
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory() as scratch:
        for benchmark in benchmarks:
            bare, ours = [], []
            for _ in range(args.repeats):
                bare.append(bare_p50_ns(benchmark.model_path, args.duration))
                ours.append(edgebench_p50_ns(benchmark, args.duration, Path(scratch)))
            bare_us = statistics.median(bare) / 1e3
            ours_us = statistics.median(ours) / 1e3
            print(
                f"{benchmark.name:<22}{bare_us:>12.2f}{ours_us:>18.2f}"
                f"{ours_us - bare_us:>10.2f}{ours_us / bare_us:>8.3f}",
                flush=True,
            )


if __name__ == "__main__":
    main()

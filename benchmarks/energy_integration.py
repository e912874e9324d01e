"""Energy integration speed and memory on a long trace streamed from disk.

For each N given, writes a synthetic meter trace of N samples (1 MS/s, float32 power quantized
like a 16-bit ADC, inference bursts plus ~20 LSB of noise) through PowerTraceWriter into compressed
chunks, then computes its energy from disk with compute_energy (one window over almost all of
it, plus an idle window) in a fresh process, and prints: write rate, integration throughput
(samples/s, one core), peak memory of the integration (tracemalloc peak and the process's
ru_maxrss), the trace's size on disk, and the result against the analytic truth. Running
two N shows memory staying flat as N grows.

    python benchmarks/energy_integration.py [-n 2e8] [-n 2e7 -n 2e8] [--level 1] [--dir D]

Targets (issue #5): >= 50 MS/s integration on one core; memory flat in N, well under 1 GB.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from edgebench.metrics.energy import EnergyOptions, Window, compute_energy
from edgebench.metrics.power_trace import COMPRESS_LEVEL, PowerTrace, PowerTraceWriter

RATE = 1e6
BLOCK = 1 << 20
CYCLE = 1000  # samples per burst cycle: 1 ms; active for the first half
IDLE_W, ACTIVE_W, LSB_W = 0.25, 1.75, 1e-4  # levels are whole LSBs, as an ADC reports
NOISE_LSB = 20.0


def pattern() -> np.ndarray:
    one = np.where(np.arange(CYCLE) < CYCLE // 2, ACTIVE_W, IDLE_W)
    return np.tile(one, BLOCK // CYCLE + 2)


def write(directory: Path, count: int, level: int) -> float:
    """Write the trace; returns the write rate (samples/s)."""
    rng = np.random.default_rng(0)
    base = pattern()
    writer = PowerTraceWriter(
        directory,
        "power",
        {"driver": "synthetic", "accuracy": {"reading_pct": 0.1}},
        sample_period_s=1 / RATE,
        compress_level=level,
    )
    began = time.perf_counter()
    done = 0
    while done < count:
        n = min(BLOCK, count - done)
        phase = done % CYCLE
        # Gaussian noise of ~20 LSB (what makes real traces hard to compress), quantized and
        # paired as (+x, -x) so that it cancels and the analytic truth stays exact
        noise = np.repeat(np.round(rng.normal(0, NOISE_LSB, (n + 1) // 2)), 2)[:n] * LSB_W
        noise[1::2] *= -1
        values = base[phase : phase + n] + noise
        writer.append(values.astype(np.float32), start=0.0 if done == 0 else None)
        done += n
    writer.close()
    return count / (time.perf_counter() - began)


def integrate(directory: Path) -> dict:
    """Runs in a fresh process so ru_maxrss is the integration's own peak."""
    trace = PowerTrace.open(directory)
    count = trace.sample_count
    end = (count - 1) / RATE
    cycles = (count - CYCLE) // CYCLE  # whole cycles from t = 0.5 ms
    window = Window(0.5e-3 - 1 / RATE, 0.5e-3 - 1 / RATE + cycles * CYCLE / RATE, cycles)
    idle = Window(0.0, min(end, 0.01), label="idle")
    tracemalloc.start()
    began = time.perf_counter()
    result = compute_energy(trace, [window], EnergyOptions(tier="clock-mapping"), idle)
    seconds = time.perf_counter() - began
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # Trapezoid over a square wave sampled at its edges: each cycle contributes the mean of
    # the two levels, exactly (the noise cancels in pairs).
    truth = (IDLE_W + ACTIVE_W) / 2 * cycles * CYCLE / RATE
    energy = result["windows"][0]["energy_j"]
    return {
        "samples": count,
        "seconds": seconds,
        "rate": count / seconds,
        "tracemalloc_peak_mb": peak / 1e6,
        "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "energy_j": energy,
        "truth_j": truth,
        "relative_error": abs(energy - truth) / truth,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--samples", type=float, action="append", help="default 2e8")
    parser.add_argument("--level", type=int, default=COMPRESS_LEVEL, help="zlib level, 0 = none")
    parser.add_argument("--dir", type=Path, default=None, help="where to write (a temp dir)")
    parser.add_argument("--integrate-only", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.integrate_only:
        print(json.dumps(integrate(args.integrate_only)))
        return 0
    sizes = [int(n) for n in (args.samples or [2e8])]
    root = Path(tempfile.mkdtemp(prefix="edgebench-energy-", dir=args.dir))
    try:
        for count in sizes:
            directory = root / f"trace-{count}"
            print(
                f"N = {count:,} samples ({count / RATE:.0f} s at 1 MS/s), zlib level {args.level}"
            )
            rate = write(directory, count, args.level)
            on_disk = sum(p.stat().st_size for p in directory.iterdir())
            print(f"  write:      {rate / 1e6:8.1f} MS/s, {on_disk / 1e6:.0f} MB on disk "
                  f"({on_disk / (4 * count):.0%} of raw float32)")  # fmt: skip
            child = subprocess.run(
                [sys.executable, __file__, "--integrate-only", str(directory)],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            figures = json.loads(child.stdout)
            print(f"  integrate:  {figures['rate'] / 1e6:8.1f} MS/s on one core "
                  f"({figures['seconds']:.2f} s)")  # fmt: skip
            print(f"  memory:     tracemalloc peak {figures['tracemalloc_peak_mb']:.1f} MB, "
                  f"ru_maxrss {figures['maxrss_mb']:.0f} MB")  # fmt: skip
            print(f"  energy:     {figures['energy_j']:.6f} J vs truth {figures['truth_j']:.6f} J "
                  f"(relative error {figures['relative_error']:.1e})")  # fmt: skip
            shutil.rmtree(directory)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

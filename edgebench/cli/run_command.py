"""`edgebench run`: a sweep of runs on one device, a progress bar each, a table at the end."""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..devices.profiles import DEFAULT_DEVICE, open_device
from ..lab.emulator_process import ACTIVITY_ENV
from ..meters.profiles import open_meter
from ..runner.run import RunError, RunOptions, run_benchmark
from ..runner.tiny_run import plan_tiny_runs, tiny_max_samples
from ..suite.benchmarks import (
    DEFAULT_SCENARIOS,
    Benchmark,
    BenchmarkError,
    bundled_benchmarks,
    get_benchmark,
)
from ..suite.official import OFFICIAL_IDS, official_benchmark, official_benchmarks_in
from ..suite.user_model import user_benchmark
from .deploy_command import require_deployer
from .progress import RunProgress
from .render import print_results, stderr


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-d",
        "--device",
        default=DEFAULT_DEVICE,
        help="device profile name or YAML path (default: local)",
    )
    parser.add_argument(
        "-b",
        "--benchmark",
        action="append",
        help="benchmark name; repeat or comma-separate (default: whole suite)",
    )
    parser.add_argument(
        "-s",
        "--scenario",
        action="append",
        help="SingleStream, MultiStream, Server or Offline; repeatable",
    )
    parser.add_argument(
        "-m",
        "--mode",
        choices=("performance", "accuracy", "energy"),
        help="default: performance and accuracy in each scenario (energy: serial devices only)",
    )
    parser.add_argument("--model", type=Path, help="your own .tflite model (open division)")
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="official MLPerf Tiny data (with -b kws01|ic01|vww01|ad01), "
        "or labelled data for --model (.npz with x and y)",
    )
    parser.add_argument(
        "--settings",
        default="quick",
        choices=("quick", "submission"),
        help="settings profile (default: quick)",
    )
    parser.add_argument("--conf", type=Path, help="user.conf-style override file")
    parser.add_argument("--duration", type=float, help="minimum duration in seconds")
    parser.add_argument("--runtime", help="auto, ai_edge_litert or tflite_runtime")
    parser.add_argument("--delegate", help="xnnpack, none or reference")
    parser.add_argument("--threads", type=int, help="interpreter threads")
    parser.add_argument("--affinity", help="CPU list for the agent, e.g. 1 or 0,1")
    parser.add_argument(
        "--loop", choices=("auto", "loadgen", "native"), help="auto uses LoadGen when importable"
    )
    parser.add_argument("--trace", action="store_true", help="also write LoadGen's trace log")
    parser.add_argument(
        "--results",
        type=Path,
        default=Path("results"),
        help="results root directory (default: ./results)",
    )
    parser.add_argument(
        "--trust-new-host-key",
        action="store_true",
        help="SSH devices: accept and record the host key of a device seen for the first "
        "time (a changed key is still refused)",
    )
    parser.add_argument(
        "--meter",
        help="power meter profile (name or YAML path) recording each run into energy.json; "
        "default: the device profile's `meter:`; `none` for no meter",
    )
    parser.add_argument(
        "--max-samples",
        type=int,
        help="serial devices, accuracy mode: score only the first N evaluation samples "
        "(quick checks; the result is never valid)",
    )
    parser.add_argument(
        "--deploy",
        action="store_true",
        help="serial devices with `firmware:` in their profile: build the benchmark's model "
        "into firmware and flash it first (emulated ones always do)",
    )
    parser.add_argument("--json", action="store_true", help="print results as JSON")


def _benchmarks(args: argparse.Namespace) -> list[Benchmark]:
    if args.model is not None:
        return [user_benchmark(args.model, args.data_dir)]
    names = [name for value in args.benchmark or [] for name in value.split(",") if name]
    if args.data_dir is not None:
        names = names or list(official_benchmarks_in(args.data_dir))
        if not names:
            raise BenchmarkError(
                f"{args.data_dir} holds no MLPerf Tiny data (<id>/y_labels.csv for "
                f"{', '.join(OFFICIAL_IDS)}); check the path"
            )
        return [official_benchmark(name, args.data_dir) for name in names]
    if not names:
        return list(bundled_benchmarks().values())
    return [get_benchmark(name) for name in names]


def plan_runs(
    args: argparse.Namespace, benchmarks: list[Benchmark]
) -> list[tuple[Benchmark, str, str]]:
    """(benchmark, scenario, mode) triples in the order they will run."""
    runs = []
    for benchmark in benchmarks:
        scenarios = args.scenario or [s for s in DEFAULT_SCENARIOS if s in benchmark.scenarios]
        if args.mode:
            modes = [args.mode]
        elif benchmark.metric == "none":
            modes = ["performance"]
        else:
            modes = ["performance", "accuracy"]
        # Performance and accuracy in every scenario: the rules want an accuracy run beside
        # each performance run, so the default sweep is a complete set to submit.
        for mode in modes:
            runs.extend((benchmark, scenario, mode) for scenario in scenarios)
    return runs


def options_from(args: argparse.Namespace) -> RunOptions:
    affinity = [int(c) for c in args.affinity.split(",")] if args.affinity else None
    return RunOptions(
        settings_profile=args.settings,
        override_file=args.conf,
        min_duration_s=args.duration,
        runtime=args.runtime,
        delegate=args.delegate,
        threads=args.threads,
        affinity=affinity,
        loop=args.loop,
        trace=args.trace,
        results_root=args.results,
    )


def run_command(args: argparse.Namespace) -> int:
    device = open_device(args.device)
    if args.trust_new_host_key and hasattr(device, "trust_new_host_key"):
        device.trust_new_host_key = True
    if args.deploy:
        require_deployer(device).flash_on_deploy = True
    benchmarks = _benchmarks(args)
    if device.transport == "serial":
        runs = plan_tiny_runs(benchmarks, args.mode, args.scenario)
    else:
        runs = plan_runs(args, benchmarks)
    options = options_from(args)
    if args.max_samples is not None:
        options.extra_plan["max_samples"] = tiny_max_samples(device.transport, args.max_samples)
    meter_name = args.meter or device.profile.get("meter")
    if meter_name and meter_name != "none":
        options.meter = open_meter(meter_name)
    results: list[dict[str, Any]] = []
    emulated_meter = options.meter is not None and bool(options.meter.profile.get("emulator"))
    with (
        virtual_bench(emulated_meter),
        device,
        options.meter or contextlib.nullcontext(),
    ):
        system = device.describe()
        for number, (benchmark, scenario, mode) in enumerate(runs, 1):
            label = f"[{number}/{len(runs)}] {benchmark.name} {scenario} {mode}"
            try:
                with RunProgress(label, enabled=not args.json) as progress:
                    result = run_benchmark(
                        device, system, benchmark, scenario, mode, options, progress.handle
                    )
            except RunError as error:
                stderr.print(f"[red]{error}[/]", highlight=False)
                result = error.result
            results.append(result)
            if not args.json:
                stderr.print(f"{label}: {_verdict(result)}", highlight=False)
    print_results(results, args.json, options.results_root)
    return 0 if all(r.get("valid") for r in results) else 1


@contextlib.contextmanager
def virtual_bench(needed: bool) -> Iterator[None]:
    """Wire an emulated meter to the emulated device: both share an activity file (the
    device writes when it is busy and pulses its timestamp pin, the meter synthesizes power
    and marks from it). Tests pass their own file in $EDGEBENCH_ACTIVITY; a user's
    `--meter virtual-...` run gets a fresh one for the command."""
    if not needed or os.environ.get(ACTIVITY_ENV):
        yield
        return
    with tempfile.TemporaryDirectory(prefix="edgebench-bench-") as scratch:
        activity = Path(scratch) / "activity.jsonl"
        activity.touch()
        os.environ[ACTIVITY_ENV] = str(activity)
        try:
            yield
        finally:
            del os.environ[ACTIVITY_ENV]


def _verdict(result: dict[str, Any]) -> str:
    if result.get("status") != "complete":
        return str(result.get("status")).upper()
    return "VALID" if result.get("valid") else "INVALID: " + "; ".join(result.get("reasons", []))

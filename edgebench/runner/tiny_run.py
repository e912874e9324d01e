"""The MLPerf Tiny run method, for serial DUTs: performance, accuracy and energy modes.

Performance: a calibration sizes N so that each timed window lasts at least the profile's
window time (10 s in `submission`, MLPerf Tiny's rule; 1 s in `quick`, which is labelled not
submission-grade); then five windows, each on a different input, each `infer N W` with W
untimed warm-ups; the DUT's own `m-lap-us-` stamps give each window's throughput; the
median of the five is the score and latency is its inverse. Accuracy: every evaluation
sample loaded and run once (`infer 1 0`), its `m-results-` scored on the host. Energy: the
same windows as performance, but the DUT only pulses its timestamp pin; the meter's trace
(issue 5) turns the recorded windows into energy per inference.

There is no LoadGen scenario on a microcontroller: runs record the scenario as
`mlperf-tiny`, and `-s` is refused for serial devices.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import __version__
from ..agent.settings import SettingsError
from ..devices.base import DeviceError, RunRecord
from ..devices.serial import LOG_FILE, WINDOWS_FILE, SerialDevice
from ..metrics.accuracy import AccuracyResult, format_accuracy_txt
from ..protocol.tiny_models import model_for_benchmark
from ..suite.benchmarks import Benchmark, sha256_file
from . import tiny_score
from .energy_step import attach, meter_for_mode, run_metered
from .results import ResultWriter, new_run_id, result_head, utc_now
from .settings_profiles import settings_profile
from .summary import write_summary

if TYPE_CHECKING:
    from .run import RunOptions

EventHandler = Callable[[dict], None]
TINY_SCENARIO = "mlperf-tiny"
TINY_MODES = ("performance", "accuracy", "energy")
CALIBRATION_S = 0.2  # the calibration window grows until it lasts this long
MARGIN = 1.1  # windows are sized this much above the minimum, to stay above it
LENGTHEN_ATTEMPTS = 2  # re-measurements when a window still came out short
WARMUP_SHARE = 0.1  # warm-ups per window: 10 % of the timed part, at least 1, at most 10
MAX_WARMUPS = 10


def plan_tiny_runs(
    benchmarks: list[Benchmark], mode: str | None, scenarios: list[str] | None
) -> list[tuple[Benchmark, str, str]]:
    """(benchmark, scenario, mode) for a serial device: performance and accuracy by default."""
    if scenarios:
        raise SettingsError(
            "-s/--scenario does not apply to serial devices: they run the MLPerf Tiny method "
            "(single stream, timed by the DUT); drop -s"
        )
    if mode is not None and mode not in TINY_MODES:
        raise SettingsError(f"unknown mode {mode!r}; use one of {', '.join(TINY_MODES)}")
    runs = []
    for benchmark in benchmarks:
        modes = [mode] if mode else ["performance", "accuracy"]
        runs.extend((benchmark, TINY_SCENARIO, m) for m in modes)
    return runs


def tiny_max_samples(transport: str, count: int) -> int:
    """--max-samples, checked: serial accuracy runs only, at least one sample."""
    if transport != "serial":
        raise SettingsError(
            "--max-samples applies to serial devices only (Linux devices score the whole "
            "evaluation set, which takes seconds there); drop --max-samples"
        )
    if count < 1:
        raise SettingsError(f"--max-samples must be at least 1, got {count}")
    return count


def run_tiny(
    device: SerialDevice,
    benchmark: Benchmark,
    mode: str,
    options: RunOptions,
    on_event: EventHandler = lambda event: None,
) -> dict[str, Any]:
    """One MLPerf Tiny run into `options.results_root/<run id>`; returns result.json."""
    from .run import RunError  # run.py dispatches here; import late to avoid a cycle

    if mode not in TINY_MODES:
        raise SettingsError(f"unknown mode {mode!r}; use one of {', '.join(TINY_MODES)}")
    profile = settings_profile(options.settings_profile)
    tiny_model = model_for_benchmark(benchmark.name)
    benchmark.verify()
    run_id = new_run_id(device.name, benchmark.name, TINY_SCENARIO, mode)
    directory = Path(options.results_root) / run_id
    extra = dict(options.extra_plan or {})
    min_window_s = float(options.min_duration_s or tiny_score.MIN_WINDOW_S[profile.name])
    writer = ResultWriter(
        directory,
        {
            **result_head(run_id, benchmark, TINY_SCENARIO, mode, device, profile, __version__),
            "method": "MLPerf Tiny (DUT-timed windows over serial)",
            "expected_model_id": tiny_model.model_id,
        },
    )
    device.log.attach(directory / LOG_FILE)
    try:
        on_event({"event": "phase", "phase": "connecting to the DUT"})
        device.expect(tiny_model, "energy" if mode == "energy" else "performance")
        device.deploy(benchmark.model_path, benchmark.dataset_path)
        system = device.describe().to_dict()
        check = system.get("image_check") or {}
        writer.update(
            system=system,
            firmware_model_id=system.get("model_id"),
            deploy=system.get("deploy"),
            image_check=check or None,
            timing_note=system.get("timing_note"),
            notes=[check["warning"]] if check.get("warning") else [],
        )
        if mode == "accuracy":
            plan = _accuracy_plan(benchmark, device, extra)
        else:
            plan = _window_plan(benchmark, device, mode, min_window_s, extra, on_event)
        plan.update(mode=mode, settings_profile=profile.name, min_window_s=min_window_s)
        # Only energy-mode windows are cut by timestamp pulses a meter can record.
        meter = meter_for_mode(
            options.meter, mode, "energy", writer, "serial DUTs mark energy windows only in it"
        )
        record, metered = run_metered(
            meter, directory, profile.submission_grade, lambda out: device.run(plan, out, on_event)
        )
        if mode == "performance" and record.data["status"] == "complete":
            record = _lengthen_short_windows(device, plan, record, min_window_s, on_event)
        energy = metered.finish() if metered is not None else None
        _finish(writer, benchmark, mode, record.data, min_window_s, energy)
    except KeyboardInterrupt:
        _finish_partial(writer, benchmark, mode, min_window_s, "interrupted (Ctrl-C)", "incomplete")
        raise
    except (DeviceError, SettingsError, ValueError) as error:
        _finish_partial(writer, benchmark, mode, min_window_s, str(error), "failed")
        raise
    finally:
        device.log.detach()
        write_summary(directory, writer.data)
    if writer.data["status"] != "complete":
        raise RunError(
            f"{benchmark.name} {mode}: {'; '.join(writer.data.get('reasons', []))}", writer.data
        )
    return writer.data


# --- plans ----------------------------------------------------------------------------------


def _performance_samples(benchmark: Benchmark) -> list[int]:
    """Five different inputs: the first five files (for ad01, each file's first window)."""
    labels, groups = tiny_score.dataset_labels(benchmark)
    if groups is None:
        return list(range(min(tiny_score.WINDOW_COUNT, len(labels))))
    _, first = np.unique(groups, return_index=True)
    return sorted(int(i) for i in first)[: tiny_score.WINDOW_COUNT]


def _window_plan(
    benchmark: Benchmark,
    device: SerialDevice,
    mode: str,
    min_window_s: float,
    extra: dict[str, Any],
    on_event: EventHandler,
) -> dict[str, Any]:
    """Calibrate on the first input, then size N and W for every window."""
    samples = _performance_samples(benchmark)
    if not samples:
        raise DeviceError(f"{benchmark.name}: the evaluation set is empty; nothing to load")
    on_event({"event": "phase", "phase": "calibrating"})
    per_inference = _calibrate(device, samples[0], mode)
    iterations = int(extra.get("iterations") or math.ceil(min_window_s * MARGIN / per_inference))
    share = round(WARMUP_SHARE * iterations)
    warmups = int(extra.get("warmups", min(MAX_WARMUPS, max(1, share))))
    window_s = (iterations + warmups) * per_inference
    return {
        "calibration_s_per_inference": per_inference,
        "timeout_s": device.timeout + 3 * window_s,
        "windows": [{"sample": s, "iterations": iterations, "warmups": warmups} for s in samples],
    }


def _lengthen_short_windows(
    device: SerialDevice,
    plan: dict[str, Any],
    record: RunRecord,
    min_window_s: float,
    on_event: EventHandler,
) -> RunRecord:
    """Measure all windows again, longer, while any falls short of the minimum (twice at most).

    A DUT can be faster on some inputs than on the calibration one (or, virtual, on a host
    that was busy during calibration); MLPerf Tiny's runners reject a window under 10 s
    rather than fix it. Each short attempt is kept as windows_short_<k>.jsonl.
    """
    for attempt in range(1, LENGTHEN_ATTEMPTS + 1):
        directory = record.directory
        windows = read_windows(directory)
        seconds = [w["elapsed_us"] / 1e6 for w in windows if w.get("elapsed_us")]
        if record.data["status"] != "complete" or not seconds or min(seconds) >= min_window_s:
            break
        scale = MARGIN * min_window_s / min(seconds)
        (directory / WINDOWS_FILE).rename(directory / f"windows_short_{attempt}.jsonl")
        for window in plan["windows"]:
            window["iterations"] = math.ceil(window["iterations"] * scale)
        plan["timeout_s"] *= scale
        plan["lengthened"] = attempt
        on_event({"event": "phase", "phase": f"windows under {min_window_s:g} s: lengthening"})
        record = device.run(plan, directory, on_event)
    return record


def _calibrate(device: SerialDevice, sample: int, mode: str) -> float:
    """Seconds per inference, from windows grown until one lasts CALIBRATION_S.

    The DUT's laps measure it. Energy runs switch the firmware to performance timing for the
    calibration where it offers the `mode` switch; firmware built for energy timing prints
    no laps, so the host's wall time around `infer` is used instead (it only sizes N, and the
    UART time it includes is small against a window that long).
    """
    switched = mode == "energy" and device.set_timing("performance")
    device.load(sample)
    iterations = 1
    while True:
        timeout = device.timeout + 3 * CALIBRATION_S
        result = device.infer(iterations, 0, timeout)
        if result.elapsed_us is None:
            seconds = result.host_done_mono - result.host_sent_mono
        else:
            seconds = result.elapsed_us / 1e6
        if seconds >= CALIBRATION_S or iterations >= 1 << 20:
            break
        grow = CALIBRATION_S * 1.2 / max(seconds, 1e-6)
        iterations = min(iterations * 100, max(iterations + 1, math.ceil(iterations * grow)))
    if switched:
        device.set_timing("energy")
    return max(seconds, 1e-6) / iterations


def _accuracy_plan(benchmark: Benchmark, device: SerialDevice, extra: dict[str, Any]) -> dict:
    count = benchmark.dataset_count
    limit = extra.get("max_samples")
    chosen = count if limit is None else min(count, int(limit))
    return {
        "timeout_s": device.timeout,
        "windows": [{"sample": i, "iterations": 1, "warmups": 0} for i in range(chosen)],
        "max_samples": limit,
    }


# --- results --------------------------------------------------------------------------------


def read_windows(directory: Path) -> list[dict[str, Any]]:
    path = directory / WINDOWS_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if not p.name.endswith(".tmp"))


def _finish(
    writer: ResultWriter,
    benchmark: Benchmark,
    mode: str,
    record: dict[str, Any],
    min_window_s: float,
    energy: dict[str, Any] | None = None,
) -> None:
    directory = writer.directory
    windows = read_windows(directory)
    status = {"complete": "complete", "interrupted": "incomplete"}.get(record["status"], "failed")
    reasons = [] if status == "complete" else [str(record.get("error"))]
    if record["status"] == "reset":
        reasons = [f"{record.get('error')} ({len(windows)} window(s) measured before it)"]
    fields: dict[str, Any] = {"load": _load_figures(record)}
    accuracy_result = None
    if mode == "performance":
        metrics, more = tiny_score.performance(windows, min_window_s)
        reasons += more if windows else []
        fields["metrics"] = metrics
    elif mode == "energy":
        fields["energy_windows"] = tiny_score.energy_windows(windows)
        fields["metrics"] = tiny_score.energy_metrics(energy)
        if energy is None:
            reasons.append(
                "no meter attached (--meter, or `meter:` in the device profile): the windows "
                "ran, but their energy was not measured"
            )
    elif windows:
        try:
            accuracy_result = _score_accuracy(benchmark, windows, directory)
        except ValueError as error:  # e.g. an interrupted AD run that saw one class only
            reasons.append(f"accuracy not scored: {error}")
    if accuracy_result is not None:
        fields["metrics"] = {"accuracy": accuracy_result.to_dict()}
        if accuracy_result.met is False:
            reasons.append(
                f"{accuracy_result.metric} {accuracy_result.value:.4f} below target "
                f"{accuracy_result.target:.4f}"
            )
        if len(windows) < benchmark.dataset_count:
            limited = (record.get("plan") or {}).get("max_samples")
            reasons.append(
                f"scored {len(windows)} of {benchmark.dataset_count} samples"
                + (" (--max-samples)" if limited else "")
            )
    lines = tiny_score.results_lines(mode, fields.get("metrics", {}), accuracy_result)
    (directory / "results.txt").write_text("\n".join(lines) + "\n")
    writer.update(
        status=status,
        valid=status == "complete" and not reasons,
        reasons=reasons,
        windows_measured=len(windows),
        finished_utc=utc_now(),
        files=_files(directory),
        **fields,
    )
    if energy is not None:
        attach(writer, energy)


def _finish_partial(
    writer: ResultWriter,
    benchmark: Benchmark,
    mode: str,
    min_window_s: float,
    reason: str,
    status: str,
) -> None:
    """Ctrl-C or an error: whatever windows were measured stay in the result."""
    record = {"status": "interrupted" if status == "incomplete" else "failed", "error": reason}
    loaded = writer.directory / "record.json"
    if loaded.is_file():
        record = {**json.loads(loaded.read_text()), **record}
    _finish(writer, benchmark, mode, record, min_window_s)


def _load_figures(record: dict[str, Any]) -> dict[str, Any]:
    load = record.get("load") or {}
    wire, payload = load.get("wire_bytes") or 0, load.get("payload_bytes") or 0
    return {**load, "payload_efficiency": payload / wire if wire else None}


def _score_accuracy(
    benchmark: Benchmark, windows: list[dict[str, Any]], directory: Path
) -> AccuracyResult:
    labels, groups = tiny_score.dataset_labels(benchmark)
    result = tiny_score.accuracy(benchmark, windows, labels, groups)
    log = directory / LOG_FILE
    digest = sha256_file(log) if log.is_file() else ""
    (directory / "accuracy.txt").write_text(format_accuracy_txt(result, digest))
    return result

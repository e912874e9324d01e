"""End to end: `edgebench run --meter` on the local device with the PTDaemon emulator.

The agent runs with an injected clock offset (so the window must go through the measured
clock mapping) and writes when it is busy into the virtual bench's activity file; the
emulator turns that file into power, so the activity file is also the exact truth.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from edgebench.devices.base import RunRecord
from edgebench.lab.power_model import ActivityTimeline, PowerModel
from edgebench.meters.base import MeterError
from edgebench.meters.profiles import load_meter_profile, open_meter
from edgebench.metrics.clock_mapping import ClockMapping
from edgebench.metrics.energy import EnergyOptions, compute_energy
from edgebench.metrics.energy_windows import MeterClock, window_from_queries
from edgebench.metrics.power_trace import PowerTrace
from edgebench.runner.energy_step import EnergyStep, compute_run_energy

from .support import run_cli

IDLE_W, ACTIVE_W = 2.0, 5.0
OFFSET_NS = 3_700_000_000  # the agent's clock is 3.7 s ahead of the host's


def meter_profile(path: Path, activity: Path, **extra: object) -> Path:
    emulator = {"idle_w": IDLE_W, "active_w": ACTIVE_W, "noise_w": 0.01, "resolution_w": 0.001}
    emulator.update(extra.pop("emulator", {}))  # type: ignore[arg-type]
    profile = {
        "name": path.stem,
        "driver": "ptd",
        "interval_ms": 20,  # 50 S/s: PTD's 1 S/s needs minutes for 0.5 %
        "settle_s": 0,
        "timeout_s": 5,
        "clock_uncertainty_s": 0.002,  # the emulated PTDaemon shares this host's wall clock
        "idle_s": 0.5,
        "emulator": {**emulator, "activity": str(activity)},
        **extra,
    }
    path.write_text(yaml.safe_dump(profile))
    return path


@pytest.fixture(scope="module")
def metered_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One 10 s SingleStream run of `ad` with the PTD emulator."""
    root = tmp_path_factory.mktemp("energy-run")
    activity = root / "activity.jsonl"
    # Fixed ranges and no ranging run keep the test short; test_ranging_run_precedes_testing
    # covers the ranging pass.
    profile = meter_profile(
        root / "test-ptd.yaml", activity, ranging=False, volts_range=230, amps_range=1
    )
    done = run_cli(
        "run", "-b", "ad", "-s", "SingleStream", "-m", "performance", "--duration", "10.5",
        "--meter", str(profile), "--results", str(root / "results"), "--json",
        cwd=root,
        env={"EDGEBENCH_TEST_ACTIVITY_FILE": str(activity),
             "EDGEBENCH_TEST_CLOCK_OFFSET_NS": str(OFFSET_NS)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    (result,) = json.loads(done.stdout)
    return root / "results" / result["run_id"], activity


def truth_per_inference(directory: Path, activity: Path) -> tuple[float, float, float]:
    """(J per inference, true start s, true end s) from the activity file and the device's
    own query times shifted back by the injected offset."""
    timeline = ActivityTimeline(activity, PowerModel(IDLE_W, ACTIVE_W))
    timeline.refresh()
    _, issue, complete = RunRecord.load(directory).queries()
    start, end = int(issue.min()) - OFFSET_NS, int(complete.max()) - OFFSET_NS
    return timeline.energy(start, end) / len(complete), start / 1e9, end / 1e9


def test_energy_per_inference_within_half_a_percent(metered_run: tuple[Path, Path]) -> None:
    directory, activity = metered_run
    energy = json.loads((directory / "energy.json").read_text())
    result = json.loads((directory / "result.json").read_text())
    truth, true_start, _ = truth_per_inference(directory, activity)
    assert energy["valid"], energy["reasons"]
    assert energy["tier"] == "wall-clock"  # PTDaemon stamps samples with the wall clock
    assert energy["label"].startswith("lab measurement")
    (window,) = energy["windows"]
    assert window["duration_s"] >= 10.0
    assert energy["energy_per_inference_j"] == pytest.approx(truth, rel=5e-3)
    assert (
        abs(energy["energy_per_inference_j"] - truth)
        <= energy["energy_per_inference_uncertainty_j"]
    )
    # the window went through the measured mapping: the 3.7 s offset is gone
    clock = json.loads((directory / "clock.json").read_text())
    assert clock["tier"] == "round-trip"
    host_to_wall = energy["windows"][0]["start_s"] - true_start
    trace = PowerTrace.open(directory / "power")
    pair = trace.meta["host_clocks"]
    assert host_to_wall == pytest.approx(pair["utc"] - pair["monotonic"], abs=0.01)
    assert energy["idle_power_w"] == pytest.approx(IDLE_W, rel=0.01)
    assert result["energy"]["energy_per_inference_j"] == energy["energy_per_inference_j"]
    assert result["valid"]
    assert "no ranging run" in energy["notes"][0]
    assert (directory / "power.png").stat().st_size > 10_000


def test_short_windows_true_error_inside_uncertainty(metered_run: tuple[Path, Path]) -> None:
    """Sub-windows of the same run, 0.1 to 2 s long, through the same mapping and trace."""
    directory, activity = metered_run
    timeline = ActivityTimeline(activity, PowerModel(IDLE_W, ACTIVE_W))
    timeline.refresh()
    trace = PowerTrace.open(directory / "power")
    mapping = ClockMapping.from_dict(json.loads((directory / "clock.json").read_text()))
    clock = MeterClock.of(trace, 0.002)
    _, issue, complete = RunRecord.load(directory).queries()
    rng = np.random.default_rng(5)
    for _ in range(10):
        length_ns = rng.uniform(0.1e9, 2e9)
        first = rng.uniform(issue.min(), complete.max() - length_ns)
        chosen = (issue >= first) & (complete <= first + length_ns)
        window = window_from_queries(issue[chosen], complete[chosen], mapping, clock)
        row = compute_energy(trace, [window], EnergyOptions(tier=clock.tier))["windows"][0]
        a = int(issue[chosen].min()) - OFFSET_NS
        b = int(complete[chosen].max()) - OFFSET_NS
        assert abs(row["energy_j"] - timeline.energy(a, b)) <= row["uncertainty"]["total_j"]


def test_energy_command_recomputes_with_mlperf_method(metered_run: tuple[Path, Path]) -> None:
    directory, activity = metered_run
    done = run_cli("energy", str(directory), "--method", "mlperf-power", "--json", cwd=directory)
    assert done.returncode == 0, done.stderr
    energy = json.loads(done.stdout)
    truth, _, _ = truth_per_inference(directory, activity)
    assert energy["method"] == "mlperf-power"
    assert energy["energy_per_inference_j"] == pytest.approx(truth, rel=5e-3)
    assert json.loads((directory / "energy.json").read_text())["method"] == "mlperf-power"
    done = run_cli("energy", str(directory), "--window", "marks", cwd=directory)
    assert done.returncode == 1
    assert "mark windows need a serial energy-mode run" in " ".join(done.stderr.split())
    # a wrong option is reported, and the energy.json already there is left as it was
    assert json.loads((directory / "energy.json").read_text())["method"] == "mlperf-power"
    done = run_cli("energy", str(directory), "--method", "sum", cwd=directory)
    assert done.returncode == 1 and "is for energy-per-period traces" in done.stderr


def test_unreachable_meter_is_a_one_line_error(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    profile = tmp_path / "gone.yaml"
    profile.write_text(yaml.safe_dump({"driver": "ptd", "host": "127.0.0.1", "port": port}))
    done = run_cli("run", "-b", "ad", "-s", "SingleStream", "--meter", str(profile), cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith(f"edgebench: error: cannot reach PTDaemon at 127.0.0.1:{port}")
    assert not (tmp_path / "results").exists()


def test_meter_stopping_mid_run_keeps_trace_and_invalidates(tmp_path: Path) -> None:
    activity = tmp_path / "activity.jsonl"
    profile = meter_profile(
        tmp_path / "dying.yaml", activity, volts_range=230, amps_range=1, timeout_s=1,
        emulator={"stop_answering_after": 1.0},
    )  # fmt: skip
    meter = open_meter(str(profile))
    with meter:
        step = EnergyStep(meter, tmp_path, submission_grade=False)
        with step.testing():
            time.sleep(2.0)  # the workload, while the daemon goes silent
    assert step.failure is not None and "stopped answering" in step.failure
    trace = PowerTrace.open(tmp_path / "power")
    assert trace.status.startswith("stopped:")
    assert trace.sample_count > 10  # what came before the silence is kept
    energy = compute_run_energy(tmp_path, step.inputs, failure=step.failure)
    assert not energy["valid"]
    assert "stopped answering" in energy["reasons"][0]


def test_ranging_run_precedes_testing(tmp_path: Path) -> None:
    """PTDaemon's two passes: the ranging recording, then testing at the ranges it found."""
    activity = tmp_path / "activity.jsonl"
    meter = open_meter(str(meter_profile(tmp_path / "ranged.yaml", activity)))
    ran: list[Path] = []

    def workload(out: Path) -> None:
        ran.append(out)
        time.sleep(0.5)

    with meter:
        step = EnergyStep(meter, tmp_path, submission_grade=False)
        step.ranging(workload)
        with step.testing():
            workload(tmp_path)
        ranges = meter.describe().ranges
    assert ran == [tmp_path / "ranging", tmp_path]
    ranging = PowerTrace.open(tmp_path / "ranging" / "power")
    assert ranging.status == "complete" and ranging.sample_count > 10
    assert ranges != ["V Auto", "A Auto"]  # testing ran at fixed ranges from the ranging pass
    assert PowerTrace.open(tmp_path / "power").status == "complete"


def test_meter_profile_validation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    for text, problem in [
        ("driver: ptd\nport: '8888'\n", r"key 'port' must be int, got str '8888'"),
        ("driver: ptd\nprot: 8888\n", "unknown key 'prot' for meter driver 'ptd'"),
        ("driver: fluke\n", r"unknown meter driver 'fluke'; known: .*ptd"),
        ("port: 1\n", "key 'driver' is required"),
    ]:
        bad.write_text(text)
        with pytest.raises(MeterError, match=problem):
            load_meter_profile(str(bad))
    with pytest.raises(MeterError, match=r"unknown meter 'nope'; known: .*virtual-ptd"):
        load_meter_profile("nope")
    assert load_meter_profile("virtual-ptd")["idle_s"] == 1.0  # defaults filled in


def test_meters_command_lists_drivers_and_profiles(tmp_path: Path) -> None:
    done = run_cli("meters", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    listing = json.loads(done.stdout)
    assert {"ptd", "lpm01a"} <= {d["driver"] for d in listing["drivers"]}
    assert "virtual-ptd" in {p["name"] for p in listing["profiles"]}


def test_meters_probe_reads_the_emulated_lpm01a(tmp_path: Path) -> None:
    done = run_cli("meters", "probe", "virtual-lpm01a", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["trace_kind"] == "energy" and report["status"] == "complete"
    assert report["samples"] > 500  # ~1 s at 1 kS/s
    # idle current 0.5 mA at 1.8 V (the emulator's default activity: none, so idle)
    assert report["power_w"]["mean"] == pytest.approx(0.0009, rel=0.1)


def test_energy_command_on_a_run_without_meter_is_a_one_line_error(tmp_path: Path) -> None:
    done = run_cli("energy", str(tmp_path), cwd=tmp_path)
    assert done.returncode == 1
    one_line = " ".join(done.stderr.split())  # rich wraps long lines on a non-terminal
    assert one_line == (
        f"edgebench: error: {tmp_path} has no power trace (power/meta.json); "
        "was it run with --meter?"
    )


def test_serial_energy_run_with_virtual_mcu_and_lpm01a(tmp_path: Path) -> None:
    """`edgebench run -d virtual-mcu --meter virtual-lpm01a -m energy`: MLPerf Tiny's five
    windows cut at the timestamp marks the emulated LPM01A recorded. Short windows (0.5 s),
    so each window's true error must lie inside its stated uncertainty (the >= 10 s, 0.5 %
    claim is the PTDaemon run above)."""
    activity = tmp_path / "activity.jsonl"
    done = run_cli(
        "run", "-d", "virtual-mcu", "--meter", "virtual-lpm01a", "-b", "ad", "-m", "energy",
        "--duration", "0.5", "--json", cwd=tmp_path, env={"EDGEBENCH_ACTIVITY": str(activity)},
    )  # fmt: skip
    assert done.stdout.strip(), done.stderr[-2000:]
    (result,) = json.loads(done.stdout)
    directory = tmp_path / "results" / result["run_id"]
    energy = json.loads((directory / "energy.json").read_text())
    assert energy["tier"] == "meter-marks" and energy["method"] == "sum"
    assert energy["aggregate"] == "median of 5 windows"
    volts = load_meter_profile("virtual-lpm01a")["voltage"]
    emulator = load_meter_profile("virtual-lpm01a")["emulator"]
    timeline = ActivityTimeline(activity, PowerModel(emulator["idle_a"], emulator["active_a"]))
    timeline.refresh()
    falls = timeline.falling_edges[-10:]  # the true instants of the last 2 x 5 pin pulses
    per_inference = []
    for k, window in enumerate(energy["windows"]):
        truth = timeline.energy(falls[2 * k], falls[2 * k + 1]) * volts
        true_duration = (falls[2 * k + 1] - falls[2 * k]) / 1e9
        assert window["duration_s"] == pytest.approx(true_duration, abs=2e-3)
        assert abs(window["energy_j"] - truth) <= window["uncertainty"]["total_j"]
        # the emulator has no gain error (only noise, 4-digit quantization and the edges), so
        # the timing part of the budget alone must cover it
        assert abs(window["energy_j"] - truth) <= window["uncertainty"]["timing_j"]
        per_inference.append(truth / window["inferences"])
    median = float(np.median(per_inference))
    assert (
        abs(energy["energy_per_inference_j"] - median)
        <= energy["energy_per_inference_uncertainty_j"]
    )
    assert energy["idle_power_w"] == pytest.approx(emulator["idle_a"] * volts, rel=0.05)
    assert result["energy"]["tier"] == "meter-marks"


def test_virtual_meter_and_virtual_device_are_wired_without_setup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's command as a user types it (no $EDGEBENCH_ACTIVITY): the emulated device
    and the emulated meter share a fresh activity file, so the marks arrive."""
    monkeypatch.delenv("EDGEBENCH_ACTIVITY", raising=False)
    done = run_cli(
        "run", "-d", "virtual-mcu", "--meter", "virtual-lpm01a", "-b", "ad", "-m", "energy",
        "--duration", "0.5", "--json", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    (result,) = json.loads(done.stdout)
    assert result["valid"] and result["energy"]["tier"] == "meter-marks"
    assert result["energy"]["energy_per_inference_j"] > 0

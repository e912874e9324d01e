"""Temperature and CPU-frequency sampling during the timed loop (monitor.jsonl)."""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from edgebench.agent.clock import DRIFT_ENV, OFFSET_ENV, DeviceClock
from edgebench.agent.monitor import MONITOR_FILE, Monitor, cpufreq_sources, thermal_sources
from edgebench.devices.local import agent_environment

from .support import run_json


def read_samples(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_run_samples_about_once_a_second_inside_its_window(
    ad_model: Path, tmp_path: Path
) -> None:
    [result] = run_json(
        "--model", str(ad_model), "-s", "SingleStream", "--duration", "3", "--results", "res",
        cwd=tmp_path, env={OFFSET_ENV: "", DRIFT_ENV: ""},
    )  # fmt: skip
    assert result["status"] == "complete"
    run_dir = tmp_path / "res" / result["run_id"]
    assert MONITOR_FILE in result["files"]
    record = json.loads((run_dir / "record.json").read_text())
    samples = read_samples(run_dir / MONITOR_FILE)
    times = np.array([s["t_ns"] for s in samples])
    assert record["start_ns"] <= times[0] and times[-1] <= record["end_ns"]
    span_s = (record["end_ns"] - record["start_ns"]) / 1e9
    assert span_s >= 3
    # One at start, one per second, one at stop.
    assert abs(len(samples) - (span_s + 2)) <= 2, (len(samples), span_s)
    gaps = np.diff(times[:-1]) / 1e9  # the stop sample comes whenever the run ends
    assert np.all(gaps > 0.8) and np.all(gaps < 1.3), gaps
    has_zones = bool(glob.glob("/sys/class/thermal/thermal_zone*/temp"))
    has_cpufreq = bool(glob.glob("/sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_cur_freq"))
    for sample in samples:
        assert isinstance(sample["temperatures_c"], dict)
        assert isinstance(sample["cpu_frequencies_khz"], dict)
        # Where this machine has no sensors the samples say so with empty dicts.
        assert bool(sample["temperatures_c"]) <= has_zones
        assert bool(sample["cpu_frequencies_khz"]) <= has_cpufreq


def fake_sysfs(root: Path) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    (root / "zone0").mkdir(parents=True)
    (root / "zone0" / "temp").write_text("48250\n")
    (root / "cpu0").mkdir()
    (root / "cpu0" / "scaling_cur_freq").write_text("1800000\n")
    thermal = [("cpu-thermal", str(root / "zone0" / "temp")), ("gone", str(root / "nope"))]
    return thermal, [("cpu0", str(root / "cpu0" / "scaling_cur_freq"))]


def test_monitor_reads_sensors_in_the_device_clock_and_stops_cleanly(tmp_path: Path) -> None:
    thermal, cpufreq = fake_sysfs(tmp_path / "sys")
    clock = DeviceClock(10**12, 0.0)
    started = clock.now_ns()
    with Monitor(str(tmp_path), interval=0.05, clock=clock, thermal=thermal, cpufreq=cpufreq):
        time.sleep(0.33)
        (tmp_path / "sys" / "zone0" / "temp").write_text("71000\n")  # throttling shows
        time.sleep(0.1)
    stopped = clock.now_ns()
    samples = read_samples(tmp_path / MONITOR_FILE)
    assert 7 <= len(samples) <= 12
    assert all(started <= s["t_ns"] <= stopped for s in samples)
    assert samples[0]["temperatures_c"] == {"cpu-thermal": 48.25}  # the unreadable zone left out
    assert samples[-1]["temperatures_c"] == {"cpu-thermal": 71.0}
    assert samples[0]["cpu_frequencies_khz"] == {"cpu0": 1800000}


def test_no_sensors_gives_empty_dicts(tmp_path: Path) -> None:
    monitor = Monitor(str(tmp_path), interval=10, thermal=[], cpufreq=[]).start()
    monitor.stop()
    monitor.stop()  # idempotent
    samples = read_samples(tmp_path / MONITOR_FILE)
    assert len(samples) == 2
    assert samples[0]["temperatures_c"] == {} and samples[0]["cpu_frequencies_khz"] == {}


def test_source_discovery_matches_this_machine() -> None:
    zones = glob.glob("/sys/class/thermal/thermal_zone*")
    assert len(thermal_sources()) == len(zones)
    names = [name for name, _ in cpufreq_sources()]
    assert names == sorted(names, key=lambda n: int(n[3:]))


def test_interrupted_run_keeps_its_samples_and_stops_the_monitor(
    ad_model: Path, tmp_path: Path
) -> None:
    plan = {
        "scenario": "SingleStream",
        "mode": "performance",
        "model": str(ad_model),
        "loop": "native",
        "settings": {"min_duration": 60000},
    }
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    out = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "-m", "edgebench.agent", str(tmp_path / "plan.json"), str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=agent_environment(),
    )
    try:
        deadline = time.monotonic() + 60
        path = out / MONITOR_FILE
        while time.monotonic() < deadline:
            if path.is_file() and len(path.read_text().splitlines()) >= 3:
                break
            time.sleep(0.1)
        os.kill(process.pid, signal.SIGINT)
        assert process.wait(30) == 130
    finally:
        if process.poll() is None:
            process.kill()
    record = json.loads((out / "record.json").read_text())
    assert record["status"] == "interrupted"
    samples = read_samples(out / MONITOR_FILE)
    assert len(samples) >= 4  # the ones before the interrupt, and the last one at stop
    assert samples[-1]["t_ns"] <= record["end_ns"]

"""Serial DUTs end to end: the transport and the MLPerf Tiny run method against the virtual
MCU (a real subprocess on a real pty, running TFLM), and every fault the issue lists.

Simulated wire rates are high (4 Mbaud) and windows short, so the suite stays fast; the wire
pacing itself is exercised at 115200 where timing matters (the reset-on-open test).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import serial

from edgebench.agent.runtime import Engine
from edgebench.devices.base import DeviceError
from edgebench.devices.profiles import open_device
from edgebench.lab.virtual_mcu.launcher import VirtualMcu, benchmark_model
from edgebench.lab.virtual_mcu.model_port import ModelPort
from edgebench.meters.profiles import open_meter
from edgebench.protocol import tiny_replies as rp
from edgebench.protocol.tiny_models import model_for_benchmark
from edgebench.runner.run import RunError, RunOptions, run_benchmark
from edgebench.runner.tiny_rescore import rescore
from edgebench.runner.tiny_run import TINY_SCENARIO, read_windows
from edgebench.suite.benchmarks import Benchmark, get_benchmark
from edgebench.suite.official import official_benchmark

from .support import CLI, REPO, run_cli, run_json
from .test_official import ad_file, write_dataset
from .tflm_reference import tflm_outputs

BAUD = 4_000_000
MEDIAN_LINE = re.compile(r"Median throughput is ([0-9.]+) inf\./sec\.")  # MLPerf's checker
WINDOW_S = 0.2


def write_profile(directory: Path, port: str, **keys: object) -> Path:
    path = directory / "dut.yaml"
    lines = ["name: test-dut", "transport: serial", f"port: {port}"]
    lines += [f"{key}: {value}" for key, value in {"baud": BAUD, "timeout": 3, **keys}.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


@contextmanager
def virtual(benchmark: str, *faults: str, **options: object) -> Iterator[VirtualMcu]:
    model, model_id = benchmark_model(benchmark)
    options.setdefault("baud", BAUD)
    with VirtualMcu.start(model, model_id, extra_args=faults, **options) as mcu:
        yield mcu


def cli_error(*args: str, cwd: Path) -> str:
    """Run the CLI expecting failure; its error, which must be one line (wide terminal)."""
    done = run_cli("run", *args, cwd=cwd, env={"COLUMNS": "1000"})
    assert done.returncode == 1, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("edgebench: error:")]
    assert len(lines) == 1, done.stderr
    return lines[0]


def as_json(data: object) -> object:
    return json.loads(json.dumps(data))


def run(
    profile: Path, benchmark: str, mode: str, results: Path, events: list | None = None, **extra
) -> dict:
    device = open_device(str(profile))
    options = RunOptions(results_root=results, min_duration_s=WINDOW_S, extra_plan=extra)
    on_event = (events if events is not None else []).append
    with device:
        bench = get_benchmark(benchmark)
        return run_benchmark(
            device, device.describe(), bench, TINY_SCENARIO, mode, options, on_event
        )


# --- performance ------------------------------------------------------------------------------


# MCU time per inference for the virtual MCU: exact timing makes window sizing testable on a
# busy host (TFLM's real time varies with load; the laps follow this model instead).
INFER_US = {"kws": 5000, "ic": 15000, "vww": 15000, "ad": 300}


@pytest.mark.parametrize("name", list(INFER_US))
def test_performance_on_every_bundled_benchmark(tmp_path: Path, name: str) -> None:
    with virtual(name, infer_us=INFER_US[name]) as mcu:
        profile = write_profile(tmp_path, mcu.port)
        if name == "kws":  # once through the command people type
            (result,) = run_json(
                "--device", str(profile), "-b", name, "-m", "performance",
                "--duration", str(WINDOW_S), "--results", str(tmp_path / "r"), cwd=tmp_path,
            )  # fmt: skip
        else:
            result = as_json(run(profile, name, "performance", tmp_path / "r"))
    assert result["status"] == "complete" and result["valid"], result.get("reasons")
    assert result["scenario"] == TINY_SCENARIO and result["submission_grade"] is False
    assert result["firmware_model_id"] == model_for_benchmark(name).model_id
    assert result["system"]["dut_name"] == "edgebench-virtual-mcu"
    metrics = result["metrics"]
    windows = metrics["windows"]
    assert len(windows) == 5 and len({w["sample"] for w in windows}) == 5
    assert all(WINDOW_S <= w["elapsed_s"] < 1.5 * WINDOW_S for w in windows)
    assert all(w["warmups"] >= 1 for w in windows)
    assert metrics["median_throughput"] == pytest.approx(1e6 / INFER_US[name], rel=1e-3)
    assert metrics["latency_ms"] == pytest.approx(1000 / metrics["median_throughput"])
    directory = tmp_path / "r" / result["run_id"]
    text = (directory / "results.txt").read_text()
    median = float(MEDIAN_LINE.search(text).group(1))
    assert median == pytest.approx(metrics["median_throughput"], rel=1e-3)
    assert result["load"]["framing"] == "db64" and result["load"]["payload_efficiency"] > 0.7
    # the raw log alone gives the same figures
    assert as_json(rescore(directory, get_benchmark(name))) == metrics


def test_windows_shorter_than_the_minimum_are_measured_again_longer(tmp_path: Path) -> None:
    with virtual("ad", infer_us=1000) as mcu:  # 50 inferences of 1 ms: a quarter of a window
        result = run(
            write_profile(tmp_path, mcu.port), "ad", "performance", tmp_path, iterations=50
        )
    assert result["valid"], result["reasons"]
    directory = tmp_path / result["run_id"]
    short = [json.loads(line) for line in (directory / "windows_short_1.jsonl").open()]
    assert [w["iterations"] for w in short] == [50] * 5
    windows = result["metrics"]["windows"]
    assert all(200 <= w["iterations"] <= 230 and w["elapsed_s"] >= WINDOW_S for w in windows)
    assert as_json(rescore(directory, get_benchmark("ad"))) == as_json(result["metrics"])


# --- accuracy: the DUT's outputs are TFLM's ---------------------------------------------------


def tflm_reference(bench: Benchmark, samples: list[int]) -> list[tuple[float, ...]]:
    """What the firmware prints for each sample, computed here with TFLM on the host."""
    tiny = model_for_benchmark(bench.name)
    port = ModelPort.open(bench.model_path, tiny.model_id)
    with np.load(bench.dataset_path) as data:
        stored = data["wire"] if "wire" in data.files else data["x"]
    wires = [tiny.to_wire(stored[index]) for index in samples]
    tensors = np.stack([port.load_tensor(wire)[0] for wire in wires])  # without the batch
    outputs = tflm_outputs(bench.model_path, tensors)
    return [
        rp.classify(port.results(wire, output).encode()).value
        for wire, output in zip(wires, outputs, strict=True)
    ]


@pytest.mark.parametrize(("name", "count"), [("kws", 60), ("ic", 30), ("vww", 6), ("ad", 60)])
def test_accuracy_outputs_equal_tflm_and_agree_with_litert(
    tmp_path: Path, name: str, count: int
) -> None:
    profile = write_profile(tmp_path, "virtual")
    if name == "kws":  # once through the command people type
        (result,) = run_json(
            "--device", str(profile), "-b", name, "-m", "accuracy", "--max-samples", str(count),
            "--results", str(tmp_path), cwd=tmp_path,
        )  # fmt: skip
    else:
        events: list[dict] = []
        result = as_json(run(profile, name, "accuracy", tmp_path, events, max_samples=count))
        progress = [e for e in events if e["event"] == "progress"]  # what moves the CLI's bar
        assert [e["queries"] for e in progress] == list(range(1, count + 1))
        assert all(e["expected_queries"] == count for e in progress)
    assert result["status"] == "complete" and result["windows_measured"] == count
    assert result["valid"] is False  # a subset is scored, but never called valid
    assert re.fullmatch(rf"scored {count} of \d+ samples \(--max-samples\)", result["reasons"][-1])
    directory = tmp_path / result["run_id"]
    windows = read_windows(directory)
    device = [tuple(w["results"]) for w in windows]
    assert device == tflm_reference(get_benchmark(name), [w["sample"] for w in windows])
    assert as_json(rescore(directory, get_benchmark(name))) == result["metrics"]
    text = (directory / "results.txt").read_text()
    assert re.search(r"^(Top-1: [0-9.]+%|AUC: [0-9.]+)$", text, re.M)
    if name != "ad":  # LiteRT's builtin kernels pick the same class almost always
        bench = get_benchmark(name)
        engine = Engine(str(bench.model_path), delegate="none")
        with np.load(bench.dataset_path) as data:
            engine.set_samples([data["x"][:count]])
        litert = []
        for index in range(count):
            engine.infer(index)
            litert.append(int(np.argmax(np.frombuffer(engine.output_bytes(), np.int8))))
        agreement = np.mean([np.argmax(d) == c for d, c in zip(device, litert, strict=True)])
        assert agreement >= 0.9


def test_official_ad01_travels_as_fp32_windows(tmp_path: Path, ad_model: Path) -> None:
    """MLPerf Tiny firmware for ad01 takes raw FP32LE windows and quantizes them itself."""
    rng = np.random.default_rng(5)
    files = {f"f{i}.bin": ad_file(rng, 5 + i % 3)[0] for i in range(6)}
    folder = write_dataset(tmp_path, "ad01", files, {n: i % 2 for i, n in enumerate(files)}, 2)
    shutil.copyfile(ad_model, folder / ad_model.name)
    bench = official_benchmark("ad01", tmp_path, tmp_path / "cache")
    with VirtualMcu.start(bench.model_path, "ad01", baud=BAUD, infer_us=300) as mcu:
        profile = write_profile(tmp_path, mcu.port)
        device = open_device(str(profile))
        options = RunOptions(results_root=tmp_path / "r", min_duration_s=WINDOW_S)
        with device:
            system = device.describe()
            perf = run_benchmark(device, system, bench, "", "performance", options)
            acc = run_benchmark(device, system, bench, "", "accuracy", options)
    assert perf["valid"] and perf["firmware_model_id"] == "ad01"
    with np.load(bench.dataset_path) as data:
        first_windows = np.unique(data["group"], return_index=True)[1][:5].tolist()
    assert [w["sample"] for w in perf["metrics"]["windows"]] == first_windows
    windows = read_windows(tmp_path / "r" / acc["run_id"])
    assert len(windows) == bench.dataset_count and acc["load"]["payload_bytes"] % 2560 == 0
    assert [tuple(w["results"]) for w in windows] == tflm_reference(
        bench, list(range(len(windows)))
    )
    assert acc["metrics"]["accuracy"]["count"] == len(files)  # window scores averaged per file


# --- energy -----------------------------------------------------------------------------------


def test_energy_switches_timing_at_run_time_and_records_the_windows(tmp_path: Path) -> None:
    activity = tmp_path / "activity.jsonl"
    with virtual("ad", activity=activity, infer_us=1000) as mcu:
        profile = write_profile(tmp_path, mcu.port)
        result = run(profile, "ad", "energy", tmp_path)
    assert result["status"] == "complete" and result["valid"] is False
    assert result["system"]["timestamp_mode"] == "energy"
    assert "meter" in result["reasons"][0]
    windows = result["energy_windows"]
    # calibrated in performance timing (switched back for the windows): 1.1 x WINDOW_S / 1 ms
    assert len(windows) == 5 and all(220 <= w["iterations"] <= 221 for w in windows)
    assert all(w["host_sent_mono"] < w["host_start_mono"] < w["host_done_mono"] for w in windows)
    log = (tmp_path / result["run_id"] / "dut_log.txt").read_text()
    calibration, windows_part = log.split("# window 0 ")
    assert "> mode performance%" in calibration and re.search(r"< m-lap-us-\d", calibration)
    assert calibration.rindex("> mode energy%") > calibration.rindex("< m-lap-us-")
    assert not re.search(r"< m-lap-us-\d", windows_part)
    falls = [e for e in map(json.loads, activity.read_text().splitlines()) if e.get("pin") == 0]
    assert len(falls) >= 2 * len(windows)  # the DUT pulsed its pin around every window


def test_energy_with_a_virtual_meter_gives_median_energy_per_inference(tmp_path: Path) -> None:
    """The virtual bench: the MCU writes the activity file the LPM01A emulator measures, the
    meter records the DUT's timestamp pulses, the energy step cuts the windows there.
    5 mA at 1.8 V, active 1 ms per inference: 9 uJ per inference."""
    activity = tmp_path / "activity.jsonl"
    meter = open_meter(str(write_meter_profile(tmp_path, activity)))
    with virtual("ad", activity=activity, infer_us=1000) as mcu:
        device = open_device(str(write_profile(tmp_path, mcu.port)))
        options = RunOptions(results_root=tmp_path, min_duration_s=WINDOW_S, meter=meter)
        with device, meter:
            benchmark = get_benchmark("ad")
            result = run_benchmark(device, device.describe(), benchmark, "", "energy", options)
    assert result["status"] == "complete" and result["energy"]["tier"] == "meter-marks"
    median_uj = result["metrics"]["median_energy_uj"]
    assert median_uj == pytest.approx(9.0, rel=0.05)
    text = (tmp_path / result["run_id"] / "results.txt").read_text()
    assert re.search(r"^Median energy cost is [0-9.]+ uJ/inf\.$", text, re.M)


def write_meter_profile(directory: Path, activity: Path) -> Path:
    path = directory / "meter.yaml"
    path.write_text(
        "name: bench-lpm01a\ndriver: lpm01a\nvoltage: 1.8\nfreq: 1k\noutput: energy\n"
        f"acqmode: dyn\ntimeout_s: 3\nemulator:\n  activity: {activity}\n"
        "  idle_a: 0.0005\n  active_a: 0.005\n  noise_a: 0.00001\n"
    )
    return path


def test_energy_is_refused_on_linux_devices(tmp_path: Path) -> None:
    error = cli_error("-b", "ad", "-m", "energy", cwd=tmp_path)
    assert "only serial (MLPerf Tiny) devices" in error


def test_max_samples_is_refused_on_linux_devices(tmp_path: Path) -> None:
    error = cli_error("-b", "ad", "-m", "accuracy", "--max-samples", "5", cwd=tmp_path)
    assert "--max-samples applies to serial devices only" in error


def test_scenarios_are_refused_for_serial_devices(tmp_path: Path) -> None:
    error = cli_error("--device", "virtual-mcu", "-b", "kws", "-s", "Offline", cwd=tmp_path)
    assert "-s/--scenario does not apply" in error


# --- faults -----------------------------------------------------------------------------------


def test_garbage_bytes_and_truncated_lines_are_survived(tmp_path: Path) -> None:
    faults = ("--garbage-before", "name", "--garbage-before", "infer", "--truncate-line", "infer")
    with virtual("ad", *faults) as mcu:
        profile = write_profile(tmp_path, mcu.port)
        result = run(profile, "ad", "performance", tmp_path / "perf")
        assert result["valid"], result["reasons"]
        result = run(profile, "ad", "accuracy", tmp_path / "acc", max_samples=20)
    windows = read_windows(tmp_path / "acc" / result["run_id"])
    assert [tuple(w["results"]) for w in windows] == tflm_reference(
        get_benchmark("ad"), list(range(20))
    )
    assert all(any("results%" in note for note in w["notes"]) for w in windows)


def test_a_response_that_never_comes_names_the_command(tmp_path: Path) -> None:
    with virtual("ad", "--never-answer", "infer") as mcu:
        profile = write_profile(tmp_path, mcu.port, timeout=1)
        error = cli_error("-d", str(profile), "-b", "ad", "-m", "performance", cwd=tmp_path)
    assert re.search(r"no m-ready from the DUT within [0-9.]+ s after `infer 1 0%`", error)
    (result_file,) = (tmp_path / "results").glob("*/result.json")
    result = json.loads(result_file.read_text())
    assert result["status"] == "failed" and "infer 1 0%" in result["reasons"][0]


def test_a_reset_mid_run_invalidates_the_run_and_keeps_the_windows(tmp_path: Path) -> None:
    # 1 ms per inference: calibration takes three infers (1, 100, 240), window 2 is infer 5.
    with virtual("ad", "--reset-during-infer", "5", infer_us=1000) as mcu:
        profile = write_profile(tmp_path, mcu.port)
        with pytest.raises(RunError, match=r"rebooted during `infer \d+ 10%`"):
            run(profile, "ad", "performance", tmp_path)
        (directory,) = tmp_path.glob("*-performance")
        result = json.loads((directory / "result.json").read_text())
        assert result["status"] == "failed" and result["valid"] is False
        assert result["windows_measured"] == 1 and len(result["metrics"]["windows"]) == 1
        assert "1 window(s) measured before it" in result["reasons"][0]
        assert "m-init-done" in (directory / "dut_log.txt").read_text()
        assert run(profile, "ad", "performance", tmp_path / "again")["valid"]  # rebooted fine


def test_a_dut_that_vanishes_mid_run_is_a_one_line_error_and_keeps_the_windows(
    tmp_path: Path,
) -> None:
    with virtual("ad", infer_us=1000) as mcu:
        profile = write_profile(tmp_path, mcu.port)
        unplug = threading.Timer(1.5, mcu.stop)  # as a USB cable pulled during the windows
        unplug.start()
        try:
            with pytest.raises(RunError, match=r"went away .*check the cable"):
                run(profile, "ad", "performance", tmp_path)
        finally:
            unplug.cancel()
    (directory,) = tmp_path.glob("*-performance")
    result = json.loads((directory / "result.json").read_text())
    assert result["status"] == "failed" and result["valid"] is False
    assert (directory / "dut_log.txt").is_file()


def test_missing_port(tmp_path: Path) -> None:
    profile = write_profile(tmp_path, str(tmp_path / "ttyACM7"))
    error = cli_error("-d", str(profile), "-b", "ad", "-m", "performance", cwd=tmp_path)
    assert f"serial port {tmp_path / 'ttyACM7'} does not exist; plug the board in" in error


def test_busy_port(tmp_path: Path) -> None:
    with virtual("ad") as mcu:
        holder = serial.Serial(mcu.port, BAUD, exclusive=True)
        try:
            profile = write_profile(tmp_path, mcu.port)
            error = cli_error("-d", str(profile), "-b", "ad", cwd=tmp_path)
        finally:
            holder.close()
    assert "is busy: another program holds it" in error


def test_wrong_model_is_refused(tmp_path: Path) -> None:
    with virtual("ad", "--report-model", "kws01") as mcu:
        profile = write_profile(tmp_path, mcu.port)
        with pytest.raises(DeviceError, match=r"runs model 'kws01', but ad needs 'eb-ad'"):
            run(profile, "ad", "performance", tmp_path)


def test_baud_mismatch_is_named(tmp_path: Path) -> None:
    with virtual("ad", "--expect-baud", "9600", baud=9600) as mcu:
        profile = write_profile(tmp_path, mcu.port, baud=115200, timeout=1)
        error = cli_error("-d", str(profile), "-b", "ad", "-m", "performance", cwd=tmp_path)
    assert "at 115200 baud but none formed a line" in error and "set `baud:`" in error


def test_board_that_resets_when_the_port_opens(tmp_path: Path) -> None:
    with virtual("ad", baud=115200, boot="open") as mcu:
        device = open_device(str(write_profile(tmp_path, mcu.port, baud=115200)))
        device.log.attach(tmp_path / "dut_log.txt")
        with device:
            system = device.describe().to_dict()
    assert (system["dut_name"], system["model_id"]) == ("edgebench-virtual-mcu", "eb-ad")
    assert system["timestamp_mode"] == "performance"  # read from the banner
    log = (tmp_path / "dut_log.txt").read_text()
    assert log.index("m-init-done") < log.index("> name%")  # the banner was waited out


def test_ctrl_c_keeps_the_samples_measured_so_far(tmp_path: Path) -> None:
    with virtual("kws", baud=115200) as mcu:
        profile = write_profile(tmp_path, mcu.port, baud=115200)
        command = [*CLI, "run", "-d", str(profile), "-b", "kws", "-m", "accuracy"]
        process = subprocess.Popen(
            command,
            cwd=tmp_path,
            env=dict(os.environ, PYTHONPATH=str(REPO)),
            stderr=subprocess.PIPE,
        )
        windows = tmp_path / "results"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not list(windows.glob("*/windows.jsonl")):
            time.sleep(0.2)
        time.sleep(1.0)
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
    assert process.returncode == 130
    (directory,) = windows.glob("*-accuracy")
    result = json.loads((directory / "result.json").read_text())
    assert result["status"] == "incomplete" and "interrupted" in result["reasons"][0]
    assert 0 < result["windows_measured"] == len(read_windows(directory)) < 1200

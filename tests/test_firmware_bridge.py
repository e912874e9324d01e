"""The C bridge (firmware_bridges/core + ports/posix) spoken to over its pty with pyserial,
as a host talks to a board: MLPerf Tiny's replies line for line, results equal to TFLM's, and
malformed input refused with an error line instead of corrupting the device."""

from __future__ import annotations

import base64
import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from edgebench.firmware.ports import firmware_port
from edgebench.metrics.accuracy import reconstruction_scores
from edgebench.suite.benchmarks import bundled_benchmarks

from .tflm_reference import quantization, tflm_outputs

serial = pytest.importorskip("serial")
READY = b"m-ready\r\n"


class Bridge:
    def __init__(self, port: serial.Serial) -> None:
        self.port = port

    def read_until_ready(self) -> list[str]:
        data = self.port.read_until(READY)
        assert data.endswith(READY), f"no m-ready, got {data[-200:]!r}"
        return data.decode().split("\r\n")[:-1]

    def command(self, text: str | bytes) -> list[str]:
        raw = text if isinstance(text, bytes) else text.encode()
        self.port.write(raw + b"%")
        return self.read_until_ready()[:-1]

    def load(self, data: bytes, framing: str = "db64") -> None:
        assert self.command(f"db load {len(data)}") == [f"m-[Expecting {len(data)} bytes]"]
        step = 300 if framing == "db64" else 31
        for at in range(0, len(data), step):
            chunk = data[at : at + step]
            text = base64.b64encode(chunk).decode() if framing == "db64" else chunk.hex()
            replies = self.command(f"{framing if framing == 'db64' else 'db'} {text}")
        assert replies == ["m-load-done"]

    def infer(self, data: bytes, iterations: int = 1, warmups: int = 0) -> list[str]:
        self.load(data)
        return self.command(f"infer {iterations} {warmups}")


def posix_bridge(benchmark: str) -> Path:
    return firmware_port("posix").build(
        bundled_benchmarks()[benchmark].model_path, f"eb-{benchmark}"
    )


@contextmanager
def bridge(benchmark: str, *extra: str) -> Iterator[Bridge]:
    executable = posix_bridge(benchmark)
    process = subprocess.Popen([executable, *extra], stdout=subprocess.PIPE, text=True)
    try:
        port_line = process.stdout.readline().split()
        assert port_line[:1] == ["port"], port_line
        with serial.Serial(port_line[1], 115200, timeout=10) as port:
            device = Bridge(port)
            assert device.read_until_ready()[-3:] == [
                "m-timestamp-mode-" + ("energy" if "energy" in extra else "performance"),
                "m-init-done",
                "m-ready",
            ]
            yield device
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_identity_help_and_extensions():
    with bridge("kws") as device:
        assert device.command("name") == ["m-name-dut-[edgebench posix bridge]"]
        assert device.command("profile") == [
            "m-profile-[ULPMark for tinyML Firmware V0.0.1]",
            "m-model-[eb-kws]",
        ]
        assert {"m-ext-[db64:512]", "m-ext-[mode]", "m-ext-[eb-info]"} <= set(
            device.command("help")
        )
        info = device.command("eb-info")
        sha = bundled_benchmarks()["kws"].model_sha256
        assert info[:2] == ["m-eb-model-[eb-kws]", f"m-eb-model-sha256-[{sha}]"]


def test_classifier_results_equal_tflm_dequantized():
    bench = bundled_benchmarks()["kws"]
    inputs = np.load(bench.dataset_path)["x"][:12]
    _, (scale, zero) = quantization(bench.model_path)
    expected = tflm_outputs(bench.model_path, inputs)
    with bridge("kws") as device:
        for index, sample in enumerate(inputs):
            replies = device.infer(sample.tobytes())
            values = (expected[index].astype(np.float32) - np.float32(zero)) * np.float32(scale)
            assert replies[-1] == "m-results-[" + ",".join(f"{v:.3f}" for v in values) + "]"


def test_anomaly_score_equals_host_reconstruction_score_hex_and_db64():
    bench = bundled_benchmarks()["ad"]
    inputs = np.load(bench.dataset_path)["x"][:8]
    scores = reconstruction_scores(
        inputs, tflm_outputs(bench.model_path, inputs), *quantization(bench.model_path)
    )
    with bridge("ad") as device:
        for index, sample in enumerate(inputs):
            framing = "db" if index % 2 else "db64"
            device.load(sample.tobytes(), framing)
            replies = device.command("infer 1 0")
            assert replies[-1] == f"m-results-[{scores[index]:.6f}]"


def test_infer_sequence_and_device_timer():
    bench = bundled_benchmarks()["ad"]
    sample = np.load(bench.dataset_path)["x"][0].tobytes()
    with bridge("ad") as device:
        replies = device.infer(sample, iterations=50, warmups=3)
        assert replies[:3] == ["m-warmup-start-3", "m-warmup-done", "m-infer-start-50"]
        assert replies[5] == "m-infer-done" and replies[6].startswith("m-results-[")
        first, second = (int(line.removeprefix("m-lap-us-")) for line in replies[3:5])
        assert 0 < second - first < 10_000_000
        assert device.command("results") == [replies[6]]
        # the input survives the timed loop: 50 runs report what one run reports
        assert device.command("infer 1 0")[-1] == replies[6]


def test_energy_timing_pulses_the_pin_into_the_activity_file(tmp_path):
    activity = tmp_path / "activity.jsonl"
    bench = bundled_benchmarks()["ad"]
    sample = np.load(bench.dataset_path)["x"][0].tobytes()
    with bridge("ad", "--timing", "energy", "--activity", str(activity)) as device:
        replies = device.infer(sample, iterations=20)
        assert not any(line.startswith("m-lap-us-") for line in replies)
        assert device.command("mode performance") == ["m-timestamp-mode-performance"]
        assert device.command("timestamp")[0].startswith("m-lap-us-")
    pins = [json.loads(line) for line in activity.read_text().splitlines()]
    levels = [entry["pin"] for entry in pins]
    assert levels == [1, 0, 1, 0, 1]  # idle high at boot, then one pulse per timestamp
    times = [entry["t_ns"] for entry in pins]
    assert times == sorted(times) and times[2] - times[1] >= 100_000  # held >= 100 us


@pytest.mark.parametrize(
    ("command", "error"),
    [
        ("x" * 600, "e-[Command longer than 512 characters refused]"),
        ("bogus", "e-[Unknown command: bogus]"),
        ("db load 100000", "e-[db load: 100000 bytes do not fit; this model takes 640]"),
        ("db load -1", "e-[db load: -1 bytes do not fit; this model takes 640]"),
        ("db 00ff", "e-[db: no db load in progress]"),
        ("infer 1 0", "e-[infer: load a whole input first (db load then db data)]"),
        ("infer 0", "e-[infer: expected infer N [W] with N >= 1 and W >= 0]"),
        ("infer 99999999999", "e-[infer: expected infer N [W] with N >= 1 and W >= 0]"),
        ("mode turbo", "e-[Unknown timestamp mode: turbo]"),
        (b"na\x01me", "e-[Malformed command: not printable ASCII]"),
    ],
)
def test_malformed_commands_are_refused_and_the_device_keeps_serving(command, error):
    with bridge("ad") as device:
        assert device.command(command) == [error]
        assert device.command("name") == ["m-name-dut-[edgebench posix bridge]"]


def test_bad_payloads_are_refused_without_corrupting_the_buffer():
    bench = bundled_benchmarks()["ad"]
    sample = np.load(bench.dataset_path)["x"][0].tobytes()
    with bridge("ad") as device:
        assert device.command("db load 4") == ["m-[Expecting 4 bytes]"]
        assert device.command("db 0g11") == ["e-[db: invalid hex near 0g11]"]
        assert device.command("db 001") == ["e-[db: invalid hex near 1]"]
        assert device.command("db64 AA=A") == ["e-[db64: invalid base64 near AA=A]"]
        assert device.command("db64 AAA") == [
            "e-[db64: base64 length must be a non-zero multiple of 4]"
        ]
        assert device.command("db 01020304ffff") == ["m-load-done"]  # extra bytes ignored
        assert device.command("db print") == ["m-buffer-01-02-03-04"]
        assert device.command("db print 8 636") == ["e-[db print: range outside the buffer]"]
        baseline = device.infer(sample)[-1]
        assert device.command("db load 640") == ["m-[Expecting 640 bytes]"]
        assert device.command("infer 1 0")[0].startswith("e-[infer: load a whole input")
        assert device.infer(sample)[-1] == baseline


def test_line_endings_between_commands_are_ignored():
    with bridge("ad") as device:
        device.port.write(b"\r\nname%")
        assert device.read_until_ready() == ["m-name-dut-[edgebench posix bridge]", "m-ready"]


def test_reopening_the_port_prints_the_banner_again():
    executable = posix_bridge("ad")
    process = subprocess.Popen([executable], stdout=subprocess.PIPE, text=True)
    try:
        path = process.stdout.readline().split()[1]
        for _ in range(2):
            with serial.Serial(path, 115200, timeout=10) as port:
                assert port.read_until(READY).endswith(b"m-init-done\r\nm-ready\r\n")
            time.sleep(0.05)
    finally:
        process.terminate()
        process.wait(timeout=10)

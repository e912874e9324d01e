"""The virtual MCU, talked to over its pty with pyserial and the raw MLPerf Tiny protocol.

These tests are the device side's contract: what a board flashed with MLPerf Tiny reference
firmware would answer, byte for byte where a host relies on it, and the faults the host-side
tests provoke. Results are checked against TFLM run here in-process on the same sample.
"""

from __future__ import annotations

import base64
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import serial
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgebench.devices.profiles import load_profile
from edgebench.lab.activity import ActivityError, ActivityTail, ActivityWriter, read_activity
from edgebench.lab.virtual_mcu import VirtualMcu, VirtualMcuError
from edgebench.lab.virtual_mcu.commands import CMD_SIZE, EXT_CMD_SIZE, LineAssembler, atoi
from edgebench.suite.benchmarks import get_benchmark
from edgebench.suite.official import quantize_int8

from .support import CLI, REPO, shared_model

tflm = pytest.importorskip("tflite_micro", reason="the virtual MCU needs tflite-micro")

FAST = 921600  # byte time ~11 us: pacing never dominates a test
BANNER_TIMEOUT = 20.0


class Host:
    """The host end, as a terminal program would drive it: bytes out, CRLF lines back."""

    def __init__(self, port: str, baud: int = FAST) -> None:
        self.serial = serial.Serial(port, baud, timeout=0.2)
        self.pending = b""  # bytes read past the last complete reply

    def send(self, text: str | bytes) -> None:
        self.serial.write(text.encode("latin-1") if isinstance(text, str) else text)

    def lines_until_ready(self, timeout: float = 20.0) -> list[bytes]:
        """Raw lines (CRLF stripped) up to and including m-ready; TimeoutError otherwise."""
        lines: list[bytes] = []
        deadline = time.monotonic() + timeout
        while True:
            while b"\r\n" in self.pending:
                line, self.pending = self.pending.split(b"\r\n", 1)
                lines.append(line)
                if line.endswith(b"m-ready"):
                    return lines
            if time.monotonic() > deadline:
                raise TimeoutError(f"no m-ready in {timeout} s: {lines!r} + {self.pending!r}")
            self.pending += self.serial.read(self.serial.in_waiting or 1)

    def command(self, text: str, timeout: float = 20.0) -> list[str]:
        self.send(text + "%")
        return [line.decode("latin-1") for line in self.lines_until_ready(timeout)]

    def load_hex(self, data: bytes, chunk: int = 38) -> None:
        assert self.command(f"db load {len(data)}") == [
            f"m-[Expecting {len(data)} bytes]",
            "m-ready",
        ]
        for at in range(0, len(data), chunk):
            reply = self.command("db " + data[at : at + chunk].hex())
        assert reply == ["m-load-done", "m-ready"]

    def close(self) -> None:
        self.serial.close()


@contextmanager
def virtual_mcu(model: Path, model_id: str, **options) -> Iterator[tuple[VirtualMcu, Host]]:
    """A device reset on open (so the banner is seen) and a host connected to it."""
    options.setdefault("baud", FAST)
    options.setdefault("boot", "open")
    options["extra_args"] = ["--boot-delay", "0.05", *options.get("extra_args", ())]
    baud = options["baud"]
    with VirtualMcu.start(model, model_id, **options) as mcu:
        host = Host(mcu.port, baud)
        try:
            banner = host.lines_until_ready(BANNER_TIMEOUT)
            assert banner[-1] == b"m-ready", mcu.stderr_text()
            yield mcu, host
        finally:
            host.close()


def bundled(name: str) -> tuple[Path, np.ndarray]:
    benchmark = get_benchmark(name)
    with np.load(benchmark.dataset_path) as data:
        return benchmark.model_path, data["x"][:4]


def tflm_outputs(model: Path, tensors: list[np.ndarray]) -> list[np.ndarray]:
    """The reference: TFLM run here, on the tensor the firmware should have built."""
    interpreter = tflm.runtime.Interpreter.from_file(str(model))
    outputs = []
    for tensor in tensors:
        interpreter.set_input(tensor.reshape(interpreter.get_input_details(0)["shape"]), 0)
        interpreter.invoke()
        outputs.append(np.array(interpreter.get_output(0)).reshape(-1))
    return outputs


def quantization(model: Path, role: str) -> tuple[float, int]:
    """(scale, zero point) of the model's input or output tensor, as TFLM reads them."""
    interpreter = tflm.runtime.Interpreter.from_file(str(model))
    details = getattr(interpreter, f"get_{role}_details")(0)["quantization_parameters"]
    return float(details["scales"][0]), int(details["zero_points"][0])


def result_values(line: str) -> list[float]:
    match = re.fullmatch(r"m-results-\[(.*)\]", line)
    assert match, line
    return [float(v) for v in match.group(1).split(",")]


def infer_lines(host: Host, n: int, w: int) -> dict[str, list[str]]:
    lines = host.command(f"infer {n} {w}")
    grouped: dict[str, list[str]] = {}
    for line in lines:
        grouped.setdefault(re.sub(r"-?[\[\d].*$", "", line), []).append(line)
    return grouped


def laps(lines: list[str]) -> list[int]:
    return [int(line.removeprefix("m-lap-us-")) for line in lines if line.startswith("m-lap-us-")]


# --- the activity file ----------------------------------------------------------------------


def test_activity_file_round_trip_and_tail(tmp_path: Path) -> None:
    path = tmp_path / "activity.jsonl"
    tail = ActivityTail(path)
    assert tail.poll() == []  # no file yet: nothing happened yet
    with ActivityWriter(path) as writer:
        writer.state("active", t_ns=10)
        writer.pin(0, t_ns=20)
        writer.pin(1)
        writer.state("idle")
    events = tail.poll()
    assert events[:2] == [{"t_ns": 10, "state": "active"}, {"t_ns": 20, "pin": 0}]
    assert events[2]["pin"] == 1 and events[3]["state"] == "idle"
    assert events[3]["t_ns"] >= events[2]["t_ns"] > time.monotonic_ns() - 60 * 10**9
    with open(path, "a") as handle:
        handle.write('{"t_ns": 30, "sta')  # a line being written is left for later
    assert tail.poll() == []
    with open(path, "a") as handle:
        handle.write('te": "active"}\n')
    assert tail.poll() == [{"t_ns": 30, "state": "active"}]
    assert len(read_activity(path)) == 5


def test_activity_bad_input_is_named(tmp_path: Path) -> None:
    with ActivityWriter(tmp_path / "a.jsonl") as writer:
        with pytest.raises(ActivityError, match="unknown activity state 'busy'"):
            writer.state("busy")
        with pytest.raises(ActivityError, match="must be 0 or 1"):
            writer.pin(2)
    (tmp_path / "b.jsonl").write_text('{"t_ns": 1, "state": "idle", "pin": 0}\n')
    with pytest.raises(ActivityError, match=r"b.jsonl:1: each line has exactly one"):
        read_activity(tmp_path / "b.jsonl")
    (tmp_path / "c.jsonl").write_text("not json\n")
    with pytest.raises(ActivityError, match="not a JSON line"):
        read_activity(tmp_path / "c.jsonl")


# --- identity, protocol and results ----------------------------------------------------------


def test_banner_identity_and_help() -> None:
    model, _ = bundled("kws")
    with VirtualMcu.start(model, "eb-kws", baud=FAST, boot="open", vendor="acme") as mcu:
        host = Host(mcu.port)
        banner = [line.decode() for line in host.lines_until_ready(BANNER_TIMEOUT)]
        assert banner[0] == "m-timestamp-mode-performance"
        assert re.fullmatch(r"m-lap-us-\d+", banner[1])
        assert banner[2:] == ["m-init-done", "m-ready"]
        assert host.command("name") == ["m-name-dut-[acme]", "m-ready"]
        assert host.command("profile") == [
            "m-profile-[ULPMark for tinyML Firmware V0.0.1]",
            "m-model-[eb-kws]",
            "m-ready",
        ]
        help_lines = host.command("help")
        assert help_lines[0] == "ULPMark for tinyML Firmware V0.0.1"
        assert [x for x in help_lines if x.startswith("m-ext-")] == [
            f"m-ext-[db64 {EXT_CMD_SIZE}]",
            "m-ext-[mode]",
        ]
        first, second = (laps(host.command("timestamp"))[0] for _ in range(2))
        assert 0 < first < second  # microseconds since boot, counting up
        host.close()


def test_board_booted_before_the_host_opened_shows_no_banner() -> None:
    """Like a Nucleo powered long before: opening the port flushes the old banner."""
    model, _ = bundled("kws")
    with VirtualMcu.start(model, "eb-kws", baud=FAST, boot="start") as mcu:
        host = Host(mcu.port)
        time.sleep(0.3)
        assert host.serial.read(4096) == b""
        assert host.command("name") == ["m-name-dut-[edgebench-virtual-mcu]", "m-ready"]
        host.close()


def test_results_equal_tflm_in_process() -> None:
    """The firmware's th_load_tensor + TFLM + th_results, bit for bit against TFLM here."""
    model, samples = bundled("kws")
    expected = tflm_outputs(model, list(samples))
    with virtual_mcu(model, "eb-kws") as (_, host):
        for sample, reference in zip(samples, expected, strict=True):
            host.load_hex(sample.tobytes())
            reply = infer_lines(host, 1, 0)
            assert reply["m-warmup-start"] == ["m-warmup-start-0"]
            assert reply["m-infer-start"] == ["m-infer-start-1"] and reply["m-infer-done"]
            (line,) = reply["m-results"]
            values = np.array(result_values(line))
            assert re.fullmatch(r"m-results-\[(\d\.\d{3},){11}\d\.\d{3}\]", line)
            # 3 decimals still tell every int8 output apart at the 1/256 output scale
            assert np.array_equal(np.round(values * 256) - 128, reference)
            assert host.command("results") == [line, "m-ready"]


def test_official_uint8_image_format() -> None:
    """ic01 firmware is sent uint8 pixels and subtracts 128 itself."""
    model = shared_model("pretrainedResnet_quant.tflite")
    pixels = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    (reference,) = tflm_outputs(model, [(pixels.astype(np.int16) - 128).astype(np.int8)])
    with virtual_mcu(model, "ic01") as (_, host):
        host.load_hex(pixels.tobytes())
        (line,) = infer_lines(host, 1, 0)["m-results"]
        scale, zero = quantization(model, "output")
        dequantized = (reference.astype(np.float32) - zero) * np.float32(scale)
        assert line == "m-results-[" + ",".join(f"{v:.3f}" for v in dequantized) + "]"


def test_official_ad01_float_windows_scored_on_device() -> None:
    """ad01 firmware gets FP32LE windows, quantizes them and prints one MSE score."""
    model = shared_model("ad01_int8.tflite")
    scale, zero = quantization(model, "input")
    window = np.random.default_rng(2).normal(-20.0, 8.0, 640).astype("<f4")
    (output,) = tflm_outputs(model, [quantize_int8(window, scale, zero)])
    out_scale, out_zero = quantization(model, "output")
    reconstructed = (output.astype(np.int32) - out_zero).astype(np.float32) * np.float32(out_scale)
    score = float(np.mean((reconstructed.astype(np.float64) - window) ** 2))
    with virtual_mcu(model, "ad01") as (_, host):
        host.load_hex(window.tobytes())
        (line,) = infer_lines(host, 1, 0)["m-results"]
        (value,) = result_values(line)
        assert re.fullmatch(r"m-results-\[\d+\.\d{3}\]", line)
        assert value == pytest.approx(score, abs=0.0015)


def test_db64_extension_loads_the_same_sample() -> None:
    model, samples = bundled("ad")
    wire = samples[0].tobytes()
    with virtual_mcu(model, "eb-ad") as (_, host):
        host.load_hex(wire)
        (by_hex,) = infer_lines(host, 1, 0)["m-results"]
        assert re.fullmatch(r"m-results-\[\d+\.\d{6}\]", by_hex)  # eb-ad: one 6-digit score
        assert host.command(f"db load {len(wire)}")[0] == f"m-[Expecting {len(wire)} bytes]"
        first = base64.b64encode(wire[:500]).decode()
        assert len("db64 " + first) > CMD_SIZE  # longer than any legacy command
        assert host.command("db64 " + first) == ["m-ready"]
        rest = host.command("db64 " + base64.b64encode(wire[500:]).decode())
        assert rest == ["m-load-done", "m-ready"]
        assert infer_lines(host, 1, 0)["m-results"] == [by_hex]
        bad = host.command("db64 @@@@")
        assert bad[0].startswith("e-[Invalid base64") and bad[-1] == "m-ready"


def test_errors_are_answered_and_followed_by_ready() -> None:
    model, samples = bundled("kws")
    with virtual_mcu(model, "eb-kws") as (_, host):
        for command, error in (
            ("frobnicate now", "e-[Unknown command: frobnicate]"),
            ("db", "e-[Command 'db' requires a subcommand]"),
            ("db load", "e-[Command 'db load' requires the # of bytes]"),
            ("db load 0", "e-[Command 'db load' must be >0 bytes]"),
            ("db load 491", "e-[Supplied buffer size 491 exceeds maximum of 490]"),
            ("db 0a1", "e-[Insufficent number of hex digits]"),
            ("db 0a", "e-[No db load pending: send db load N first]"),
            ("infer 0", "e-[Inference iterations must be >0]"),
            ("infer 1 -1", "e-[Inference warmup must be >=0]"),
            ("results", "e-[No results yet: run infer first]"),
            ("mode turbo", "e-[Unknown timestamp mode: turbo]"),
            ("bad\x01\x7fname", "e-[Unknown command: bad??name]"),
        ):
            assert host.command(command) == [error, "m-ready"], command
        assert host.command("db load 4") == ["m-[Expecting 4 bytes]", "m-ready"]
        assert host.command("db 01zz") == ["e-[Invalid hex digit 'zz']", "m-ready"]
        partial = host.command("infer 1 0")
        assert partial[0].startswith("e-[eb-kws: 1 bytes loaded, the model input needs 490")
        assert host.command("db print") == ["m-buffer-01-00-00-00", "m-ready"]
        host.load_hex(samples[0].tobytes())
        assert host.command("infer")[:2] == ["m-warmup-start-10", "m-warmup-done"]  # N=1 W=10
        assert host.command("db print 3 8")[0] == "m-buffer-" + "-".join(
            f"{b:02x}" for b in samples[0].tobytes()[8:11]
        )


def test_commands_truncate_at_80_characters() -> None:
    """Reference firmware keeps 80 characters; the rest of a long command is dropped."""
    model, samples = bundled("kws")
    with virtual_mcu(model, "eb-kws") as (_, host):
        padded = "name" + " " * (CMD_SIZE - 4) + "tail"
        assert host.command(padded) == ["m-name-dut-[edgebench-virtual-mcu]", "m-ready"]
        assert host.command("x" * 200) == [f"e-[Unknown command: {'x' * CMD_SIZE}]", "m-ready"]
        host.command("db load 490")
        # 40 bytes of hex after "db " is 83 characters: cut to 77 digits, an odd count
        assert host.command("db " + samples[0].tobytes()[:40].hex()) == [
            "e-[Insufficent number of hex digits]",
            "m-ready",
        ]
        assert host.command("name\x00garbage") == ["m-name-dut-[edgebench-virtual-mcu]", "m-ready"]


# --- timing ---------------------------------------------------------------------------------


def test_lap_times_follow_infer_us_exactly() -> None:
    model, samples = bundled("ad")
    with virtual_mcu(model, "eb-ad", infer_us=250, drift_ppm=300) as (_, host):
        host.load_hex(samples[0].tobytes())
        for count in (40, 400):
            started = time.monotonic()
            reply = infer_lines(host, count, 3)
            elapsed = time.monotonic() - started
            first, second = laps(reply["m-lap-us"])
            assert second - first == count * 250  # the MCU's own clock, drift and all
            assert elapsed >= count * 250e-6 / 1.0003 * 0.99  # never faster than physics


def test_lap_times_measure_tflm_when_not_fixed() -> None:
    model, samples = bundled("ad")
    with virtual_mcu(model, "eb-ad") as (_, host):
        host.load_hex(samples[0].tobytes())
        started = time.monotonic()
        first, second = laps(infer_lines(host, 300, 0)["m-lap-us"])
        elapsed_us = (time.monotonic() - started) * 1e6
        assert 300 * 5 < second - first < elapsed_us  # real TFLM work, inside the host's view


def test_byte_time_pacing_at_9600_baud() -> None:
    """A pty has no baud rate; the device charges 10 bit times per byte both ways."""
    model, samples = bundled("kws")
    wire = samples[0].tobytes()
    with virtual_mcu(model, "eb-kws", baud=9600) as (_, host):
        commands = [f"db load {len(wire)}%"] + [
            f"db {wire[at : at + 38].hex()}%" for at in range(0, len(wire), 38)
        ]
        replies = len("m-[Expecting 490 bytes]\r\n") + len("m-load-done\r\n")
        replies += len("m-ready\r\n") * len(commands)
        wire_bytes = sum(len(c) for c in commands) + replies
        started = time.monotonic()
        host.load_hex(wire)
        elapsed = time.monotonic() - started
        expected = wire_bytes * 10 / 9600  # about 1.3 s
        assert expected * 0.97 <= elapsed < expected * 2 + 2.0


# --- energy timing and the activity file ----------------------------------------------------


def test_energy_mode_pulses_the_pin_and_brackets_the_loop(tmp_path: Path) -> None:
    model, samples = bundled("ad")
    activity = tmp_path / "activity.jsonl"
    options = {"timing": "energy", "infer_us": 500, "activity": activity, "drift_ppm": -200}
    with virtual_mcu(model, "eb-ad", **options) as (mcu, host):
        tail = ActivityTail(activity)
        boot = tail.poll()
        # boot: idle, then th_timestamp_initialize's pulse leaves the pin high
        assert [e.get("state", e.get("pin")) for e in boot] == ["idle", 0, 1]
        assert host.command("timestamp") == ["m-ready"]  # energy mode prints no lap time
        low, high = tail.poll()
        assert (low["pin"], high["pin"]) == (0, 1) and high["t_ns"] > low["t_ns"]
        host.load_hex(samples[0].tobytes())
        reply = infer_lines(host, 200, 2)
        assert "m-lap-us" not in reply and reply["m-infer-done"] and reply["m-results"]
        events = tail.poll()
        kinds = [e.get("state", e.get("pin")) for e in events]
        assert kinds == ["active", "idle", 0, 1, "active", "idle", 0, 1]
        times = [e["t_ns"] for e in events]
        assert times == sorted(times)
        warm_ns = times[1] - times[0]
        loop_ns = times[5] - times[4]
        # MCU-time 500 us per inference on a timer 200 ppm slow: physical time is longer
        assert loop_ns == round(200 * 500 * 1000 / (1 - 200e-6))
        assert warm_ns == round(2 * 500 * 1000 / (1 - 200e-6))
        assert times[6] == times[5]  # the closing pulse falls as the loop ends
        assert host.command("mode") == ["m-timestamp-mode-energy", "m-ready"]
        assert host.command("mode performance") == ["m-timestamp-mode-performance", "m-ready"]
        assert laps(host.command("timestamp"))
        assert mcu.alive


# --- a dying inference engine ---------------------------------------------------------------


def degenerate_model(path: Path) -> Path:
    """kws with near-zero inner scales: TFLM aborts the process while preparing it."""
    import flatbuffers

    runtime = tflm.runtime
    model = runtime.convert_bytearray_to_object(
        bytearray(get_benchmark("kws").model_path.read_bytes())
    )
    graph = model.subgraphs[0]
    for index, tensor in enumerate(graph.tensors):
        quantization = tensor.quantization
        inner = index not in (graph.inputs[0], graph.outputs[0])
        if inner and quantization is not None and quantization.scale is not None:
            quantization.scale = np.full_like(quantization.scale, 1e-30)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(builder.Output())
    return path


def test_engine_death_is_reported_and_the_device_stays_up(tmp_path: Path) -> None:
    model = degenerate_model(tmp_path / "degenerate.tflite")
    _, samples = bundled("kws")
    with virtual_mcu(model, "eb-kws") as (mcu, host):
        assert "inference engine died at start" in mcu.stderr_text()
        host.load_hex(samples[0].tobytes())
        for _ in range(2):  # a fresh worker is tried each time, and dies again
            reply = host.command("infer 1 0")
            assert reply[-1] == "m-ready"
            assert re.fullmatch(
                r"e-\[inference engine died: worker killed by SIGABRT.*\]", reply[0]
            )
        assert host.command("name")[0].startswith("m-name-dut-")
        assert mcu.alive


# --- fault options ----------------------------------------------------------------------------


def test_fault_garbage_before_a_reply() -> None:
    model, _ = bundled("kws")
    with virtual_mcu(model, "eb-kws", extra_args=["--garbage-before", "name"]) as (_, host):
        host.send("name%")
        first = host.lines_until_ready()[0]
        noise, text = first[:16], first[16:]
        assert all(b >= 0x80 for b in noise) and text == b"m-name-dut-[edgebench-virtual-mcu]"
        assert host.command("profile")[0].startswith("m-profile-")  # other commands are clean


def test_fault_truncated_line() -> None:
    model, _ = bundled("kws")
    with virtual_mcu(model, "eb-kws", extra_args=["--truncate-line", "profile"]) as (_, host):
        assert host.command("profile") == [
            "m-profile-[ULPMark for tinyML Firmware V0.0.1]",
            "m-model-m-ready",
        ]


def test_fault_never_answer() -> None:
    model, _ = bundled("kws")
    with virtual_mcu(model, "eb-kws", extra_args=["--never-answer", "name"]) as (_, host):
        with pytest.raises(TimeoutError):
            host.command("name", timeout=0.5)
        assert host.command("profile")[-2:] == ["m-model-[eb-kws]", "m-ready"]


def test_fault_reset_after_k_commands_loses_data_and_mode() -> None:
    model, samples = bundled("kws")
    with virtual_mcu(model, "eb-kws", extra_args=["--reset-after", "3"]) as (_, host):
        host.command("db load 490")
        host.command("db " + samples[0].tobytes()[:4].hex())
        assert host.command("mode energy") == ["m-timestamp-mode-energy", "m-ready"]
        reset = host.command("name")  # the 4th command meets a rebooting board
        assert reset[0] == "m-timestamp-mode-performance"  # the build's default again
        assert reset[-2:] == ["m-init-done", "m-ready"]
        assert laps(reset)[0] < 1_000_000  # the timer restarted
        assert host.command("db print") == ["m-ready"]  # the loaded data is gone
        assert host.command("name")[0].startswith("m-name-dut-")  # and it happens once


def test_fault_reset_during_infer() -> None:
    model, samples = bundled("ad")
    options = {"infer_us": 100, "extra_args": ["--reset-during-infer"]}
    with virtual_mcu(model, "eb-ad", **options) as (_, host):
        host.load_hex(samples[0].tobytes())
        lines = host.command("infer 100 0")
        assert lines[:4] == ["m-warmup-start-0", "m-warmup-done", "m-infer-start-100", lines[3]]
        assert lines[3].startswith("m-lap-us-")
        assert lines[4] == "m-timestamp-mode-performance" and lines[-1] == "m-ready"
        assert not any(line.startswith(("m-infer-done", "m-results")) for line in lines)
        assert host.command("infer 1 0")[0].startswith("e-[eb-ad: 0 bytes loaded")


def test_fault_report_a_different_model() -> None:
    model, _ = bundled("kws")
    with virtual_mcu(model, "eb-kws", extra_args=["--report-model", "kws01"]) as (_, host):
        assert host.command("profile")[1] == "m-model-[kws01]"


def test_fault_baud_mismatch_garbles_output() -> None:
    model, _ = bundled("kws")
    options = {"baud": 115200, "extra_args": ["--expect-baud", "115200"]}
    with virtual_mcu(model, "eb-kws", **options) as (_, host):
        host.serial.baudrate = 9600
        host.send("name%")
        expected = len("m-name-dut-[edgebench-virtual-mcu]\r\nm-ready\r\n")
        received = b""
        deadline = time.monotonic() + 10
        while len(received) < expected and time.monotonic() < deadline:
            received += host.serial.read(expected - len(received))
        assert len(received) == expected  # an answer, in noise: never a line
        assert all(b >= 0x80 for b in received)
        host.serial.baudrate = 115200
        assert host.command("name")[0] == "m-name-dut-[edgebench-virtual-mcu]"


# --- launcher and CLI ---------------------------------------------------------------------------


def test_launcher_names_bad_input(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.tflite"
    bogus.write_bytes(b"not a model")
    with (
        pytest.raises(VirtualMcuError, match=r"not a TFLite flatbuffer"),
        VirtualMcu.start(bogus, "eb-kws"),
    ):
        pass
    model, _ = bundled("kws")
    with (
        pytest.raises(VirtualMcuError, match=r"unknown model id 'kws99'"),
        VirtualMcu.start(model, "kws99"),
    ):
        pass
    with (
        pytest.raises(VirtualMcuError, match=r"cannot write the activity file .*/no/such/dir"),
        VirtualMcu.start(model, "eb-kws", activity=tmp_path / "no" / "such" / "dir" / "a.jsonl"),
    ):
        pass


def test_bundled_profile_starts_a_virtual_mcu() -> None:
    profile = load_profile(str(REPO / "device_profiles" / "virtual-mcu.yaml"))
    assert (profile["transport"], profile["port"], profile["baud"]) == ("serial", "virtual", 115200)


def test_lab_up_refuses_half_given_model() -> None:
    done = subprocess.run(
        [*CLI, "lab", "up", "--model", "x.tflite"],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "--model and --model-id go together" in done.stderr


def test_lab_up_serves_until_interrupted(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    process = subprocess.Popen(
        [*CLI, "lab", "up", "-b", "ad", "--baud", str(FAST), "--link", str(tmp_path / "tty")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = process.stdout.readline()
        match = re.search(r"virtual-mcu (\S+) \(eb-ad, performance timing", line)
        assert match, line + process.stderr.read()
        assert os.path.realpath(tmp_path / "tty") == match.group(1)
        host = Host(match.group(1))
        assert host.command("profile")[1] == "m-model-[eb-ad]"
        host.close()
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0
        assert not (tmp_path / "tty").exists()  # the device cleaned up its link
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


# --- fuzzing the device-side parser -------------------------------------------------------------


@given(st.binary(max_size=3000))
def test_line_assembler_never_keeps_more_than_the_buffer(data: bytes) -> None:
    assembler = LineAssembler()
    lines = [line for line in map(assembler.feed, data) if line is not None]
    assert len(lines) == data.count(b"%")
    for line in lines:
        assert b"%" not in line and b"\0" not in line
        assert len(line) <= (EXT_CMD_SIZE if line.startswith(b"db64 ") else CMD_SIZE)


@given(st.text(max_size=40))
def test_atoi_matches_c(text: str) -> None:
    value = atoi(text)
    match = re.match(r"[ \t\n\v\f\r]*([+-]?\d+)", text, re.ASCII)
    expected = int(match.group(1)) if match else 0
    assert value == max(-(2**31), min(2**31 - 1, expected))


WORDS = [
    "name",
    "profile",
    "help",
    "timestamp",
    "results",
    "db",
    "load",
    "print",
    "infer",
    "db64",
    "mode",
    "energy",
    "performance",
    "0",
    "1",
    "2",
    "-1",
    "490",
    "zz",
    "0a0b",
]
COMMANDS = st.lists(
    # no digits in free text: `infer 99999` is a legitimately long command, not a hang
    st.one_of(
        st.sampled_from(WORDS), st.text(st.characters(exclude_characters="0123456789"), max_size=6)
    ),
    max_size=5,
).map(lambda words: " ".join(words).encode("utf-8", "replace"))
NOISE = st.binary(max_size=120).filter(lambda data: b"infer" not in data)


@pytest.fixture(scope="module")
def fuzz_host() -> Iterator[tuple[VirtualMcu, Host]]:
    model, _ = bundled("ad")
    with virtual_mcu(model, "eb-ad", infer_us=10) as pair:
        yield pair


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.one_of(COMMANDS, NOISE), min_size=1, max_size=4))
def test_fuzz_every_terminated_command_gets_ready(
    fuzz_host: tuple[VirtualMcu, Host], pieces: list[bytes]
) -> None:
    mcu, host = fuzz_host
    data = b"%".join(pieces) + b"%"
    host.send(data)
    readies = 0
    for _ in range(data.count(b"%")):
        lines = host.lines_until_ready(timeout=20)
        readies += 1
        assert all(b"\n" not in line for line in lines)
    assert readies == data.count(b"%") and mcu.alive
    assert host.command("name")[0].startswith("m-name-dut-")

"""Deploying to microcontrollers: the benchmark's model built into the C firmware, "flashed"
(started on a pty, or booted in QEMU), verified through `eb-info`, and run by the same
`edgebench run` as any serial DUT. Real builds, real processes, the real CLI.

Builds go to a cache directory of this module, so the first test pays for the compile and
the others reuse it, exactly as a user's second run does.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from edgebench.devices.base import DeviceError
from edgebench.devices.profiles import open_device
from edgebench.firmware.build import CACHE_ENV
from edgebench.firmware.model_to_c import convert
from edgebench.firmware.ports import RunningFirmware, firmware_port
from edgebench.metrics.accuracy import reconstruction_scores
from edgebench.runner import tiny_score
from edgebench.suite.benchmarks import get_benchmark, sha256_file

from .support import run_cli, run_json

pytest.importorskip("serial")
needs_qemu = pytest.mark.skipif(
    shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
    reason="gcc-arm-none-eabi / qemu-system-arm not installed (.ci/run installs them)",
)
RESULTS_LINE = re.compile(r" < m-results-\[([^\]]*)\]$")


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One build cache for the module (in-process builds and CLI subprocesses alike)."""
    directory = tmp_path_factory.mktemp("firmware-cache")
    previous = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(directory)
    yield directory
    if previous is None:
        del os.environ[CACHE_ENV]
    else:
        os.environ[CACHE_ENV] = previous


def write_profile(path: Path, text: str) -> Path:
    path.write_text("name: test-board\ntransport: serial\ntimeout: 10\n" + text)
    return path


def cli_error(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    """The CLI's one-line error (exit 1), from a terminal wide enough not to wrap it."""
    done = run_cli(*args, cwd=cwd, env={"COLUMNS": "1000", **(env or {})})
    assert done.returncode == 1, done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("edgebench: error:")]
    assert len(lines) == 1, done.stderr
    return lines[0]


# --- the commands ---------------------------------------------------------------------


@needs_qemu
def test_qemu_run_with_deploy_converts_builds_boots_and_runs(tmp_path: Path, cache: Path) -> None:
    (result,) = run_json(
        "--device", "qemu-cortex-m4", "-b", "ad", "--deploy", "-m", "performance",
        "--results", str(tmp_path / "r"), cwd=tmp_path,
    )  # fmt: skip
    assert result["status"] == "complete" and result["valid"], result.get("reasons")
    assert result["metrics"]["median_throughput"] > 0
    bench = get_benchmark("ad")
    record = result["deploy"]
    image = Path(record["image"])
    assert image.is_file() and cache in image.parents  # built now, into this cache
    assert (record["port"], record["flash_method"], record["model_id"]) == (
        "qemu-mps2-an386",
        "qemu",
        "eb-ad",
    )
    assert record["model_sha256"] == bench.model_sha256
    assert record["image_sha256"] == sha256_file(image)
    assert record["image_bytes"] == image.stat().st_size
    assert 0 < record["ram_bytes"] < 256 * 1024 < record["flash_bytes"] < 4 * 1024 * 1024
    assert record["toolchain"].startswith("arm-none-eabi-gcc")
    # the firmware that answered reports the model and the build id this run compiled in
    check = result["image_check"]
    assert check == {
        "verified": True,
        "model_sha256": bench.model_sha256,
        "build_id": record["build_id"],
    }
    assert "QEMU instruction count" in result["timing_note"]
    summary = tmp_path / "r" / result["run_id"] / "summary.txt"
    assert "timing     QEMU instruction count" in summary.read_text()
    assert result["system"]["dut_name"] == "edgebench mps2-an386"


def host_reference(benchmark: str) -> tuple[list[str], float]:
    """TFLM on the host, each result printed as the firmware prints it, scored as runs are."""
    from .tflm_reference import quantization, tflm_outputs

    bench = get_benchmark(benchmark)
    with np.load(bench.dataset_path) as data:
        inputs, labels = data["x"], data["y"]
    outputs = tflm_outputs(bench.model_path, inputs)
    (in_scale, in_zero), (out_scale, out_zero) = quantization(bench.model_path)
    decimals = convert(bench.model_path.read_bytes(), f"eb-{benchmark}").result_decimals
    if benchmark == "ad":
        rows = reconstruction_scores(inputs, outputs, (in_scale, in_zero), (out_scale, out_zero))
        rows = rows[:, np.newaxis]
    else:
        rows = (outputs.astype(np.float32) - np.float32(out_zero)) * np.float32(out_scale)
    printed = [",".join(f"{value:.{decimals}f}" for value in row) for row in rows]
    windows = [
        {"sample": i, "results": [float(v) for v in text.split(",")]}
        for i, text in enumerate(printed)
    ]
    return printed, tiny_score.accuracy(bench, windows, labels, None).value


@pytest.mark.parametrize("name", ["kws", "ic", "vww"])
def test_every_bundled_benchmark_runs_on_the_c_firmware(
    tmp_path: Path, cache: Path, name: str
) -> None:
    """The POSIX port through the host's serial transport: performance, and accuracy over
    the whole evaluation set equal, result line by result line, to TFLM on the host."""
    printed, top1 = host_reference(name)
    performance, accuracy = run_json(
        "--device", "posix-bridge", "-b", name, "--duration", "0.3",
        "--results", str(tmp_path / "r"), cwd=tmp_path,
    )  # fmt: skip
    assert performance["mode"] == "performance" and performance["valid"], performance["reasons"]
    assert performance["metrics"]["median_throughput"] > 0
    assert accuracy["mode"] == "accuracy" and accuracy["valid"], accuracy.get("reasons")
    assert accuracy["metrics"]["accuracy"]["value"] == top1
    log = (tmp_path / "r" / accuracy["run_id"] / "dut_log.txt").read_text().splitlines()
    assert [m.group(1) for line in log if (m := RESULTS_LINE.search(line))] == printed


@pytest.mark.parametrize(
    "device", ["posix-bridge", pytest.param("qemu-cortex-m4", marks=needs_qemu)]
)
def test_accuracy_on_the_c_firmware_equals_the_host_reference(
    tmp_path: Path, cache: Path, device: str
) -> None:
    """Issue 7's done-means: the whole ad evaluation set (1200 samples) through the C
    firmware gives exactly the AUC, and sample by sample the scores, TFLM gives on the host."""
    printed, auc = host_reference("ad")
    (result,) = run_json(
        "--device", device, "-b", "ad", "-m", "accuracy", "--results", str(tmp_path / "r"),
        cwd=tmp_path,
    )  # fmt: skip
    assert result["status"] == "complete" and result["valid"], result.get("reasons")
    accuracy = result["metrics"]["accuracy"]
    assert (accuracy["count"], accuracy["value"]) == (len(printed), auc)
    log = (tmp_path / "r" / result["run_id"] / "dut_log.txt").read_text().splitlines()
    assert [m.group(1) for line in log if (m := RESULTS_LINE.search(line))] == printed
    assert result["load"]["framing"] == "db64"
    assert result["image_check"]["verified"] is True


# --- a board whose firmware persists: stale images ---------------------------------------------


@pytest.fixture
def board(cache: Path) -> Iterator[RunningFirmware]:
    """A "board" flashed with the ad firmware before the test: the POSIX port started here,
    outliving every edgebench command the test runs (as a board keeps its flash)."""
    port = firmware_port("posix")
    running = port.launch(port.build(get_benchmark("ad").model_path, "eb-ad"))
    yield running
    running.stop()


def board_profile(tmp_path: Path, board: RunningFirmware) -> Path:
    return write_profile(
        tmp_path / "board.yaml",
        f"port: {board.port}\nfirmware:\n  port: posix\nflash:\n  method: posix\n",
    )


# The POSIX port built by a vendor-style build command (a real build through the template).
POSIX_BUILD = (
    "cc -std=c99 -O2 -ffp-contract=off '-DEB_BUILD_ID=\"{{build_id}}\"' -I{{core_dir}} "
    "{{core_dir}}/*.c {{model_source}} {{firmware_root}}/ports/posix/main.c -o {{out_dir}}/{image}"
)


class DriveBoard:
    """A board with an mbed-style USB drive, its MCU stood in for by the POSIX port: an image
    copied onto `drive/` is booted once the copy is complete (the old image stopped first),
    and `tty` links to the running image's pty, absent while the board reboots, as a USB
    serial port is. What it runs persists across edgebench commands, as a board's flash."""

    def __init__(self, root: Path) -> None:
        self.drive, self.tty, self.flash = root / "drive", root / "tty", root / "flash"
        self.drive.mkdir()
        self.running: RunningFirmware | None = None
        self.boots = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        booted, seen = None, None
        while not self._stop.wait(0.1):
            state = None
            for image in self.drive.glob("*.bin"):
                state = (image, image.stat().st_mtime_ns, image.stat().st_size)
            if state is not None and state == seen and state != booted:  # copy finished
                self._boot(state[0])
                booted = state
            seen = state

    def _boot(self, image: Path) -> None:
        self.tty.unlink(missing_ok=True)
        if self.running is not None:
            self.running.stop()
        shutil.copyfile(image, self.flash)
        self.flash.chmod(0o755)
        self.running = firmware_port("posix").launch(self.flash)
        self.tty.symlink_to(self.running.port)
        self.boots += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        if self.running is not None:
            self.running.stop()


def test_a_board_keeps_its_image_stale_ones_are_refused_and_deploy_reflashes(
    tmp_path: Path, cache: Path
) -> None:
    """The board path end to end: vendor build, mass-storage flash, the board's reboot
    waited out, verification; then a run for another model refused, and --deploy."""
    board = DriveBoard(tmp_path)
    try:
        profile = str(
            write_profile(
                tmp_path / "board.yaml",
                f"port: {board.tty}\nfirmware:\n  port: drive-board\n  compiler: cc\n"
                f"  image: fw.bin\n  build_command: >-\n    {POSIX_BUILD.format(image='fw.bin')}\n"
                f"flash:\n  method: mass-storage\n  drive: {board.drive}\n",
            )
        )
        done = run_cli("deploy", "--device", profile, "-b", "ad", "--json", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        flashed = json.loads(done.stdout)
        assert flashed["image_check"]["build_id"] == flashed["deploy"]["build_id"]
        image = Path(flashed["deploy"]["image"])
        assert (board.drive / "fw.bin").read_bytes() == image.read_bytes()
        results = ("--results", str(tmp_path / "r"), "-m", "accuracy", "--max-samples", "5")
        # without --deploy, what is on the board is verified, not rebuilt
        (result,) = run_json("--device", profile, "-b", "ad", *results, cwd=tmp_path)
        assert result["status"] == "complete" and result["deploy"] is None
        assert result["image_check"]["build_id"] == flashed["deploy"]["build_id"]
        error = cli_error("run", "--device", profile, "-b", "kws", *results, cwd=tmp_path)
        assert "runs model 'eb-ad'" in error and "needs 'eb-kws'" in error and "--deploy" in error
        (result,) = run_json("--device", profile, "-b", "kws", "--deploy", *results, cwd=tmp_path)
        assert result["status"] == "complete", result.get("reasons")
        assert result["deploy"]["model_id"] == "eb-kws"
        assert result["image_check"]["build_id"] == result["deploy"]["build_id"]
        (result,) = run_json("--device", profile, "-b", "kws", *results, cwd=tmp_path)
        assert result["status"] == "complete" and result["deploy"] is None  # kws stayed
        assert board.boots == 2
    finally:
        board.stop()


def test_same_model_id_but_another_model_is_refused_by_its_sha256(
    tmp_path: Path, cache: Path, ad_model: Path
) -> None:
    """The board runs `eb-ad` built from MLPerf Tiny's ad01 model, not the bundled one: the
    model id matches, eb-info's model sha256 does not."""
    port = firmware_port("posix")
    running = port.launch(port.build(ad_model, "eb-ad"))
    try:
        profile = str(board_profile(tmp_path, running))
        error = cli_error("run", "--device", profile, "-b", "ad", "-m", "accuracy", cwd=tmp_path)
    finally:
        running.stop()
    assert f"model sha256 {sha256_file(ad_model)[:16]}" in error
    assert f"model is {get_benchmark('ad').model_sha256[:16]}" in error
    assert "--deploy" in error


def test_firmware_without_eb_info_runs_with_a_warning(tmp_path: Path) -> None:
    """MLPerf Tiny-style firmware (the virtual MCU has no eb-info): the run says so."""
    (result,) = run_json(
        "--device", "virtual-mcu", "-b", "ad", "-m", "accuracy", "--max-samples", "3",
        "--results", str(tmp_path / "r"), cwd=tmp_path,
    )  # fmt: skip
    assert result["image_check"]["verified"] is False
    assert any("no eb-info extension" in note for note in result["notes"])


# --- the deploy command, vendor builds, missing tools ------------------------------------------


def vendor_profile(tmp_path: Path, command: str, flash: str = "method: posix") -> Path:
    return write_profile(
        tmp_path / "vendor.yaml",
        f"firmware:\n  port: my-board\n  compiler: cc\n  image: fw\n"
        f"  build_command: >-\n    {command}\nflash:\n  {flash}\n",
    )


def test_deploy_command_with_a_vendor_build_command(tmp_path: Path, cache: Path) -> None:
    profile = str(vendor_profile(tmp_path, POSIX_BUILD.format(image="fw")))
    done = run_cli("deploy", "--device", profile, "-b", "ad", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    record = report["deploy"]
    assert record["port"] == "my-board" and record["toolchain"].startswith("cc")
    assert (
        Path(record["image"]) == cache / "firmware" / f"my-board-eb-ad-{record['build_id']}" / "fw"
    )
    assert report["image_check"]["build_id"] == record["build_id"]  # the id made it in
    assert report["dut_name"] == "edgebench posix bridge"


def test_deploy_command_prints_the_record(tmp_path: Path, cache: Path) -> None:
    done = run_cli(
        "deploy", "--device", "posix-bridge", "-b", "kws", cwd=tmp_path, env={"COLUMNS": "1000"}
    )
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(None, 1) for line in done.stdout.splitlines() if " " in line)
    assert lines["model_sha256"] == get_benchmark("kws").model_sha256
    assert lines["verified"].startswith("yes: eb-info reports this model and build")
    assert "emulated: the image ran only for this command" in done.stdout


def test_vendor_build_failures_are_one_line(tmp_path: Path, cache: Path) -> None:
    profile = str(vendor_profile(tmp_path, "echo 'fatal: no SDK here' >&2; exit 3"))
    error = cli_error("deploy", "--device", profile, "-b", "ad", cwd=tmp_path)
    assert "build_command failed (exit 3): fatal: no SDK here" in error
    profile = str(vendor_profile(tmp_path, "make BOARD={board}"))
    error = cli_error("deploy", "--device", profile, "-b", "ad", cwd=tmp_path)
    assert "unknown placeholder ('board')" in error and "{model_source}" in error
    profile = str(vendor_profile(tmp_path, "true"))
    assert "the build produced no" in cli_error(
        "deploy", "--device", profile, "-b", "ad", cwd=tmp_path
    )


def only_on_path(directory: Path, *tools: str) -> dict[str, str]:
    """A PATH holding just these tools (links to the real ones)."""
    directory.mkdir()
    for tool in tools:
        found = shutil.which(tool)
        assert found, tool
        (directory / tool).symlink_to(found)
    return {"PATH": str(directory)}


def test_missing_flash_tool_is_reported_before_anything_is_built(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    profile = write_profile(
        tmp_path / "nucleo.yaml",
        "port: /dev/ttyACM0\nfirmware:\n  port: posix\nflash:\n  method: openocd\n"
        "  interface: interface/stlink.cfg\n  target: target/stm32l4x.cfg\n",
    )
    env = {CACHE_ENV: str(cache), **only_on_path(tmp_path / "bin", "cc")}
    args = ("run", "--device", str(profile), "-b", "ad", "--deploy")
    error = cli_error(*args, cwd=tmp_path, env=env)
    assert "openocd not found; install it (apt-get install openocd)" in error
    assert not cache.exists() or not any(cache.rglob("*"))  # nothing converted or compiled


def test_missing_cross_compiler_or_qemu_is_named_with_the_install_command(
    tmp_path: Path,
) -> None:
    cache = tmp_path / "cache"
    env = {CACHE_ENV: str(cache), **only_on_path(tmp_path / "bin", "cc")}
    error = cli_error("deploy", "--device", "qemu-cortex-m4", "-b", "ad", cwd=tmp_path, env=env)
    assert "arm-none-eabi-gcc not found; install it (apt-get install --no-install-recommends" in (
        error
    )
    done = run_cli("devices", "check", "qemu-cortex-m4", "--json", cwd=tmp_path, env=env)
    rows = {row["check"]: row for row in json.loads(done.stdout)}
    assert done.returncode == 1 and rows["toolchain"]["status"] == "FAIL"
    assert "gcc-arm-none-eabi" in rows["toolchain"]["detail"]
    assert not cache.exists() or not any(cache.rglob("*"))


@needs_qemu
def test_missing_qemu_is_reported_before_anything_is_built(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    env = {CACHE_ENV: str(cache), **only_on_path(tmp_path / "bin", "arm-none-eabi-gcc")}
    error = cli_error("deploy", "--device", "qemu-cortex-m4", "-b", "ad", cwd=tmp_path, env=env)
    assert "qemu-system-arm not found; install it" in error
    assert not cache.exists() or not any(cache.rglob("*"))


def test_deploy_needs_a_firmware_section(tmp_path: Path) -> None:
    for args in (("run", "--deploy"), ("deploy",)):
        error = cli_error(*args, "--device", "virtual-mcu", "-b", "ad", cwd=tmp_path)
        assert "virtual-mcu: deploying builds firmware for serial devices whose profile" in error


def test_devices_check_on_the_posix_bridge(tmp_path: Path, cache: Path) -> None:
    done = run_cli("devices", "check", "posix-bridge", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = {row["check"]: row for row in json.loads(done.stdout)}
    assert [rows[name]["status"] for name in ("toolchain", "connect", "identify")] == ["ok"] * 3
    assert "model eb-ad" in rows["identify"]["detail"]
    assert rows["extensions"]["status"] == "ok"
    assert f"model sha256 {get_benchmark('ad').model_sha256}" in rows["extensions"]["detail"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("firmware:\n  port: posix\n  board: x\nflash:\n  method: posix\n", "firmware.board is"),
        ("firmware:\n  port: posix\n  image: 3\nflash:\n  method: posix\n", "must be a string"),
        ("firmware:\n  compiler: cc\n", "firmware.port is required"),
        ("firmware:\n  port: stm32\nflash:\n  method: openocd\n", "a vendor port needs"),
        ("firmware:\n  port: posix\n", "no `flash:` section"),
        ("firmware:\n  port: posix\nflash:\n  method: dfu\n", "flash.method 'dfu' is unknown"),
        ("port: /dev/null\nflash:\n  method: posix\n", "`flash:` needs a `firmware:`"),
        ("firmware: posix\n", "key 'firmware' must be dict"),
    ],
)
def test_bad_firmware_sections_are_one_line_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(DeviceError, match=re.escape(message)) as caught:
        open_device(str(write_profile(tmp_path / "bad.yaml", text)))
    assert "\n" not in str(caught.value)

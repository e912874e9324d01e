"""Flashers: the command each tool gets, a missing tool or probe named before anything is
written, a failing tool's last line surfaced, and the QEMU "flasher" booting a real image."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from edgebench.firmware.flasher import FlashError, flasher_for
from edgebench.firmware.ports import firmware_port
from edgebench.suite.benchmarks import bundled_benchmarks


def fake_tool(directory: Path, name: str, exit_code: int, message: str) -> Path:
    """A stand-in for a vendor tool on PATH: records its arguments, prints, exits."""
    script = directory / name
    script.write_text(
        f'#!/bin/sh\necho "$@" > "{directory}/{name}.args"\necho "{message}" >&2\n'
        f"exit {exit_code}\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def test_openocd_command_for_elf_and_bin():
    flasher = flasher_for(
        {"method": "openocd", "interface": "interface/stlink.cfg", "target": "target/stm32l4x.cfg"}
    )
    assert flasher.command(Path("/img/fw.elf")) == [
        "openocd",
        "-f",
        "interface/stlink.cfg",
        "-f",
        "target/stm32l4x.cfg",
        "-c",
        "program /img/fw.elf verify reset exit",
    ]
    assert flasher.command(Path("/img/fw.bin"))[-1] == (
        "program /img/fw.bin 0x08000000 verify reset exit"
    )


def test_openocd_runs_the_tool_and_surfaces_its_failure(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    options = {"method": "openocd", "interface": "i.cfg", "target": "t.cfg"}
    fake_tool(tmp_path, "openocd", 0, "ok")
    flasher_for(options).flash(tmp_path / "fw.elf")
    assert (tmp_path / "openocd.args").read_text().split()[-5:] == [
        "program",
        str(tmp_path / "fw.elf"),
        "verify",
        "reset",
        "exit",
    ]
    fake_tool(tmp_path, "openocd", 1, "Error: open failed")
    with pytest.raises(FlashError, match=r"openocd failed \(exit 1\): Error: open failed"):
        flasher_for(options).flash(tmp_path / "fw.elf")


def test_missing_openocd_is_named_with_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    flasher = flasher_for({"method": "openocd", "interface": "i.cfg", "target": "t.cfg"})
    with pytest.raises(FlashError, match=r"openocd not found; install it \(apt-get install"):
        flasher.check()


def test_esptool_command_and_refusals():
    flasher = flasher_for({"method": "esptool", "chip": "esp32s3", "port": "/dev/ttyUSB0"})
    command = flasher.command(Path("app.bin"))
    assert command[1:] == [
        "-m",
        "esptool",
        "--chip",
        "esp32s3",
        "--port",
        "/dev/ttyUSB0",
        "--baud",
        "460800",
        "write_flash",
        "0x10000",
        "app.bin",
    ]
    with pytest.raises(FlashError, match=r"esptool writes \.bin images, got app\.elf"):
        flasher.command(Path("app.elf"))


@pytest.mark.skipif(shutil.which("esptool") is not None, reason="esptool is installed here")
def test_missing_esptool_and_pyocd_are_named():
    with pytest.raises(FlashError, match="esptool is not installed; pip install esptool"):
        flasher_for({"method": "esptool", "chip": "esp32", "port": "/dev/x"}).check()
    try:
        import pyocd  # noqa: F401
    except ImportError:
        with pytest.raises(FlashError, match="pyocd is not installed; pip install pyocd"):
            flasher_for({"method": "pyocd", "target": "stm32l4r5zitx"}).check()


def test_mass_storage_copies_whole_image_and_refuses_what_it_cannot_flash(tmp_path):
    drive = tmp_path / "NODE_L4R5ZI"
    image = tmp_path / "firmware.bin"
    image.write_bytes(os.urandom(70_000))
    with pytest.raises(FlashError, match="is not mounted; plug the board in"):
        flasher_for({"method": "mass-storage", "drive": str(drive)}).flash(image)
    drive.mkdir()
    flasher = flasher_for({"method": "mass-storage", "drive": str(drive)})
    with pytest.raises(FlashError, match=r"takes a \.bin or \.hex image, got firmware\.elf"):
        flasher.flash(tmp_path / "firmware.elf")
    assert list(drive.iterdir()) == []
    flasher.flash(image)
    assert (drive / "firmware.bin").read_bytes() == image.read_bytes()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"method": "jtag-magic"}, "flash.method 'jtag-magic' is unknown; use one of"),
        ({"method": "openocd", "interface": "i.cfg"}, "flash.target is required by the openocd"),
        ({"method": "mass-storage", "drive": 3}, "flash.drive: expected str"),
        ({"method": "pyocd", "target": "x", "speed": 1}, "flash.speed: unknown key for pyocd"),
    ],
)
def test_bad_flash_options_are_one_line_errors(options, message):
    with pytest.raises(FlashError, match=message):
        flasher_for(options)


@pytest.mark.skipif(
    shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
    reason="gcc-arm-none-eabi / qemu-system-arm not installed (.ci/run installs them)",
)
def test_qemu_flasher_boots_the_image():
    serial = pytest.importorskip("serial")
    bench = bundled_benchmarks()["ad"]
    image = firmware_port("qemu-mps2-an386").build(bench.model_path, "eb-ad")
    running = flasher_for({"method": "qemu"}).flash(image)
    try:
        with serial.Serial(running.port, 115200, timeout=20) as line:
            running.resume()
            assert line.read_until(b"m-ready\r\n").endswith(b"m-init-done\r\nm-ready\r\n")
            line.write(b"eb-info%")
            reply = line.read_until(b"m-ready\r\n").decode()
            assert f"m-eb-model-sha256-[{bench.model_sha256}]" in reply
    finally:
        running.stop()
    assert not running.alive

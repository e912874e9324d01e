"""Board ports (firmware_bridges/ports/nucleo-l4r5zi): no board here, so what a build can
show is checked on the real images: the vector table sits where the chip boots from and
points at the right handlers, every section fits the chip's memories, and the deploy path
stops at the missing flash tool before building anything."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from edgebench.firmware.build import CACHE_ENV, BuildError
from edgebench.firmware.ports import firmware_port
from edgebench.suite.benchmarks import bundled_benchmarks

from .test_deploy import cli_error, only_on_path

needs_arm_gcc = pytest.mark.skipif(
    shutil.which("arm-none-eabi-gcc") is None,
    reason="gcc-arm-none-eabi not installed (.ci/run installs it)",
)
FLASH = (0x0800_0000, 2048 * 1024)
SRAM1 = (0x2000_0000, 192 * 1024)
LPUART1_IRQ = 70


def symbols(image: Path) -> dict[str, int]:
    listing = subprocess.run(
        ["arm-none-eabi-nm", str(image)], capture_output=True, text=True, check=True
    ).stdout
    rows = [line.split() for line in listing.splitlines()]
    return {row[2]: int(row[0], 16) for row in rows if len(row) == 3}


def vectors(image: Path, tmp_path: Path) -> list[int]:
    raw = tmp_path / "vectors.bin"
    subprocess.run(
        ["arm-none-eabi-objcopy", "-O", "binary", "-j", ".isr_vector", str(image), str(raw)],
        check=True,
    )
    data = raw.read_bytes()
    return list(struct.unpack(f"<{len(data) // 4}I", data))


def sections(image: Path) -> dict[str, tuple[int, int, int]]:
    """name -> (address, load address, size) of each allocated section."""
    listing = subprocess.run(
        ["arm-none-eabi-objdump", "-h", str(image)], capture_output=True, text=True, check=True
    ).stdout
    found = {}
    for line in listing.splitlines():
        words = line.split()
        if len(words) == 7 and words[0].isdigit():
            found[words[1]] = (int(words[3], 16), int(words[4], 16), int(words[2], 16))
    return found


def inside(region: tuple[int, int], start: int, size: int) -> bool:
    """An empty section takes no room (the linker leaves its load address at the VMA)."""
    return size == 0 or (region[0] <= start and start + size <= region[0] + region[1])


@needs_arm_gcc
@pytest.mark.parametrize("name", ["kws", "vww"])  # the smallest and the largest RAM need
def test_nucleo_image_boots_from_flash_into_the_bridge(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    image = firmware_port("nucleo-l4r5zi").build(
        bundled_benchmarks()[name].model_path, f"eb-{name}"
    )
    found = sections(image)
    assert found[".isr_vector"][0] == FLASH[0]  # where the chip boots from
    for section in (".isr_vector", ".text", ".data"):
        _, load, size = found[section]
        assert inside(FLASH, load, size), section
    for section in (".data", ".bss"):
        address, _, size = found[section]
        assert inside(SRAM1, address, size), section
    table, named = vectors(image, tmp_path), symbols(image)
    assert table[0] == SRAM1[0] + SRAM1[1]  # initial stack pointer: top of SRAM1
    assert table[1] == named["eb_reset_handler"] | 1  # Thumb
    assert table[16 + LPUART1_IRQ] == named["eb_lpuart1_handler"] | 1
    assert len(table) == 16 + LPUART1_IRQ + 1


def test_board_port_is_flashed_not_launched(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="runs on its board: flash it with the profile's"):
        firmware_port("nucleo-l4r5zi").launch(tmp_path / "firmware.elf")


@needs_arm_gcc
def test_deploy_to_the_nucleo_names_the_missing_flash_tool_first(tmp_path: Path) -> None:
    if shutil.which("openocd"):
        pytest.skip("openocd is installed: this checks the message when it is not")
    cache = tmp_path / "cache"
    env = {CACHE_ENV: str(cache), **only_on_path(tmp_path / "bin", "arm-none-eabi-gcc")}
    error = cli_error("deploy", "--device", "nucleo-l4r5zi", "-b", "kws", cwd=tmp_path, env=env)
    assert "openocd not found; install it (apt-get install openocd)" in error
    assert not cache.exists() or not any(cache.rglob("*"))  # nothing converted or compiled

"""Bare Cortex-M4 ports cross-compiled with Debian's arm-none-eabi-gcc and newlib, and the
boards among them: images a flasher writes (openocd, pyocd), never started on this host.

Every such port is its own folder under firmware_bridges/ports/ (vector table, clocks,
UART, timer, pin) plus ports/cortex-m (reset, the receive queue and main loop), linked by
the folder's link.ld. Soft-float keeps one set of flags for all of them: the kernels are
integer, and the few float operations are outside the timed inference.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from .build import COMMON_FLAGS, PORTS, BuildError
from .ports import FirmwarePort, RunningFirmware, register

CORTEX_M_DIR = PORTS / "cortex-m"
ARM_FLAGS = (
    "-mcpu=cortex-m4",
    "-mthumb",
    "-mfloat-abi=soft",
    "-ffreestanding",
    "-nostartfiles",
    "--specs=nano.specs",
    "--specs=nosys.specs",
    "-Wl,--gc-sections",
)
ARM_INSTALL_HINT = (
    "apt-get install --no-install-recommends gcc-arm-none-eabi libnewlib-arm-none-eabi"
)


class CortexM4Port(FirmwarePort):
    """A port in `folder`, built with the shared Cortex-M sources and the folder's link.ld."""

    folder: ClassVar[Path]
    image_name = "firmware.elf"
    compilers = ("arm-none-eabi-gcc",)
    install_hint = ARM_INSTALL_HINT

    @property
    def source_dirs(self) -> tuple[Path, ...]:  # type: ignore[override]
        return (self.folder, CORTEX_M_DIR)

    @property
    def flags(self) -> tuple[str, ...]:  # type: ignore[override]
        return (*COMMON_FLAGS, *ARM_FLAGS, f"-T{self.folder / 'link.ld'}")


class BoardPort(CortexM4Port):
    """A real board: the profile's `flash:` section writes the image; nothing runs here."""

    def launch(self, image: Path, activity: Path | None = None) -> RunningFirmware:
        raise BuildError(
            f"the {self.name} port runs on its board: flash it with the profile's flasher "
            "(openocd, pyocd), then talk to the board's serial port"
        )


@register
class NucleoL4r5Port(BoardPort):
    name = "nucleo-l4r5zi"
    timing_note = "STM32L4R5 at 16 MHz (HSI16), not the 120 MHz of reference submissions"
    folder = PORTS / "nucleo-l4r5zi"

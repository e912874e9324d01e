"""The emulated ports' "flashers": starting the image is flashing it. They hand back the
running image, whose pty the serial transport opens (the same path a board takes)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from .flasher import Flasher, register
from .ports import RunningFirmware, firmware_port


class EmulatedFlasher(Flasher):
    port_name: ClassVar[str]
    option_keys: ClassVar[dict[str, type | tuple[type, ...]]] = {"activity": str}

    def check(self) -> None:
        firmware_port(self.port_name)

    def flash(self, image: Path) -> RunningFirmware:
        activity = self.options.get("activity")
        return firmware_port(self.port_name).launch(image, Path(activity) if activity else None)


@register
class QemuFlasher(EmulatedFlasher):
    name = "qemu"
    port_name = "qemu-mps2-an386"


@register
class PosixFlasher(EmulatedFlasher):
    name = "posix"
    port_name = "posix"

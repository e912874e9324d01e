"""The emulated ports' "flashers": starting the image is flashing it. They hand back the
running image, whose pty the serial transport opens (the same path a board takes)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

from ..lab.emulator_process import ACTIVITY_ENV
from .flasher import Flasher, register
from .ports import RunningFirmware, firmware_port


class EmulatedFlasher(Flasher):
    port_name: ClassVar[str]
    option_keys: ClassVar[dict[str, type | tuple[type, ...]]] = {"activity": str}
    #: The port reports its timestamp pin, so it joins the virtual bench ($EDGEBENCH_ACTIVITY).
    reports_pin: ClassVar[bool] = False

    def check(self) -> None:
        firmware_port(self.port_name)

    def flash(self, image: Path) -> RunningFirmware:
        activity = self.options.get("activity")
        if activity is None and self.reports_pin:
            activity = os.environ.get(ACTIVITY_ENV)
        return firmware_port(self.port_name).launch(image, Path(activity) if activity else None)


@register
class QemuFlasher(EmulatedFlasher):
    name = "qemu"
    port_name = "qemu-mps2-an386"


@register
class PosixFlasher(EmulatedFlasher):
    name = "posix"
    port_name = "posix"
    reports_pin = True

"""esptool for ESP32-family boards: `write_flash` of the application image at its offset,
over the board's serial port."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import ClassVar

from .flasher import CommandFlasher, FlashError, register


@register
class EsptoolFlasher(CommandFlasher):
    name = "esptool"
    tool = "esptool"
    install_hint = "pip install esptool"
    option_keys: ClassVar[dict[str, type | tuple[type, ...]]] = {
        "chip": str,
        "port": str,
        "baud": int,
        "offset": str,
    }
    required_keys = ("chip", "port")

    def check(self) -> None:
        if importlib.util.find_spec("esptool") is None:
            raise FlashError(f"esptool is not installed; {self.install_hint}")

    def command(self, image: Path) -> list[str]:
        if image.suffix != ".bin":
            raise FlashError(f"esptool writes .bin images, got {image.name}")
        return [
            sys.executable,
            "-m",
            "esptool",
            "--chip",
            self.options["chip"],
            "--port",
            self.options["port"],
            "--baud",
            str(self.options.get("baud", 460800)),
            "write_flash",
            self.options.get("offset", "0x10000"),
            str(image),
        ]

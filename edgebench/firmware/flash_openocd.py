"""OpenOCD from the command line: `program <image> verify reset exit` with the interface and
target configuration files the profile names (e.g. interface/stlink.cfg, target/stm32l4x.cfg)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from .flasher import CommandFlasher, register


@register
class OpenOcdFlasher(CommandFlasher):
    name = "openocd"
    tool = "openocd"
    install_hint = "apt-get install openocd"
    option_keys: ClassVar[dict[str, type | tuple[type, ...]]] = {
        "interface": str,
        "target": str,
        "address": str,
        "extra_args": list,
    }
    required_keys = ("interface", "target")

    def command(self, image: Path) -> list[str]:
        program = f"program {image} verify reset exit"
        if image.suffix == ".bin":  # raw images carry no load address
            program = (
                f"program {image} {self.options.get('address', '0x08000000')} verify reset exit"
            )
        return [
            self.tool,
            "-f",
            self.options["interface"],
            "-f",
            self.options["target"],
            *map(str, self.options.get("extra_args", [])),
            "-c",
            program,
        ]

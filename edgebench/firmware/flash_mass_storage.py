"""Boards whose probe shows up as a USB drive (mbed / DAPLink): copying a .bin or .hex onto
the drive flashes it. The copy is synced before returning, so the board is not reset with a
half-written file."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import ClassVar

from .flasher import Flasher, FlashError, register


@register
class MassStorageFlasher(Flasher):
    name = "mass-storage"
    option_keys: ClassVar[dict[str, type | tuple[type, ...]]] = {"drive": str}
    required_keys = ("drive",)

    def check(self) -> None:
        drive = Path(self.options["drive"]).expanduser()
        if not drive.is_dir():
            raise FlashError(f"drive {drive} is not mounted; plug the board in and mount it")

    def flash(self, image: Path) -> None:
        self.check()
        if image.suffix not in (".bin", ".hex"):
            raise FlashError(f"a USB drive takes a .bin or .hex image, got {image.name}")
        target = Path(self.options["drive"]).expanduser() / image.name
        with open(image, "rb") as source, open(target, "wb") as copy:
            shutil.copyfileobj(source, copy)
            copy.flush()
            os.fsync(copy.fileno())
        return None

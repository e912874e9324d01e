"""Putting a built image on a device, by the name a profile's `flash:` section uses.

Real boards are flashed by their usual tools (pyOCD, OpenOCD, esptool, or a copy to the
board's USB drive); the emulated ports are "flashed" by starting the image, which hands back
the pty the serial transport then opens. Each flasher checks for its tool before anything is
built or written, so a missing tool or probe is one clear line, and nothing is half-done.
"""

from __future__ import annotations

import shutil
import subprocess
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from .ports import RunningFirmware


class FlashError(RuntimeError):
    """Flashing cannot go ahead or failed; the message names the tool or probe and the fix."""


class Flasher(ABC):
    name: ClassVar[str]
    #: Keys of the profile's `flash:` mapping this flasher takes, with their types.
    option_keys: ClassVar[dict[str, type | tuple[type, ...]]] = {}
    #: Keys it cannot work without.
    required_keys: ClassVar[tuple[str, ...]] = ()

    def __init__(self, options: dict[str, Any]) -> None:
        for key, value in options.items():
            if key == "method":
                continue
            if key not in self.option_keys:
                known = ", ".join(sorted(self.option_keys)) or "none"
                raise FlashError(f"flash.{key}: unknown key for {self.name} (known: {known})")
            if not isinstance(value, self.option_keys[key]):
                raise FlashError(f"flash.{key}: expected {_type_name(self.option_keys[key])}")
        for key in self.required_keys:
            if key not in options:
                raise FlashError(f"flash.{key} is required by the {self.name} flasher")
        self.options = options

    @abstractmethod
    def check(self) -> None:
        """Raise FlashError when the tool is missing; called before building."""

    @abstractmethod
    def flash(self, image: Path) -> RunningFirmware | None:
        """Write `image`; emulators return the running image (its pty), boards None."""


class CommandFlasher(Flasher):
    """A flasher that runs a command-line tool."""

    tool: ClassVar[str]
    install_hint: ClassVar[str]

    def check(self) -> None:
        if shutil.which(self.tool) is None:
            raise FlashError(f"{self.tool} not found; install it ({self.install_hint})")

    @abstractmethod
    def command(self, image: Path) -> list[str]: ...

    def flash(self, image: Path) -> None:
        self.check()
        run_tool(self.command(image), self.tool)
        return None


def run_tool(command: Sequence[str], tool: str) -> None:
    done = subprocess.run(list(command), capture_output=True, text=True)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines() or ["no output"]
        raise FlashError(f"{tool} failed (exit {done.returncode}): {lines[-1]}")


def _type_name(expected: type | tuple[type, ...]) -> str:
    types = expected if isinstance(expected, tuple) else (expected,)
    return " or ".join(t.__name__ for t in types)


FLASHERS: dict[str, type[Flasher]] = {}


def register(cls: type[Flasher]) -> type[Flasher]:
    FLASHERS[cls.name] = cls
    return cls


def flasher_for(options: dict[str, Any]) -> Flasher:
    from . import flash_emulated, flash_esptool, flash_mass_storage, flash_openocd, flash_pyocd  # noqa: F401

    method = options.get("method")
    if method not in FLASHERS:
        raise FlashError(
            f"flash.method {method!r} is unknown; use one of {', '.join(sorted(FLASHERS))}"
        )
    return FLASHERS[method](options)

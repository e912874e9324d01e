"""Firmware ports by the name device profiles use: build an image for a model, start it.

A port turns the portable core plus one converted model into something a serial transport
can talk to. For the host-runnable ports (posix, qemu-mps2-an386) "start" means running the
image with its UART on a pty; a board's image is written by the profile's flasher instead.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar

from ..lab.emulator_process import StandInProcess
from .build import BuildError, cached_image, find_tool


class RunningFirmware(StandInProcess):
    """An image running in a local process whose UART is a pty; `resume()` lets it run once
    the host has the port open (ports that start halted so no early output is lost)."""

    @property
    def port(self) -> str:
        return self.address

    def resume(self) -> None:
        """Nothing to do for ports that run from the start."""


def port_after(marker: str) -> Callable[[str], str | None]:
    """A `ready` test for StandInProcess: the /dev path on the line holding `marker`."""

    def find(line: str) -> str | None:
        if marker in line and "/dev/" in line:
            return "/dev/" + line.split("/dev/", 1)[1].split()[0]
        return None

    return find


class FirmwarePort(ABC):
    """One firmware port under firmware_bridges/ports/: how its image is built and started."""

    name: ClassVar[str]
    #: Timings from this port are real (posix) or only functional (instruction-counted QEMU).
    timing_note: ClassVar[str]
    #: The port's folder under firmware_bridges/ports/, then folders it shares (cortex-m).
    source_dirs: ClassVar[tuple[Path, ...]]
    flags: ClassVar[tuple[str, ...]]
    image_name: ClassVar[str]
    compilers: ClassVar[tuple[str, ...]]
    install_hint: ClassVar[str]
    #: Programs `launch` needs besides the image (QEMU), checked before anything is built.
    launch_tools: ClassVar[tuple[str, ...]] = ()

    def check_launch(self) -> None:
        for tool in self.launch_tools:
            find_tool((tool,), self.install_hint)

    def build(self, model: Path, model_id: str) -> Path:
        """The image for `model` (built, or taken from the cache)."""
        return cached_image(
            self.name,
            model,
            model_id,
            self.source_dirs,
            self.flags,
            self.image_name,
            lambda: find_tool(self.compilers, self.install_hint),
        )

    @abstractmethod
    def launch(self, image: Path, activity: Path | None = None) -> RunningFirmware:
        """Start the image; `activity` receives its timestamp-pin edges where the port can
        report them (the virtual bench's activity file, for meter emulators)."""

    @contextlib.contextmanager
    def running(
        self, model: Path, model_id: str, activity: Path | None = None
    ) -> Iterator[RunningFirmware]:
        firmware = self.launch(self.build(model, model_id), activity)
        try:
            yield firmware
        finally:
            firmware.stop()


FIRMWARE_PORTS: dict[str, type[FirmwarePort]] = {}


def register(cls: type[FirmwarePort]) -> type[FirmwarePort]:
    FIRMWARE_PORTS[cls.name] = cls
    return cls


def firmware_port(name: str) -> FirmwarePort:
    from . import board_ports, posix_port, qemu_port  # noqa: F401  (register themselves)

    if name not in FIRMWARE_PORTS:
        raise BuildError(
            f"unknown firmware port {name!r}; known: {', '.join(sorted(FIRMWARE_PORTS))}"
        )
    return FIRMWARE_PORTS[name]()

"""Firmware ports by the name device profiles use: build an image for a model, start it.

A port turns the portable core plus one converted model into something a serial transport
can talk to. For the host-runnable ports (posix, qemu-mps2-an386) "start" means running the
image with its UART on a pty; real boards will be flashed instead (a later issue).
"""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, ClassVar

from .build import BuildError, cached_image, find_tool

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 5.0


class RunningFirmware:
    """An image running in a local process whose UART is a pty; `resume()` lets it run once
    the host has the port open (ports that start halted so no early output is lost)."""

    def __init__(self, process: subprocess.Popen, stderr: IO[bytes], port: str) -> None:
        self.process = process
        self._stderr = stderr
        self.port = port

    def resume(self) -> None:
        """Nothing to do for ports that run from the start."""

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def stderr_text(self) -> str:
        with contextlib.suppress(ValueError):
            self._stderr.seek(0)
            return self._stderr.read().decode(errors="replace")
        return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdin, self.process.stdout, self._stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


def spawn_and_find_port(
    argv: Sequence[str], marker: str, what: str, *, stdin: int | None = None
) -> tuple[subprocess.Popen, IO[bytes], str]:
    """Start `argv` and read its stdout until a line holding `marker` then a /dev path."""
    stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed by RunningFirmware.stop)
    process = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE, stderr=stderr)
    assert process.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT_S
    text = b""
    try:
        while True:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([process.stdout], [], [], max(0.0, left))
            chunk = os.read(process.stdout.fileno(), 4096) if ready else b""
            text += chunk
            for line in text.decode(errors="replace").splitlines():
                if marker in line and "/dev/" in line:
                    path = "/dev/" + line.split("/dev/", 1)[1].split()[0]
                    return process, stderr, path
            if not ready or not chunk:
                stderr.seek(0)
                detail = (
                    stderr.read().decode(errors="replace").strip()
                    or text.decode(errors="replace").strip()
                )
                raise BuildError(f"{what} did not report its serial port: {detail[-300:]}")
    except BaseException:
        process.kill()
        process.wait()
        stderr.close()
        raise


class FirmwarePort(ABC):
    """One firmware port under firmware_bridges/ports/: how its image is built and started."""

    name: ClassVar[str]
    #: Timings from this port are real (posix) or only functional (instruction-counted QEMU).
    timing_note: ClassVar[str]
    source_dir: ClassVar[Path]
    flags: ClassVar[tuple[str, ...]]
    image_name: ClassVar[str]
    compilers: ClassVar[tuple[str, ...]]
    install_hint: ClassVar[str]

    def build(self, model: Path, model_id: str) -> Path:
        """The image for `model` (built, or taken from the cache)."""
        return cached_image(
            self.name,
            model,
            model_id,
            self.source_dir,
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
    from . import posix_port, qemu_port  # noqa: F401  (register themselves)

    if name not in FIRMWARE_PORTS:
        raise BuildError(
            f"unknown firmware port {name!r}; known: {', '.join(sorted(FIRMWARE_PORTS))}"
        )
    return FIRMWARE_PORTS[name]()

"""The POSIX port: the firmware compiled for this host, its UART a pty. Timings are the host
CPU's, so they say nothing about a microcontroller; the port exists to run the real C command
handling and kernels against the real host transport."""

from __future__ import annotations

from pathlib import Path

from .build import COMMON_FLAGS, PORTS, BuildError
from .ports import FirmwarePort, RunningFirmware, port_after, register

SOURCE_DIR = PORTS / "posix"


@register
class PosixPort(FirmwarePort):
    name = "posix"
    timing_note = "host CPU timing (not a microcontroller's)"
    source_dirs = (SOURCE_DIR,)
    flags = (*COMMON_FLAGS, "-pedantic")
    image_name = "eb-posix-bridge"
    compilers = ("cc", "gcc", "clang")
    install_hint = "apt-get install gcc"

    def launch(self, image: Path, activity: Path | None = None) -> RunningFirmware:
        argv = [str(image)] + (["--activity", str(activity)] if activity else [])
        return RunningFirmware(argv, "the POSIX firmware", port_after("port "), error=BuildError)

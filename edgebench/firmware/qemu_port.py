"""The Cortex-M4 port (MPS2 AN386) run under QEMU: the same C, cross-compiled with Debian's
arm-none-eabi-gcc and newlib, booted by qemu-system-arm with its UART0 on a pty.

QEMU starts halted (-S): output sent while nobody has the pty open is dropped, so the host
opens the port first and then calls resume(), which tells QEMU's monitor to continue. With
-icount shift=0 one emulated instruction is one nanosecond, so the device's microsecond
timer is deterministic run after run; it counts instructions, not a real chip's cycles, and
results say so.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from .board_ports import ARM_INSTALL_HINT, CortexM4Port
from .build import PORTS, BuildError, find_tool
from .ports import RunningFirmware, port_after, register

SOURCE_DIR = PORTS / "mps2-an386"


class QemuFirmware(RunningFirmware):
    def resume(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(b"cont\n")
        self.process.stdin.flush()


@register
class QemuMps2Port(CortexM4Port):
    name = "qemu-mps2-an386"
    timing_note = "QEMU instruction count (-icount shift=0): functional, not a chip's timing"
    folder = SOURCE_DIR
    install_hint = f"{ARM_INSTALL_HINT} qemu-system-arm"
    launch_tools = ("qemu-system-arm",)

    def launch(self, image: Path, activity: Path | None = None) -> RunningFirmware:
        if activity is not None:
            raise BuildError(
                "the QEMU port cannot report its timestamp pin to a meter emulator; "
                "use the posix port (or a real board) for energy runs"
            )
        qemu = find_tool(self.launch_tools, self.install_hint)
        # The monitor is on stdin/stdout (-nographic); the UART on a pty; halted until resume.
        argv = [qemu, "-M", "mps2-an386", "-nographic", "-kernel", str(image)]
        argv += ["-serial", "pty", "-S", "-icount", "shift=0"]
        return QemuFirmware(
            argv,
            "QEMU",
            port_after("char device redirected to"),
            stdin=subprocess.PIPE,
            error=BuildError,
        )

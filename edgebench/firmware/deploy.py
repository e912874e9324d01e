"""Deploying to a microcontroller: build the benchmark's model into firmware, flash it, and
check that the firmware answering is the image just built.

On a Linux board deploying is a file copy; here it is an image, and the usual failure is a
board still running the image of last week's model. So every image carries its model's
sha256 and a build id (the cache key of its inputs), firmware offering the `eb-info`
extension reports both, and a mismatch stops the run with both sides named.

A profile's `firmware:` section names the port: one of firmware_bridges' ports (posix,
qemu-mps2-an386), built by edgebench, or a vendor port built by the profile's
`build_command:` (make / CMake / west / platformio) from the generated model source. Its
`flash:` section names the flasher (flasher.py).
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..devices.base import DeviceError
from ..devices.serial_dut import Dut
from ..protocol import tiny_replies as rp
from ..suite.benchmarks import sha256_file
from .build import CORE, FIRMWARE_ROOT, BuildError, build_key, cache_root, find_tool, write_source
from .flash_emulated import EmulatedFlasher
from .flasher import Flasher, FlashError, flasher_for
from .model_to_c import ConversionError, convert, render_c
from .ports import FIRMWARE_PORTS, FirmwarePort, RunningFirmware, firmware_port

EB_INFO = "eb-info"
FIRMWARE_KEYS: dict[str, type] = {"port": str, "build_command": str, "image": str, "compiler": str}
PLACEHOLDERS = ("model_source", "model_id", "out_dir", "build_id", "core_dir", "firmware_root")
_INFO_LINE = re.compile(r"m-eb-(model|model-sha256|build)-\[([^\]]*)\]")


class DeployError(DeviceError):
    """The image cannot be built, flashed or verified; the message names the fix."""


@dataclass
class DeployRecord:
    """Which image was put on the device, as results record it."""

    port: str
    flash_method: str
    model_id: str
    model_sha256: str
    build_id: str
    image: str
    image_sha256: str
    image_bytes: int
    flash_bytes: int | None  # text + data, from `size` where the toolchain has it
    ram_bytes: int | None  # data + bss
    toolchain: str | None  # first line of `<compiler> --version`
    timing_note: str | None  # what the device's timer counts, when it is not a real chip's

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ImageInfo:
    """What firmware with the `eb-info` extension says it was built from."""

    model_id: str | None
    model_sha256: str | None
    build_id: str | None


class Deployer:
    """Build, flash and verify for one device profile's `firmware:` and `flash:` sections."""

    def __init__(self, device: str, firmware: dict[str, Any], flash: dict[str, Any]) -> None:
        self.device = device
        for key, value in firmware.items():
            if key not in FIRMWARE_KEYS:
                raise DeployError(
                    f"{device}: firmware.{key} is not a known key "
                    f"(known: {', '.join(sorted(FIRMWARE_KEYS))})"
                )
            if not isinstance(value, FIRMWARE_KEYS[key]):
                raise DeployError(f"{device}: firmware.{key} must be a string")
        if "port" not in firmware:
            raise DeployError(f"{device}: firmware.port is required (posix, qemu-mps2-an386, ...)")
        self.port_name = str(firmware["port"])
        self.build_command: str | None = firmware.get("build_command")
        self.image_name: str | None = firmware.get("image")
        self.compiler_name: str | None = firmware.get("compiler")
        firmware_port("posix")  # fills the registry of built-in ports
        self.builtin: FirmwarePort | None = None
        if self.port_name in FIRMWARE_PORTS:
            if self.build_command or self.image_name:
                raise DeployError(
                    f"{device}: firmware.build_command/image are for vendor ports; "
                    f"{self.port_name!r} is built by edgebench, drop them"
                )
            self.builtin = firmware_port(self.port_name)
        elif not (self.build_command and self.image_name):
            raise DeployError(
                f"{device}: firmware.port {self.port_name!r} is not one of "
                f"{', '.join(sorted(FIRMWARE_PORTS))}; a vendor port needs "
                f"firmware.build_command and firmware.image"
            )
        if not flash:
            raise DeployError(f"{device}: the profile has `firmware:` but no `flash:` section")
        try:
            self.flasher: Flasher = flasher_for(flash)
        except FlashError as error:
            raise DeployError(f"{device}: {error}") from None
        self.flash_method = str(flash["method"])

    @property
    def emulated(self) -> bool:
        """The flasher starts the image on this host: nothing persists to verify later."""
        return isinstance(self.flasher, EmulatedFlasher)

    # --- tools ----------------------------------------------------------------------------

    def compiler(self) -> str | None:
        """The compiler's path (its version is recorded); None for a vendor build that did
        not name one."""
        if self.builtin is not None:
            return self._tool(self.builtin.compilers, self.builtin.install_hint)
        if self.compiler_name:
            return self._tool((self.compiler_name,), "see the board vendor's SDK instructions")
        return None

    def _tool(self, names: tuple[str, ...], hint: str) -> str:
        try:
            return find_tool(names, hint)
        except BuildError as error:
            raise DeployError(f"{self.device}: {error}") from None

    def check_tools(self) -> str | None:
        """Compiler and flasher present, checked before anything is built or written."""
        compiler = self.compiler()
        try:
            self.flasher.check()
            if isinstance(self.flasher, EmulatedFlasher):
                firmware_port(self.flasher.port_name).check_launch()
        except (FlashError, BuildError) as error:
            raise DeployError(f"{self.device}: {error}") from None
        return compiler

    # --- build ----------------------------------------------------------------------------

    def build(self, model: Path, model_id: str) -> DeployRecord:
        compiler = self.check_tools()
        try:
            if self.builtin is not None:
                image = self.builtin.build(model, model_id)
                # cached_image names its directory <prefix>-<model id>-<key>; the key is
                # the -DEB_BUILD_ID the image reports
                build_id = image.parent.name.rsplit("-", 1)[1]
            else:
                image, build_id = self._vendor_build(model, model_id)
        except (BuildError, ConversionError) as error:
            raise DeployError(f"{self.device}: {error}") from None
        flash_bytes, ram_bytes = image_sizes(image, compiler)
        return DeployRecord(
            port=self.port_name,
            flash_method=self.flash_method,
            model_id=model_id,
            model_sha256=sha256_file(model),
            build_id=build_id,
            image=str(image),
            image_sha256=sha256_file(image),
            image_bytes=image.stat().st_size,
            flash_bytes=flash_bytes,
            ram_bytes=ram_bytes,
            toolchain=toolchain_version(compiler),
            timing_note=self.builtin.timing_note if self.builtin is not None else None,
        )

    def _vendor_build(self, model: Path, model_id: str) -> tuple[Path, str]:
        """Run the profile's build command in a directory keyed like edgebench's own builds.

        The vendor's build system decides what to rebuild, so the command always runs; the
        key (model source, command, model id, edgebench version) is the build id."""
        assert self.build_command is not None and self.image_name is not None
        source = render_c(convert(model.read_bytes(), model_id))
        build_id = build_key(model_id, source, self.build_command)
        out_dir = cache_root() / f"{self.port_name}-{model_id}-{build_id}"
        model_source = write_source(out_dir, source)
        values = {
            "model_source": model_source,
            "model_id": model_id,
            "out_dir": out_dir,
            "build_id": build_id,
            "core_dir": CORE,
            "firmware_root": FIRMWARE_ROOT,
        }
        try:
            command = self.build_command.format(
                **{key: shlex.quote(str(value)) for key, value in values.items()}
            )
        except (KeyError, IndexError, ValueError) as error:
            raise DeployError(
                f"{self.device}: firmware.build_command has an unknown placeholder ({error}); "
                f"use {', '.join('{' + p + '}' for p in PLACEHOLDERS)}"
            ) from None
        image = out_dir / self.image_name
        image.unlink(missing_ok=True)  # a failed build must not leave last time's image
        done = subprocess.run(
            command, shell=True, cwd=out_dir, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            lines = (done.stderr or done.stdout).strip().splitlines() or ["no output"]
            raise DeployError(
                f"{self.device}: firmware.build_command failed (exit {done.returncode}): "
                f"{lines[-1]}"
            )
        if not image.is_file():
            raise DeployError(
                f"{self.device}: the build produced no {image}; set firmware.image to the "
                f"image's path relative to {{out_dir}}"
            )
        return image, build_id

    # --- flash ----------------------------------------------------------------------------

    def flash(self, record: DeployRecord) -> RunningFirmware | None:
        """Write the image; emulated ports hand back the running image (its pty)."""
        try:
            return self.flasher.flash(Path(record.image))
        except (FlashError, BuildError) as error:
            raise DeployError(f"{self.device}: {error}") from None


def toolchain_version(compiler: str | None) -> str | None:
    if compiler is None:
        return None
    done = subprocess.run([compiler, "--version"], capture_output=True, text=True, check=False)
    lines = done.stdout.strip().splitlines()
    return lines[0] if done.returncode == 0 and lines else None


def image_sizes(image: Path, compiler: str | None) -> tuple[int | None, int | None]:
    """(flash, RAM) bytes from binutils' `size` (Berkeley format: text data bss ...), using
    the toolchain's own `size` (arm-none-eabi-size next to arm-none-eabi-gcc)."""
    name = Path(compiler).name if compiler else ""
    tool = shutil.which(name[: -len("gcc")] + "size" if name.endswith("gcc") else "size")
    if tool is None:
        return None, None
    done = subprocess.run([tool, str(image)], capture_output=True, text=True, check=False)
    rows = done.stdout.strip().splitlines()
    if done.returncode != 0 or len(rows) < 2:
        return None, None
    text, data, bss = (int(v) for v in rows[1].split()[:3])
    return text + data, data + bss


# --- verify -------------------------------------------------------------------------------


def read_image_info(dut: Dut) -> ImageInfo | None:
    """`eb-info%` where the firmware announced it; None for firmware without it."""
    if EB_INFO not in dut.identity.extensions.tokens:
        return None
    fields: dict[str, str] = {}
    for reply in dut.link.command(EB_INFO, dut.timeout):
        if reply.kind == rp.ERROR:
            raise DeployError(f"the DUT refused `{EB_INFO}%`: e-[{reply.value}]")
        # behind an interface board the line is still `[dut]: ...`; value holds it without
        text = reply.value if reply.kind == rp.TEXT else reply.text
        found = _INFO_LINE.fullmatch(text)
        if found:
            fields[found.group(1)] = found.group(2)
    return ImageInfo(fields.get("model"), fields.get("model-sha256"), fields.get("build"))


def verify_image(
    info: ImageInfo | None,
    model_sha256: str,
    build_id: str | None,
    where: str,
    fix: str,
) -> dict[str, Any]:
    """The image check results record; raises when the firmware is not the expected image.

    `build_id` is None when nothing was built now (a board run without --deploy): then only
    the model is compared, and the build id the firmware reports is recorded."""
    if info is None:
        return {
            "verified": False,
            "warning": f"the firmware on {where} has no {EB_INFO} extension: edgebench could "
            f"not verify which image it runs (only its model id)",
        }
    if info.model_sha256 != model_sha256:
        raise DeployError(
            f"the firmware on {where} was built from model sha256 {_short(info.model_sha256)} "
            f"(build {info.build_id}), the benchmark's model is {_short(model_sha256)}; {fix}"
        )
    if build_id is not None and info.build_id != build_id:
        raise DeployError(
            f"the firmware on {where} is build {info.build_id}, not build {build_id} just "
            f"made; {fix}"
        )
    return {"verified": True, "model_sha256": info.model_sha256, "build_id": info.build_id}


def _short(sha: str | None) -> str:
    return f"{sha[:16]}..." if sha else "(not reported)"

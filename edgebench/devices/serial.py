"""Microcontrollers over a UART, speaking MLPerf Tiny's command set (transport `serial`).

The DUT runs firmware written for MLPerf Tiny (or edgebench's bridge of the same protocol):
it times its own inferences and reports them; this side only loads inputs, asks for windows
of N inferences and reads the replies. The model is flashed, not deployed: `deploy()` checks
that the model id the firmware reports is the one the benchmark needs, and refuses otherwise.

Profile keys: `port` (a path, or `virtual` to start edgebench's virtual MCU for the
benchmark's model), or `usb` ("VID:PID") and `serial_number` to find the port; `baud`
(115200); `interface` (none | io-manager | mlc-interface) when the DUT sits behind an
interface board; `boot_timeout` (s to wait out a board that resets when the port opens) and
`timeout` (s per command, as MLPerf Tiny's runner: 5); `firmware:` and `flash:` to build and
flash the benchmark's model into firmware (firmware/deploy.py; docs/deploy.md): emulated
ports without a `port:` are built and started by every deploy(), boards only with --deploy
(`flash_on_deploy`), otherwise the image they run is verified.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..protocol import tiny_commands as cmd
from ..protocol.tiny_models import TinyModel
from .base import Device, DeviceError, EventHandler, RunRecord, SystemInfo
from .registry import register
from .serial_dut import Dut, DutIdentity, InferResult
from .serial_link import BOOT_QUIET_S, INTERFACES, DutLink, DutLog, DutReset
from .serial_port import find_port, open_port

if TYPE_CHECKING:
    from ..firmware.deploy import Deployer, DeployRecord

DEFAULT_BAUD = 115200
VIRTUAL = "virtual"
WINDOWS_FILE = "windows.jsonl"
LOG_FILE = "dut_log.txt"
FLASH_SETTLE_S = 10.0  # longest a flashed board takes to come back, beyond boot_timeout
FLASH_RETRY_S = 0.2


@register
class SerialDevice(Device):
    """A DUT on a serial port, directly or behind an interface board."""

    transport = "serial"
    profile_keys: ClassVar[dict[str, type | tuple[type, ...]]] = {
        "port": str,
        "usb": str,
        "serial_number": str,
        "baud": int,
        "interface": str,
        "boot_timeout": (int, float),
        "timeout": (int, float),
        "firmware": dict,
        "flash": dict,
    }

    def __init__(self, profile: dict[str, Any]) -> None:
        super().__init__(profile)
        self.baud = int(profile.get("baud") or DEFAULT_BAUD)
        self.interface = str(profile.get("interface") or "none")
        if self.interface not in INTERFACES:
            raise DeviceError(
                f"{self.name}: interface {self.interface!r} is unknown; use one of "
                f"{', '.join(INTERFACES)}"
            )
        self.boot_timeout = float(profile.get("boot_timeout", 2.0))
        self.timeout = float(profile.get("timeout", 5.0))
        self.virtual = profile.get("port") == VIRTUAL
        self.log = DutLog()
        self.dut: Dut | None = None
        self.port_path: str | None = None
        self.expected: TinyModel | None = None
        self.timing = "performance"
        self._virtual = ExitStack()
        self._running: tuple[Path, TinyModel] | None = None  # what the virtual MCU runs
        self._wire: np.ndarray | None = None
        self.deployer: Deployer | None = None
        if profile.get("firmware") is not None:
            from ..firmware.deploy import Deployer  # the C toolchain side, only when used

            self.deployer = Deployer(self.name, profile["firmware"], profile.get("flash") or {})
        elif profile.get("flash") is not None:
            raise DeviceError(
                f"{self.name}: `flash:` needs a `firmware:` section naming the port to build"
            )
        self.flash_on_deploy = False  # --deploy: build and flash a board before running
        self.deployment: DeployRecord | None = None  # the image flashed by this process
        self.image_check: dict[str, Any] | None = None

    # --- connection ---------------------------------------------------------------------

    def open(self) -> None:
        """Connect and identify a real DUT now; a virtual one, and firmware that deploy()
        builds and flashes, come up in deploy()."""
        if not self.starts_in_deploy:
            self._connect(self._port_path())

    @property
    def starts_in_deploy(self) -> bool:
        """The DUT comes up in deploy(): a virtual MCU, emulated firmware without a
        persistent `port:` (nothing to verify: built and started for every benchmark), or a
        board being flashed because it was asked to (--deploy)."""
        if self.virtual:
            return True
        if self.deployer is None:
            return False
        return self.flash_on_deploy or (self.deployer.emulated and not self.profile.get("port"))

    def _port_path(self) -> str:
        port = self.profile.get("port")
        if port:
            return str(port)
        if self.profile.get("usb") or self.profile.get("serial_number"):
            return find_port(self.profile.get("usb"), self.profile.get("serial_number"))
        raise DeviceError(
            f"{self.name}: the profile names no serial port; set `port:` (e.g. /dev/ttyACM0), "
            f"`usb:` (VID:PID) or `port: virtual`"
        )

    def _connect(self, path: str, after_open: Callable[[], None] | None = None) -> None:
        """Open and identify; `after_open` runs in between (QEMU starts halted and must only
        run once the port is open, or its banner is lost)."""
        self._disconnect()
        self.port_path = path
        link = DutLink(open_port(path, self.baud), self.interface, self.log)
        self.dut = Dut(link, self.timeout)
        try:
            if after_open is not None:
                after_open()
            self.dut.identify(self.boot_timeout)
        except BaseException:
            self._disconnect()
            raise

    def _disconnect(self) -> None:
        if self.dut is not None:
            self.dut.link.close()
            self.dut = None

    def close(self) -> None:
        self._disconnect()
        self._virtual.close()
        self._running = None

    @property
    def identity(self) -> DutIdentity:
        return self.dut.identity if self.dut else DutIdentity()

    def describe(self) -> SystemInfo:
        return SystemInfo(
            {
                "transport": self.transport,
                "port": self.port_path or self.profile.get("port"),
                "baud": self.baud,
                "interface": self.interface,
                "virtual": self.virtual,
                "dut_name": self.identity.name,
                "dut_profile": self.identity.profile,
                "model_id": self.identity.model,
                "timestamp_mode": self.identity.timestamp_mode,
                "extensions": self.identity.extensions.to_list(),
                "deploy": self.deployment.to_dict() if self.deployment else None,
                "image_check": self.image_check,
                "timing_note": self.deployment.timing_note if self.deployment else None,
            }
        )

    # --- deploy -------------------------------------------------------------------------

    def expect(self, model: TinyModel, timing: str = "performance") -> None:
        """The model id deploy() must find, and the timing (performance | energy) wanted."""
        self.expected = model
        self.timing = timing

    def deploy(self, model: Path, samples: Path | None) -> None:
        if self.expected is None:
            raise DeviceError("deploy() before expect(): the model id to check is unknown")
        if self.virtual and (self.dut is None or self._running != (model, self.expected)):
            self._start_virtual(model)  # a virtual MCU is "flashed" by starting it anew
        elif self.deployer and self.starts_in_deploy and self._running != (model, self.expected):
            self._flash(model)
        elif self.dut is None:
            self.open()
        reported = self.identity.model
        if reported is None:
            raise DeviceError(
                f"{self.name}: the DUT on {self.port_path} reports no model id (no "
                f"m-model-[...] after profile%), so edgebench cannot check it runs "
                f"{self.expected.model_id}; use firmware whose profile% prints it, as MLPerf "
                f"Tiny's current API does"
            )
        if reported != self.expected.model_id:
            raise DeviceError(
                f"{self.name}: the DUT on {self.port_path} runs model {reported!r}, but "
                f"{self.expected.benchmark} needs {self.expected.model_id!r}; {self._reflash_fix}"
            )
        self._check_image(model)
        self._require().set_timing(self.timing)
        self._wire = _wire_samples(samples) if samples is not None else None

    @property
    def _reflash_fix(self) -> str:
        assert self.expected is not None
        if self.deployer is not None:
            return "run with --deploy (or `edgebench deploy`) to build and flash it"
        return f"flash the {self.expected.model_id} firmware or pick the benchmark it runs"

    def _flash(self, model: Path) -> None:
        """Build (cached), flash, connect; an emulated image runs until close()."""
        from ..firmware.deploy import DeployError

        assert self.deployer is not None and self.expected is not None
        self.deployment = None
        record = self.deployer.build(model, self.expected.model_id)  # checks tools first
        self._disconnect()  # a board's flasher may need the port (esptool)
        self._virtual.close()
        running = self.deployer.flash(record)
        if running is not None:
            self._virtual.callback(running.stop)
            try:
                self._connect(running.port, running.resume)
            except DeviceError as error:
                raise DeployError(f"{self.name}: {error} ({running.stderr_tail()})") from None
        else:
            self._connect_flashed_board(record.build_id)
        self.deployment = record
        self._running = (model, self.expected)

    def _connect_flashed_board(self, build_id: str) -> None:
        """A board resets after flashing: its USB port may be gone for a moment, and until it
        has rebooted the old image may still answer. Reconnect until the new build answers
        (firmware without eb-info: until anything answers); _check_image judges the rest."""
        from ..firmware.deploy import read_image_info

        deadline = time.monotonic() + self.boot_timeout + FLASH_SETTLE_S
        while True:
            try:
                self._connect(self._port_path())
                info = read_image_info(self._require())
                if info is None or info.build_id == build_id or time.monotonic() > deadline:
                    return
            except (DeviceError, OSError):  # OSError: the port vanished under pyserial
                if time.monotonic() > deadline:
                    raise
            time.sleep(FLASH_RETRY_S)

    def _check_image(self, model: Path) -> None:
        """Is the firmware the image just flashed (or, unflashed, built from this model)?"""
        from ..firmware.deploy import read_image_info, verify_image
        from ..suite.benchmarks import sha256_file

        build_id = self.deployment.build_id if self.deployment else None
        self.image_check = verify_image(
            read_image_info(self._require()),
            sha256_file(model),
            build_id,
            f"{self.name} ({self.port_path})",
            self._reflash_fix,
        )

    def _start_virtual(self, model: Path) -> None:
        # The lab stand-in, imported only for `port: virtual`. It writes the virtual bench's
        # activity file where virtual meters read it ($EDGEBENCH_ACTIVITY), when that is set.
        from ..lab.emulator_process import ACTIVITY_ENV
        from ..lab.virtual_mcu.errors import VirtualMcuError
        from ..lab.virtual_mcu.launcher import VirtualMcu

        assert self.expected is not None
        self._disconnect()
        self._virtual.close()
        try:
            mcu = self._virtual.enter_context(
                VirtualMcu.start(
                    model,
                    self.expected.model_id,
                    baud=self.baud,
                    timing=self.timing,
                    activity=os.environ.get(ACTIVITY_ENV),
                )
            )
        except VirtualMcuError as error:
            raise DeviceError(f"{self.name}: {error}") from None
        self._connect(str(mcu.port))
        self._running = (model, self.expected)

    # --- running ------------------------------------------------------------------------

    @property
    def framing(self) -> cmd.Framing:
        return cmd.choose_framing(self.identity.extensions, self.interface != "none")

    def wire_sample(self, index: int) -> bytes:
        if self._wire is None or self.expected is None:
            raise DeviceError("no evaluation samples deployed; deploy() a benchmark with data")
        return self.expected.to_wire(self._wire[index])

    def _require(self) -> Dut:
        if self.dut is None:
            raise DeviceError(f"{self.name}: not connected; deploy() first")
        return self.dut

    def load(self, index: int) -> tuple[int, int]:
        """Load sample `index` into the DUT; (payload bytes, characters sent)."""
        data = self.wire_sample(index)
        self.log.note(f"load sample {index} ({len(data)} B, {self.framing.name})")
        return len(data), self._require().load(data, self.framing)

    def set_timing(self, timing: str) -> bool:
        """Switch performance / energy timing now; False if the firmware cannot."""
        return self._require().set_timing(timing)

    def infer(self, iterations: int, warmups: int, timeout: float) -> InferResult:
        return self._require().infer(iterations, warmups, timeout)

    def run(self, plan: dict[str, Any], outdir: Path, on_event: EventHandler) -> RunRecord:
        """Each window: load its sample, `infer N W`; a line per window in windows.jsonl.

        The record says `complete`, `reset` (the DUT rebooted: windows so far kept),
        `interrupted` (Ctrl-C, re-raised) or `failed` (the error), never nothing.
        """
        windows = list(plan["windows"])
        outdir.mkdir(parents=True, exist_ok=True)
        self.log.attach(outdir / LOG_FILE)
        self.log.note(f"run {plan.get('mode')} {len(windows)} windows")
        record: dict[str, Any] = {"status": "running", "plan": plan, "windows": 0}
        totals = {"payload_bytes": 0, "wire_bytes": 0}
        try:
            with open(outdir / WINDOWS_FILE, "a") as out:
                for number, window in enumerate(windows):
                    on_event({"event": "phase", "phase": f"window {number + 1}/{len(windows)}"})
                    payload, wire = self.load(int(window["sample"]))
                    totals["payload_bytes"] += payload
                    totals["wire_bytes"] += wire
                    self.log.note(f"window {number} sample {window['sample']}")
                    result = self.infer(
                        int(window["iterations"]), int(window["warmups"]), plan["timeout_s"]
                    )
                    out.write(json.dumps({"window": number, **window, **result.to_dict()}) + "\n")
                    out.flush()
                    record["windows"] = number + 1
                    progress = {"queries": number + 1, "expected_queries": len(windows)}
                    on_event({"event": "progress", **progress})
            record["status"] = "complete"
        except DutReset as error:
            record.update(status="reset", error=str(error))
            self.log.note(f"reset: {error}")
            self._recover()
        except KeyboardInterrupt:
            record.update(status="interrupted", error="interrupted (Ctrl-C)")
            raise
        except DeviceError as error:
            record.update(status="failed", error=str(error))
        finally:
            record["load"] = {**totals, "framing": self.framing.name}
            (outdir / "record.json").write_text(json.dumps(record, indent=2) + "\n")
            self.log.detach()
        return RunRecord(outdir, record)

    def _recover(self) -> None:
        """After a reset: let the boot finish and identify again, so the next run can start."""
        try:
            dut = self._require()
            dut.link.drain(BOOT_QUIET_S, self.boot_timeout)
            dut.identify(self.boot_timeout)
        except DeviceError as error:
            self.log.note(f"not recovered after the reset: {error}")


def _wire_samples(path: Path) -> np.ndarray:
    """What travels to the DUT per sample: raw float windows (`wire`) where the set has
    them (ad01), else the int8 inputs (`x`)."""
    if not path.is_file():
        raise DeviceError(f"evaluation set {path} does not exist; check the path")
    with np.load(path) as data:
        return data["wire"] if "wire" in data.files else data["x"]

"""`edgebench devices check NAME`: is this device ready to benchmark, and if not, what to fix.

A bench session usually fails on set-up, not on measurement: a host key never accepted, a
venv without the runtime, a full SD card. This walks the same path a run takes (profile,
connect, describe, runtime, disk, clock channel) and stops at the first blocking problem with
the message a run would give, so the fix is known before a sweep is started.
"""

from __future__ import annotations

import argparse
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.table import Table

from ..devices.base import Device, DeviceError
from ..devices.profiles import load_profile, open_device
from ..devices.serial import SerialDevice
from ..firmware.deploy import EB_INFO, read_image_info, toolchain_version
from ..protocol.tiny_models import model_for_benchmark
from ..suite.benchmarks import get_benchmark
from .render import print_json, stdout

LOW_DISK_BYTES = 64 << 20


def add_check_parser(subparsers: Any) -> None:
    """Register `check` under `edgebench devices` (whose own handler still lists profiles)."""
    check = subparsers.add_parser(
        "check",
        help="check a device: reachability, auth, python, runtime, disk, clock round trip",
    )
    check.add_argument("device", help="device profile name or YAML path")
    check.add_argument(
        "--trust-new-host-key",
        action="store_true",
        help="accept and record the host key of a device seen for the first time "
        "(a changed key is still refused)",
    )
    check.add_argument("--json", action="store_true", help="print the checks as JSON")
    check.set_defaults(handler=check_command)


class Checks:
    """Rows of (check, status, detail); status is ok, warn or FAIL."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def add(self, name: str, status: str, detail: str, seconds: float | None = None) -> None:
        self.rows.append({"check": name, "status": status, "detail": detail, "seconds": seconds})

    def step(self, name: str, action: Callable[[], tuple[str, str]]) -> bool:
        """Run one check; a DeviceError is a FAIL row (and the caller stops)."""
        started = time.perf_counter()
        try:
            status, detail = action()
        except DeviceError as error:
            self.add(name, "FAIL", str(error), time.perf_counter() - started)
            return False
        self.add(name, status, detail, time.perf_counter() - started)
        return status != "FAIL"

    @property
    def failed(self) -> bool:
        return any(row["status"] == "FAIL" for row in self.rows)


def _runtime_row(device: Device, system: dict[str, Any]) -> tuple[str, str]:
    probe = getattr(device, "probe", None)
    if probe is not None:
        from ..devices.ssh_runtime import summary

        device.require_runtime(str(device.profile.get("runtime") or "auto"))  # type: ignore[attr-defined]
        return "ok", summary(probe())
    packages = {p["name"]: p["version"] for p in system.get("packages", [])}
    if not ({"ai-edge-litert", "tflite-runtime"} & set(packages)):
        return "FAIL", "no TFLite runtime: pip install ai-edge-litert"
    return "ok", ", ".join(f"{k} {v}" for k, v in packages.items())


def _loadgen_row(device: Device, system: dict[str, Any]) -> tuple[str, str]:
    probe = getattr(device, "probe", None)
    if probe is not None:
        state = probe()["imports"].get("mlperf_loadgen", {})
        present = bool(state.get("ok"))
    else:
        present = any(p["name"] == "mlcommons-loadgen" for p in system.get("packages", []))
    if present:
        return "ok", "mlperf_loadgen importable: runs write genuine LoadGen logs"
    return "warn", (
        "mlperf_loadgen not importable: the native loop runs instead "
        "(pip install mlcommons-loadgen on the device for LoadGen logs)"
    )


def _disk_row(device: Device) -> tuple[str, str]:
    free_space = getattr(device, "free_space", None)
    free = free_space() if free_space is not None else shutil.disk_usage(Path.cwd()).free
    where = getattr(device, "workdir", str(Path.cwd()))
    status = "warn" if free < LOW_DISK_BYTES else "ok"
    return status, f"{free / (1 << 20):.0f} MiB free in {where}"


def _clock_row(device: Device) -> tuple[str, str]:
    """One clock anchor the way a run takes it (the estimator is metrics.clock_mapping's)."""
    measure = getattr(device, "measure_clock", None)
    if measure is None:
        return "ok", "no clock mapping for this transport (windows come from meter marks)"
    try:
        anchor = measure()
    except (OSError, RuntimeError) as error:
        return "warn", f"clock round trips failed: {error}"
    if anchor.same_clock:
        return "ok", "same clock as the host"
    return "ok", (
        f"offset {anchor.offset_ns / 1e6:+.3f} ms +/- {anchor.bound_ns / 1e3:.0f} us, "
        f"best round trip {(anchor.best_round_trip_ns or 0) / 1e3:.0f} us over {anchor.rounds}"
    )


def serial_steps(device: SerialDevice) -> list[tuple[str, Callable[[], tuple[str, str]]]]:
    """A UART DUT: toolchain (profiles that build firmware), port, identity, extensions.

    A profile whose firmware is built and started per run has no port until then, so the
    check boots the cheapest bundled model's image (ad) to see the whole path answer."""

    def toolchain() -> tuple[str, str]:
        assert device.deployer is not None
        compiler = device.deployer.check_tools()
        version = toolchain_version(compiler) or "no compiler named (vendor build)"
        return "ok", f"{version}; flash method {device.deployer.flash_method} ready"

    def connect() -> tuple[str, str]:
        if device.starts_in_deploy:
            benchmark = get_benchmark("ad")
            device.expect(model_for_benchmark("ad"))
            device.deploy(benchmark.model_path, None)
            what = "built and started the eb-ad image" if device.deployment else "started eb-ad"
            return "ok", f"{what}; its UART is {device.port_path}"
        device.open()
        return "ok", f"{device.port_path} opened at {device.baud} baud"

    def identify() -> tuple[str, str]:
        who = device.identity
        if who.model is None:
            return "warn", f"{who.name}: profile% reports no model id (m-model-[...])"
        return "ok", f"{who.name}, profile {who.profile}, model {who.model}"

    def extensions() -> tuple[str, str]:
        tokens = device.identity.extensions.tokens
        listed = ", ".join(device.identity.extensions.to_list()) or "none"
        if EB_INFO not in tokens:
            return "warn", f"{listed}: no eb-info, so runs cannot verify the flashed image"
        info = read_image_info(device._require())
        assert info is not None
        return "ok", f"{listed}; image: model sha256 {info.model_sha256}, build {info.build_id}"

    steps = [("toolchain", toolchain)] if device.deployer is not None else []
    return [*steps, ("connect", connect), ("identify", identify), ("extensions", extensions)]


def run_checks(device: Device, checks: Checks) -> None:
    """Each check depends on the one before; stop at the first that fails."""
    state: dict[str, Any] = {}

    def connect() -> tuple[str, str]:
        device.open()
        if device.transport == "ssh":
            return "ok", f"{device.label}: host key verified, authenticated"  # type: ignore[attr-defined]
        return "ok", f"{device.name} ({device.transport})"

    def describe() -> tuple[str, str]:
        state["system"] = system = device.describe().to_dict()
        return "ok", (
            f"Python {system.get('python')} on {system.get('os')}, kernel {system.get('kernel')}, "
            f"{system.get('cpu_model')} x{system.get('cpu_cores')}"
        )

    def clocks() -> tuple[str, str]:
        system = state["system"]
        freqs = system.get("cpu_frequencies_khz") or {}
        temps = system.get("temperatures_c") or {}
        governor = system.get("cpu_governor") or "not exposed"
        mhz = sorted({round(v / 1000) for v in freqs.values()})
        detail = f"governor {governor}; MHz {mhz or 'not exposed'}; thermal {temps or 'none'}"
        warn = governor not in ("performance", "not exposed")
        return ("warn" if warn else "ok"), detail + (
            " (set the performance governor for stable latencies)" if warn else ""
        )

    steps: list[tuple[str, Callable[[], tuple[str, str]]]] = [
        ("connect", connect),
        ("python", describe),
        ("runtime", lambda: _runtime_row(device, state["system"])),
        ("loadgen", lambda: _loadgen_row(device, state["system"])),
        ("cpu clocks", clocks),
        ("disk", lambda: _disk_row(device)),
        ("clock", lambda: _clock_row(device)),
    ]
    if isinstance(device, SerialDevice):
        steps = serial_steps(device)
    try:
        for name, action in steps:
            if not checks.step(name, action):
                break
    finally:
        device.close()


def check_command(args: argparse.Namespace) -> int:
    profile = load_profile(args.device)
    device = open_device(args.device)
    if args.trust_new_host_key and hasattr(device, "trust_new_host_key"):
        device.trust_new_host_key = True
    checks = Checks()
    checks.add("profile", "ok", f"{profile['name']}: transport {profile['transport']}")
    run_checks(device, checks)
    if args.json:
        print_json(checks.rows)
    else:
        table = Table(title=f"device check: {profile['name']}")
        for column in ("check", "status", "detail"):
            table.add_column(column, overflow="fold")
        colours = {"ok": "green", "warn": "yellow", "FAIL": "red"}
        for row in checks.rows:
            status = f"[{colours[row['status']]}]{row['status']}[/]"
            table.add_row(row["check"], status, row["detail"])
        stdout.print(table)
    return 1 if checks.failed else 0

"""`edgebench deploy --device D -b B`: build the benchmark's model into the device's firmware,
flash it, and check the firmware that answers is that image; print what was flashed.

The same steps `edgebench run --deploy` takes before running, on their own, so a board can be
prepared (and its image recorded) before a session.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..devices.base import Device, DeviceError
from ..devices.profiles import open_device
from ..devices.serial import SerialDevice
from ..protocol.tiny_models import model_for_benchmark
from ..suite.benchmarks import get_benchmark
from .render import print_json, stdout


def add_parser(commands: Any) -> None:
    deploy = commands.add_parser(
        "deploy", help="build the benchmark's model into firmware, flash it, verify it"
    )
    deploy.add_argument("-d", "--device", required=True, help="serial device profile or YAML")
    deploy.add_argument("-b", "--benchmark", required=True, help="benchmark whose model to flash")
    deploy.add_argument("--json", action="store_true", help="print the deploy record as JSON")
    deploy.set_defaults(handler=deploy_command)


def require_deployer(device: Device) -> SerialDevice:
    """The device, if its profile says how to build and flash its firmware."""
    if not isinstance(device, SerialDevice) or device.deployer is None:
        raise DeviceError(
            f"{device.name}: deploying builds firmware for serial devices whose profile has "
            f"`firmware:` and `flash:` sections (see docs/deploy.md); Linux devices get the "
            f"model copied by `edgebench run` itself, so drop --deploy"
        )
    return device


def deploy_command(args: argparse.Namespace) -> int:
    device = require_deployer(open_device(args.device))
    benchmark = get_benchmark(args.benchmark)
    device.flash_on_deploy = True
    with device:
        device.expect(model_for_benchmark(benchmark.name))
        device.deploy(benchmark.model_path, None)
        system = device.describe().to_dict()
    report = {
        "device": device.name,
        "benchmark": benchmark.name,
        "port": system["port"],
        "dut_name": system["dut_name"],
        "deploy": system["deploy"],
        "image_check": system["image_check"],
    }
    if args.json:
        print_json(report)
        return 0
    for key, value in report["deploy"].items():
        stdout.print(f"{key:14} {value}", highlight=False)
    check = report["image_check"]
    stdout.print(
        f"{'verified':14} "
        + ("yes: eb-info reports this model and build" if check["verified"] else check["warning"]),
        highlight=False,
    )
    if device.deployer is not None and device.deployer.emulated:
        stdout.print(
            "(emulated: the image ran only for this command; `edgebench run` deploys again)",
            highlight=False,
        )
    return 0

"""`edgebench lab up`: start the virtual bench (a virtual MCU for now) and print its ports.

For trying the serial workflow with no board: point a terminal, MLPerf Tiny's runner or a
serial device profile at the printed port. Runs until Ctrl-C, then stops what it started.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path
from typing import Any

from ..devices.base import DeviceError
from ..lab.interface_board import KINDS, BoardError, InterfaceBoard
from ..lab.virtual_mcu.errors import VirtualMcuError
from ..lab.virtual_mcu.firmware import TIMING_MODES
from ..lab.virtual_mcu.launcher import VirtualMcu, benchmark_model
from .render import print_json, stdout

POLL_S = 0.5


def add_lab_parser(subparsers: Any) -> None:
    """Register `edgebench lab` and its `up` action."""
    lab = subparsers.add_parser("lab", help="virtual bench: stand-ins for boards and meters")
    actions = lab.add_subparsers(dest="action", metavar="ACTION", required=True)
    up = actions.add_parser("up", help="start a virtual MCU and print its port (Ctrl-C stops)")
    up.add_argument("-b", "--benchmark", default="kws", help="bundled benchmark to serve (kws)")
    up.add_argument("--model", type=Path, help="serve this int8 .tflite instead (needs --model-id)")
    up.add_argument("--model-id", help="the id profile%% reports for --model (kws01, eb-ic, ...)")
    up.add_argument("--timing", choices=TIMING_MODES, default="performance")
    up.add_argument("--baud", type=int, default=115200)
    up.add_argument("--activity", type=Path, help="write the activity file for meter emulators")
    up.add_argument("--link", type=Path, help="also make this symlink to the pty")
    up.add_argument("--infer-us", type=float, help="fixed MCU time per inference (default: real)")
    up.add_argument(
        "--interface", choices=KINDS, help="also put an emulated interface board in front of it"
    )
    up.add_argument("--json", action="store_true", help="print the ports as one JSON object")
    up.set_defaults(handler=lab_up)


def lab_up(args: argparse.Namespace) -> int:
    if (args.model is None) != (args.model_id is None):
        raise DeviceError("--model and --model-id go together; give both or neither")
    try:
        model, model_id = (
            (args.model, args.model_id) if args.model else benchmark_model(args.benchmark)
        )
        with (
            VirtualMcu.start(
                model,
                model_id,
                baud=args.baud,
                timing=args.timing,
                activity=args.activity,
                link=args.link,
                infer_us=args.infer_us,
            ) as mcu,
            _board(args, mcu.port) as board,
        ):
            ports = {"virtual-mcu": mcu.port, "model_id": model_id, "timing": args.timing}
            if board is not None:
                ports["interface-board"] = board.port
            if args.json:
                print_json(ports)
            else:
                stdout.print(
                    f"virtual-mcu {mcu.port} ({model_id}, {args.timing} timing, "
                    f"{args.baud} baud); Ctrl-C stops it",
                    highlight=False,
                    soft_wrap=True,
                )
                if board is not None:
                    stdout.print(
                        f"interface-board {board.port} ({args.interface}, forwarding `dut` "
                        f"commands to the virtual MCU at {args.baud} baud)",
                        highlight=False,
                        soft_wrap=True,
                    )
            sys.stdout.flush()  # a script reading the port through a pipe needs it now
            return _wait(mcu)
    except (VirtualMcuError, BoardError) as error:
        raise DeviceError(str(error)) from None


def _board(
    args: argparse.Namespace, dut_port: str
) -> contextlib.AbstractContextManager[InterfaceBoard | None]:
    """The board asked for with --interface (it talks to the DUT at the DUT's rate)."""
    if args.interface is None:
        return contextlib.nullcontext()
    return InterfaceBoard.start(args.interface, dut_port, dut_baud=args.baud)


def _wait(mcu: VirtualMcu) -> int:
    try:
        while mcu.alive:
            time.sleep(POLL_S)
    except KeyboardInterrupt:
        return 0
    last = mcu.stderr_text().strip().splitlines()
    raise VirtualMcuError(
        f"the virtual MCU exited on its own: {last[-1] if last else 'no error output'}"
    )

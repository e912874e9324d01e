"""`python -m edgebench.lab.virtual_mcu`: serve one model on a fresh pty until killed.

The first stdout line is `port <slave path>` (a launcher waits for it); the device's own
output goes only to the pty. Errors before that line are one line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from ..activity import ActivityWriter
from .clock import McuClock
from .engine import TflmEngine
from .errors import VirtualMcuError
from .faults import add_fault_arguments, faults_from_args
from .firmware import DEFAULT_VENDOR, TIMING_MODES, FirmwareOptions, TinyFirmware
from .model_port import ModelPort
from .wire import PtyWire


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m edgebench.lab.virtual_mcu",
        description="A virtual MCU running MLPerf Tiny reference firmware on a pty.",
    )
    parser.add_argument("--model", type=Path, required=True, help="int8 .tflite model")
    parser.add_argument(
        "--model-id", required=True, help="id reported by profile%% (kws01, eb-kws, ...)"
    )
    parser.add_argument("--baud", type=int, default=115200, help="UART rate (115200)")
    parser.add_argument(
        "--timing",
        choices=TIMING_MODES,
        default="performance",
        help="timestamp%% prints m-lap-us- (performance) or pulses the pin (energy)",
    )
    parser.add_argument("--activity", type=Path, help="write the activity file here")
    parser.add_argument("--vendor", default=DEFAULT_VENDOR, help="name%% reports this")
    parser.add_argument("--link", type=Path, help="also make this symlink to the pty")
    parser.add_argument(
        "--infer-us",
        type=float,
        help="each inference takes exactly this many microseconds of MCU time "
        "(default: the measured TFLM time)",
    )
    parser.add_argument(
        "--drift-ppm",
        type=float,
        default=0.0,
        help="the MCU timer runs fast by this many parts per million (negative: slow; 0)",
    )
    parser.add_argument(
        "--boot",
        choices=("start", "open"),
        default="start",
        help="start: boot once now (a host opening the port later misses the banner); "
        "open: reset each time the host opens the port, like a board with DTR auto-reset",
    )
    parser.add_argument(
        "--boot-delay", type=float, default=0.2, help="seconds before the banner (--boot open)"
    )
    parser.add_argument(
        "--exit-on-stdin-eof",
        action="store_true",
        help="exit when stdin closes (a launcher's lifeline, so the device never outlives it)",
    )
    add_fault_arguments(parser)
    return parser


def _watch_stdin() -> None:
    sys.stdin.buffer.read()
    signal.raise_signal(signal.SIGTERM)


def _open_activity(path: Path | None) -> ActivityWriter | None:
    if path is None:
        return None
    try:
        return ActivityWriter(path)
    except OSError as error:
        raise VirtualMcuError(
            f"cannot write the activity file {path}: {error.strerror}; give a writable path"
        ) from None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        port = ModelPort.open(args.model, args.model_id)
        if args.infer_us is not None and args.infer_us <= 0:
            raise VirtualMcuError(f"--infer-us must be positive, got {args.infer_us}")
        activity = _open_activity(args.activity)
        wire = PtyWire(args.baud, args.expect_baud, args.link)
    except (VirtualMcuError, ValueError) as error:
        print(f"virtual MCU: error: {error}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    engine = TflmEngine(args.model)
    try:
        problem = engine.warm()
        if problem:
            print(f"virtual MCU: inference engine died at start: {problem}", file=sys.stderr)
        options = FirmwareOptions(
            timing=args.timing,
            vendor=args.vendor,
            infer_us=args.infer_us,
            boot_on_open=args.boot == "open",
            boot_delay_s=args.boot_delay,
        )
        firmware = TinyFirmware(
            wire, port, engine, options, faults_from_args(args), McuClock(args.drift_ppm), activity
        )
        if not options.boot_on_open:
            firmware.boot()  # powered up before anyone connects: the banner is already sent
            wire.drain()
        print(f"port {wire.port}", flush=True)
        if args.exit_on_stdin_eof:
            threading.Thread(target=_watch_stdin, daemon=True).start()
        firmware.serve()
    except KeyboardInterrupt:
        pass
    finally:
        engine.close()
        wire.close()
        if activity is not None:
            activity.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

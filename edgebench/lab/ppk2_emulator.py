"""A Nordic Power Profiler Kit II stand-in on a pty, measuring a virtual device.

It answers the kit's byte protocol as edgebench.meters.ppk2 documents it (opcodes, metadata
text ending `END`, 4-byte sample words with ADC value, range, 6-bit counter and logic bits)
and streams 100 kS/s in real time after AVERAGE_START. Each sample is the mean current of
the virtual device over its 10 us, from the activity file (idle/active current), plus noise,
autoranged to the smallest of the five shunts that holds it and quantized to the 14-bit ADC
through this kit's own calibration coefficients (deliberately not the nominal ones, so a
reader that ignores the metadata gets wrong amps). Logic input D0 follows the activity
file's timestamp pin.

Inferred where the sources are silent: the autorange point (the kit switches at its own
thresholds; here: the smallest range whose ADC count stays below 16000), and the metadata's
exact wording beyond `name: value` lines (keys R0..R4, GS, GI, O, S, I, UG per range, HW,
mode, calibrated).

Faults for tests: stop streaming S s into a recording, drop N samples at S s (the counter
jumps), send every Nth word with an impossible range (7).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time

import numpy as np

from ..meters.ppk2 import (
    OP_AVERAGE_START,
    OP_AVERAGE_STOP,
    OP_DEVICE_RUNNING_SET,
    OP_GET_META_DATA,
    OP_REGULATOR_SET,
    OP_SET_POWER_MODE,
    SAMPLE_RATE_HZ,
    Calibration,
    encode,
)
from .emulator_serving import emulator_parser, serve_pty
from .power_model import ActivityTimeline, PowerModel

#: Argument bytes after each opcode (others take none).
ARGUMENTS = {OP_REGULATOR_SET: 2, OP_DEVICE_RUNNING_SET: 1, OP_SET_POWER_MODE: 1}
#: This emulated kit's calibration: nominal shunts, trimmed by a few percent, small offsets.
METADATA = {
    "Calibrated": 1, "R0": 1031.64, "R1": 101.65, "R2": 10.15, "R3": 0.94, "R4": 0.043,
    "GS0": 0.0, "GS1": 0.0, "GS2": 0.0, "GS3": 0.0, "GS4": 0.0,
    "GI0": 1.02, "GI1": 0.99, "GI2": 1.01, "GI3": 0.98, "GI4": 1.0,
    "O0": 12.0, "O1": 8.0, "O2": 5.0, "O3": 3.0, "O4": 2.0,
    "S0": 0.0, "S1": 0.0, "S2": 0.0, "S3": 0.0, "S4": 0.0,
    "I0": 0.0, "I1": 0.0, "I2": 0.0, "I3": 0.0, "I4": 0.0,
    "UG0": 1.0, "UG1": 1.0, "UG2": 1.0, "UG3": 1.0, "UG4": 1.0,
    "HW": 9173, "mode": 2, "IA": 56,
}  # fmt: skip
ADC_CEILING = 16000
LAG_S = 0.02
PERIOD_NS = 1e9 / SAMPLE_RATE_HZ


class Kit:
    """The PPK2 firmware behind the serial line."""

    def __init__(self, fd: int, args: argparse.Namespace) -> None:
        self.fd = fd
        self.args = args
        self.rng = np.random.default_rng(args.seed)
        # The model is in amps: the kit measures current.
        self.model = PowerModel(args.idle_a, args.active_a, args.noise_a)
        self.timeline = ActivityTimeline(args.activity, self.model)
        self.calibration = Calibration({k.upper(): float(v) for k, v in METADATA.items()})
        self.vdd_mv = 3300
        self.start_ns: int | None = None
        self.sent = 0  # sample periods elapsed since start (sent or dropped)
        self.words = 0  # words written (for the garbage fault)
        self.silent = False
        self.lock = threading.Lock()

    def take(self, data: bytes) -> bytes:
        """Single-byte opcodes, each followed by its fixed number of argument bytes."""
        while data:
            need = ARGUMENTS.get(data[0], 0)
            if len(data) < 1 + need:
                break
            self.command(data[0], data[1 : 1 + need])
            data = data[1 + need :]
        return data

    def command(self, opcode: int, argument: bytes) -> None:
        with self.lock:
            if self.silent:
                return
            if opcode == OP_GET_META_DATA:
                text = "".join(f"{k}: {v}\n" for k, v in METADATA.items()) + "END\n"
                os.write(self.fd, text.encode())
            elif opcode == OP_REGULATOR_SET:
                self.vdd_mv = argument[0] << 8 | argument[1]
            elif opcode == OP_AVERAGE_START:
                self.timeline.refresh()
                self.start_ns, self.sent = time.monotonic_ns(), 0
            elif opcode == OP_AVERAGE_STOP and self.start_ns is not None:
                self._stream(time.monotonic_ns())
                self.start_ns = None

    def tick(self) -> None:
        with self.lock:
            if self.start_ns is None or self.silent:
                return
            now = time.monotonic_ns()
            stop_after = self.args.stop_streaming_after
            if stop_after is not None and now - self.start_ns >= stop_after * 1e9:
                self.silent = True
                return
            self._stream(now - int(LAG_S * 1e9))

    def _stream(self, until_ns: int) -> None:
        assert self.start_ns is not None
        count = int((until_ns - self.start_ns) / PERIOD_NS) - self.sent
        if count <= 0:
            return
        self.timeline.refresh()
        first = self.sent
        edges = self.start_ns + np.round(np.arange(first, first + count + 1) * PERIOD_NS)
        edges = edges.astype(np.int64)
        amps = self.model.reading(self.timeline.level.means(edges), self.rng)
        adc, ranges = self._quantize(np.maximum(amps, 0.0))
        logic = (self.timeline.pin.at(edges[:-1]) > 0.5).astype(np.int64)  # D0
        counter = np.arange(first, first + count)
        keep = np.ones(count, dtype=bool)
        if self.args.drop_samples_at is not None:
            drop_from = int(self.args.drop_samples_at * SAMPLE_RATE_HZ)
            keep &= (counter < drop_from) | (counter >= drop_from + self.args.drop_count)
        if self.args.garbage_every:
            numbers = self.words + np.cumsum(keep)
            ranges = np.where(keep & (numbers % self.args.garbage_every == 0), 7, ranges)
        self.words += int(keep.sum())
        self.sent += count
        os.write(self.fd, encode(adc[keep], ranges[keep], counter[keep], logic[keep]))

    def _quantize(self, amps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The smallest range that holds each value, and its ADC count (the inverse of the
        driver's conversion with this kit's calibration)."""
        offset, per_count, zero = self.calibration.coefficients(self.vdd_mv / 1000)
        counts = (amps[:, None] - zero[None, :]) / per_count[None, :] + offset[None, :]
        fits = counts < ADC_CEILING
        ranges = np.where(fits.any(axis=1), fits.argmax(axis=1), len(offset) - 1)
        adc = np.rint(counts[np.arange(len(amps)), ranges])
        return np.clip(adc, 0, 0x3FFF).astype(np.int64), ranges


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    description = __doc__.splitlines()[0]
    parser = emulator_parser(description, "a", idle=0.5e-3, active=5e-3, drop_count=1000)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return serve_pty(lambda fd: Kit(fd, args))


if __name__ == "__main__":
    sys.exit(main())

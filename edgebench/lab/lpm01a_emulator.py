"""An ST X-NUCLEO-LPM01A (PowerShield) stand-in on a pty, measuring a virtual device.

It speaks the board's ASCII protocol as MLPerf Tiny's runner uses it (research/mlperf_tiny.md
§2, research/power_and_peers.md §A2, the command table ST ships in the runner's
`power_manager_lpm.py`): commands such as `htc`, `volt 1800m`, `freq 1k`, `acqtime inf`,
`output energy`, `format ascii_dec`, `trigsrc sw`, `eventsrc d7 fal`, `pwr on`, `start`, `stop`;
each answered `ack <command> [value]`, or `error <command>` then `Error detail: <why>`.
While acquiring it streams one ascii_dec value per line (`6409-07` = 6409e-7: A for `output
current`, J per sample period for `output energy`), `TimeStamp: 001s 000ms, buff 00%` after
each second's worth of samples, and `event N ris` (N counting from 0, as the runner expects)
where the timestamp pin fell, placed after the samples that ended before the edge; `stop` ends
with `Acquisition completed`. Output is paced in real time, as from the real board.

The power comes from the virtual bench's activity file: idle/active current at the set voltage
(each sample the mean over its period), noise, and the 4-digit ascii_dec resolution.

Inferred, where the research and ST's table are silent (our choices, documented):
- query replies carry the value on the ack line: `ack version 1.0.6`, `ack powershield <id>`;
- a sample whose mean current exceeds the acquisition mode's range (ST's table: dyn 10 mA,
  stat 200 mA) is reported as `error current out of range` + `Error detail: ...` in the
  stream, and streaming continues;
- `format bin_hexa` is refused here (`Error detail: only ascii_dec is emulated`);
  `trigsrc d7` is accepted but acquisition starts at `start` (the D7 trigger is not emulated).

Faults for tests: stop streaming S s into an acquisition (and answer nothing more), replace
every Nth data line with garbage, drop a run of samples at S s (so `TimeStamp` counts differ).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import threading
import time
from dataclasses import dataclass

import numpy as np

from .emulator_serving import emulator_parser, serve_pty
from .power_model import ActivityTimeline, PowerModel

FREQUENCIES = {
    "100k": 100000, "50k": 50000, "20k": 20000, "10k": 10000, "5k": 5000, "2k": 2000,
    "1k": 1000, "500": 500, "200": 200, "100": 100, "50": 50, "20": 20, "10": 10, "5": 5,
    "2": 2, "1": 1,
}  # fmt: skip
RANGE_A = {"dyn": 10e-3, "stat": 200e-3}
VOLT_MIN, VOLT_MAX = 1.8, 3.3
MAX_ENERGY_HZ = 10000
FIRMWARE = "1.0.6"
BOARD_ID = "EMULPM01A0001"
#: Samples are sent this long after their period ends, so the device's activity lines for it
#: have been flushed (the real board buffers similarly).
LAG_S = 0.02
UNITS = {"u": 1e-6, "m": 1e-3, "k": 1e3}


class CommandError(Exception):
    """A command the board refuses; the message is the `Error detail`."""


def parse_number(text: str) -> float:
    """ST's number forms: `1800m`, `2-3`, `100u`, `1k`, `10`."""
    text = text.strip()
    if text and text[-1] in UNITS:
        return float(text[:-1]) * UNITS[text[-1]]
    for sign in ("-", "+"):
        head, _, exponent = text.rpartition(sign)
        if head and exponent.isdigit() and len(exponent) <= 2:
            return float(head) * 10 ** (int(exponent) if sign == "+" else -int(exponent))
    return float(text)


def ascii_dec(value: float) -> str:
    """A value as the board prints it: 4-digit mantissa and signed 2-digit exponent."""
    if not value > 0:
        return "0000+00"
    exponent = math.floor(math.log10(value)) - 3
    mantissa = round(value / 10.0**exponent)
    if mantissa >= 10000:
        mantissa //= 10
        exponent += 1
    return f"{mantissa:04d}{exponent:+03d}"


@dataclass
class Settings:
    volts: float = 3.3
    freq: int = 100
    acqtime_s: float | None = 10.0  # None = infinite
    output: str = "current"
    acqmode: str = "dyn"
    trigsrc: str = "sw"
    event_edge: str | None = None
    pwr: str = "auto"


class Acquisition:
    """One start..stop: which samples, events and seconds have been sent."""

    def __init__(self, start_ns: int, settings: Settings, edges_seen: int) -> None:
        self.start_ns = start_ns
        self.settings = settings
        self.sent = 0  # sample periods elapsed (sent or dropped)
        self.events = 0
        self.edges_seen = edges_seen
        self.overloaded = False


class Board:
    """The PowerShield firmware's behaviour behind the serial line."""

    def __init__(self, fd: int, timeline: ActivityTimeline, args: argparse.Namespace) -> None:
        self.fd = fd
        self.timeline = timeline
        self.args = args
        self.rng = np.random.default_rng(args.seed)
        self.settings = Settings()
        self.acquisition: Acquisition | None = None
        self.silent = False
        self.lines_sent = 0
        self.lock = threading.Lock()

    def write(self, *lines: str) -> None:
        if self.silent:
            return
        payload = "".join(line + "\r\n" for line in lines).encode("utf-8", errors="replace")
        os.write(self.fd, payload)

    # -- commands ----------------------------------------------------------------------------
    def take(self, data: bytes) -> bytes:
        """Each whole line is a command (CR, LF or both end one)."""
        *lines, rest = data.replace(b"\r", b"\n").split(b"\n")
        for line in lines:
            self.command(line.decode("ascii", errors="replace").strip())
        return rest

    def command(self, line: str) -> None:
        words = line.split()
        if not words or self.silent:
            return
        with self.lock:
            try:
                value = self._execute(words)
            except CommandError as error:
                self.write(f"error {line}", f"Error detail: {error}")
                return
            self.write(f"ack {line}" + (f" {value}" if value else ""))
            if words[0] == "stop":
                self.write("Acquisition completed")

    def _execute(self, words: list[str]) -> str | None:
        name, args = words[0], words[1:]
        s = self.settings
        if self.acquisition is not None and name not in ("stop", "pwr", "status"):
            raise CommandError("acquisition running; send stop first")
        if name in ("htc", "hrc", "lcd", "trigdelay", "funcmode", "pwrend", "calib", "psrst"):
            return None
        if name == "powershield":
            return BOARD_ID
        if name == "version":
            return self.args.firmware
        if name == "status":
            return "ok"
        if name == "volt":
            if args == ["get"]:
                return f"{round(s.volts * 1000)}m"
            volts = self._number(args)
            if not VOLT_MIN - 1e-9 <= volts <= VOLT_MAX + 1e-9:
                raise CommandError(f"voltage {args[0]} outside [1800m; 3300m]")
            s.volts = volts
            return None
        if name == "freq":
            if len(args) != 1 or args[0] not in FREQUENCIES:
                raise CommandError(f"frequency must be one of {', '.join(FREQUENCIES)}")
            s.freq = FREQUENCIES[args[0]]
            return None
        if name == "acqtime":
            if args in (["inf"], ["0"]):
                s.acqtime_s = None
            else:
                s.acqtime_s = self._number(args)
            return None
        if name == "output" and args in (["current"], ["energy"]):
            s.output = args[0]
            return None
        if name == "format":
            if args != ["ascii_dec"]:
                raise CommandError("only ascii_dec is emulated")
            return None
        if name == "acqmode" and args in (["dyn"], ["stat"]):
            s.acqmode = args[0]
            return None
        if name == "trigsrc" and args in (["sw"], ["d7"]):
            s.trigsrc = args[0]
            return None
        if name == "eventsrc" and len(args) == 2 and args[0] == "d7" and args[1] in ("fal", "ris"):
            s.event_edge = args[1]
            return None
        if name == "pwr" and args and args[0] in ("on", "off", "auto", "get"):
            if args[0] == "get":
                return "on" if s.pwr in ("on", "auto") else "off"
            s.pwr = args[0]
            return None
        if name == "start":
            if s.output == "energy" and s.freq > MAX_ENERGY_HZ:
                raise CommandError("output energy is limited to 10k")
            self.timeline.refresh()
            edges = len(self.timeline.falling_edges)
            self.acquisition = Acquisition(time.monotonic_ns(), Settings(**vars(s)), edges)
            return None
        if name == "stop":
            if self.acquisition is None:
                raise CommandError("no acquisition running")
            self._stream(time.monotonic_ns())
            self.acquisition = None
            return None
        raise CommandError(f"unknown command {name!r}")

    @staticmethod
    def _number(args: list[str]) -> float:
        if len(args) != 1:
            raise CommandError("expected one numeric argument")
        try:
            return parse_number(args[0])
        except ValueError:
            raise CommandError(f"{args[0]!r} is not a number") from None

    # -- streaming ---------------------------------------------------------------------------
    def tick(self) -> None:
        with self.lock:
            if self.acquisition is not None and not self.silent:
                a = self.acquisition
                now = time.monotonic_ns()
                stop_after = self.args.stop_streaming_after
                if stop_after is not None and now - a.start_ns >= stop_after * 1e9:
                    self.silent = True
                    return
                self._stream(now - int(LAG_S * 1e9))
                limit = a.settings.acqtime_s
                if limit is not None and a.sent >= limit * a.settings.freq:
                    self.acquisition = None
                    self.write("Acquisition completed")

    def _stream(self, until_ns: int) -> None:
        """Send every sample period that ended by `until_ns`, with its events and seconds."""
        a = self.acquisition
        assert a is not None
        s = a.settings
        period_ns = 1e9 / s.freq
        count = int((until_ns - a.start_ns) / period_ns) - a.sent
        if s.acqtime_s is not None:
            count = min(count, int(s.acqtime_s * s.freq) - a.sent)
        if count <= 0:
            return
        self.timeline.refresh()
        first = a.sent
        edges_ns = (a.start_ns + np.arange(first, first + count + 1) * period_ns).astype(np.int64)
        # The model is in amps: the timeline integrates charge, the reading adds noise.
        charge = self.timeline.energies(edges_ns)
        current = np.maximum(self.timeline.model.reading(charge * s.freq, self.rng), 0.0)
        values = current if s.output == "current" else current * s.volts / s.freq
        falls = self._new_falls(a, int(edges_ns[-1]))
        dropped = range(0)
        if self.args.drop_samples_at is not None:
            drop_from = int(self.args.drop_samples_at * s.freq)
            dropped = range(drop_from, drop_from + self.args.drop_count)
        lines: list[str] = []
        for offset in range(count):
            index = first + offset
            while falls and falls[0] < edges_ns[offset + 1]:
                falls.pop(0)
                lines.append(f"event {a.events} ris")
                a.events += 1
            if index not in dropped:
                lines.append(self._data_line(ascii_dec(values[offset])))
            if current[offset] > RANGE_A[s.acqmode]:
                if not a.overloaded:
                    lines += [
                        "error current out of range",
                        f"Error detail: {current[offset] * 1e3:.1f} mA exceeds the "
                        f"{RANGE_A[s.acqmode] * 1e3:g} mA range of acqmode {s.acqmode}",
                    ]
                a.overloaded = True
            else:
                a.overloaded = False
            if (index + 1) % s.freq == 0:
                lines.append(f"TimeStamp: {(index + 1) // s.freq:03d}s 000ms, buff 00%")
        a.sent += count
        self.write(*lines)

    def _new_falls(self, a: Acquisition, until_ns: int) -> list[int]:
        """Timestamp edges (as configured by eventsrc) not yet reported, up to `until_ns`."""
        if a.settings.event_edge != "fal":
            return []
        edges = self.timeline.falling_edges
        fresh = [t for t in edges[a.edges_seen :] if t < until_ns]
        a.edges_seen += len(fresh)
        return [t for t in fresh if t >= a.start_ns]

    def _data_line(self, text: str) -> str:
        self.lines_sent += 1
        if self.args.garbage_every and self.lines_sent % self.args.garbage_every == 0:
            return "\x00\xfe#12?"
        return text


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    description = __doc__.splitlines()[0]
    parser = emulator_parser(description, "a", idle=0.5e-3, active=5e-3, drop_count=100)
    parser.add_argument("--firmware", default=FIRMWARE, help="version the board reports")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # The model is in amps, not watts: the host sets the voltage later (`volt`), and the
    # board measures current; power and energy follow at the voltage of each acquisition.
    model = PowerModel(args.idle_a, args.active_a, args.noise_a)
    return serve_pty(lambda fd: Board(fd, ActivityTimeline(args.activity, model), args))


if __name__ == "__main__":
    sys.exit(main())

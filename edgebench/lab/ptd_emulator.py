"""A SPEC PTDaemon stand-in on loopback TCP, measuring a virtual device's activity file.

It speaks PTDaemon's text protocol as MLCommons' power server uses it (research/
power_and_peers.md §A1, power-dev `lib/server.py`): `Hello`, `Identify`, `RR`, `SR,V|A,<v|Auto>`,
`Go,<ms>,0,<mark>`, `Stop`, `RL` (unread samples as `Last N samples` then N lines
`Time,MM-DD-YYYY HH:MM:SS.mmm,Watts,..,Volts,..,Amps,..,PF,..`: as the real daemon's, they end
at PF; the server appends `,Mark,<mark>` itself when it writes spl.txt), `Watts` and
`Uncertainty` summaries of the current measurement (so far, when asked before `Stop`, as the
server does while testing). Lines end in CR LF.

It takes PTDaemon's own command line, as MLCommons' server starts it (with TZ=UTC, which
changes nothing here: times are always UTC), so it can be that server's `ptd` executable
through a wrapper script running `python -m edgebench.lab.ptd_emulator --activity FILE "$@"`:

    ptd -l LOGFILE -p PORT [-b N] [-c CH] [-D] [-g|-n|-y|-U] DEVICE_TYPE DEVICE_PORT

`-p` is `--port`. `-l` is PTDaemon's sample log: every sample line as produced, with
`,Mark,<mark of its Go>` appended, flushed line by line; the server re-reads it after ranging
for the largest volts and amps of its `<session>_ranging` lines, and fails without it. The
device options are accepted and echoed on the console, not used: the analyzer is always an
emulated WT310 (device type 49), and another device type is said so on the console. The
console (stdout) starts with the TCP port (what lab.emulator_process waits for); then come
timestamped lines in PTDaemon's console form, which the server keeps as ptd_logs.txt and
MLCommons' compliance checker reads: `<time>: Uncertainty checking for Yokogawa-WT310 is
activated` at start-up (before any ranging), `<time>: Go with mark '<mark>'` and
`<time>: Completed test` (at `Stop`). Their exact wording beyond those substrings is ours.

Behind it sits an emulated Yokogawa WT310: each sample is the mean power over its update
interval (what a wattmeter integrates), plus noise, quantized to the resolution; volts, amps and
PF follow from the set line voltage and power factor. Ranges follow the WT310 20 A element
(voltage 15-600 V, current 0.5-20 A). Timestamps are the PTD host's wall clock in UTC, as PTD
runs with TZ=UTC. Samples are produced as their intervals end (plus a short lag, see LAG_S)
whenever the daemon is idle or asked, so the log grows while measuring.

Inferred, not stated by the research or SPEC docs we could read (so: our choices, documented):
- A reading beyond 130 % of the set range (the WT310's measurable limit) is an overload: the
  sample carries Watts and Amps as 9.9E+37, Yokogawa's numeric code for over-range (-OL-).
- Replies to bad commands: `Error: Unknown command <cmd>`, `Error: Invalid number of parameters`
  (for `RL,*,*` on this single-channel analyzer, which makes clients fall back to `RL`, as
  power-dev does), `Error: ...` for bad ranges.
- Summary fields: `Watts,<avg>,<min>,<max>,<good>,<bad>,<total>` and `Uncertainty,<avg>,<min>,
  <max>,<evaluated>,<not evaluated>,<total>,<above 1 %>` (uncertainty as a fraction).
- Per-sample uncertainty = (0.1 % of reading + 0.05 % of range) / reading, range = V x A range.

Faults for tests: stop answering (keep the socket, never reply) or drop every connection K s
after the latest `Go`; replace every Nth sample line of `RL` replies with garbage bytes (the
log keeps the true lines: the fault is on the wire).
"""

from __future__ import annotations

import argparse
import socketserver
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import numpy as np

from .emulator_serving import emulator_parser, serve_tcp
from .power_model import ActivityTimeline, PowerModel

HELLO_REPLY = "Hello, PTDaemon here!"
MODEL = "EmulatedWT310"
#: PTDaemon's device type number for the Yokogawa WT310, the analyzer emulated here.
WT310_DEVICE_TYPE = 49
VERSION = "0.0.0-edgebench-emulator"
VOLT_RANGES = (15.0, 30.0, 60.0, 150.0, 300.0, 600.0)
AMP_RANGES = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0)
OVER_RANGE = 1.3
OVERLOAD_VALUE = "9.9E+37"
READING_ACCURACY = 0.001
RANGE_ACCURACY = 0.0005
UNCERTAINTY_LIMIT = 0.01
MAX_SAMPLES = 500000
#: Readings are reported this long after their interval ends, so the device's activity lines
#: for that interval have surely been flushed (a real meter has a similar output latency).
LAG_S = 0.05


def ptd_time(wall_s: float) -> str:
    """PTDaemon's sample time format, `MM-DD-YYYY HH:MM:SS.mmm` (UTC)."""
    stamp = datetime.fromtimestamp(wall_s, tz=UTC)
    return stamp.strftime("%m-%d-%Y %H:%M:%S.") + f"{stamp.microsecond // 1000:03d}"


def _pick_range(value: float, ranges: tuple[float, ...]) -> float:
    for candidate in ranges:
        if value <= candidate:
            return candidate
    return ranges[-1]


@dataclass
class Sample:
    wall_s: float
    watts: float
    volts: float
    amps: float
    pf: float
    mark: str
    overload: bool
    uncertainty: float | None

    def line(self) -> str:
        """The sample as an `RL` reply line: it ends at PF, as the real daemon's do."""
        watts = OVERLOAD_VALUE if self.overload else f"{self.watts:.6f}"
        amps = OVERLOAD_VALUE if self.overload else f"{self.amps:.6f}"
        return (
            f"Time,{ptd_time(self.wall_s)},Watts,{watts},Volts,{self.volts:.6f},"
            f"Amps,{amps},PF,{self.pf:.6f}"
        )

    def log_line(self) -> str:
        """The sample as PTDaemon's log file has it: with the mark of its Go."""
        return f"{self.line()},Mark,{self.mark}"


@dataclass
class Measurement:
    mark: str
    interval_s: float
    start_ns: int
    produced: int = 0
    stop_ns: int | None = None
    samples: list[Sample] = field(default_factory=list)
    unread: int = 0


class EmulatedAnalyzer:
    """The WT310 behind the daemon: ranges, the running measurement and its samples."""

    def __init__(
        self,
        timeline: ActivityTimeline,
        *,
        volts: float = 230.0,
        pf: float = 0.9,
        clock_offset_s: float = 0.0,
        seed: int = 0,
        garbage_every: int = 0,
        log: TextIO | None = None,
    ) -> None:
        self.timeline = timeline
        self.volts = volts
        self.pf = pf
        self.rng = np.random.default_rng(seed)
        self.garbage_every = garbage_every
        self.log = log
        # The PTD host's wall clock, as a fixed offset from the shared physical (monotonic)
        # time, plus an injectable error.
        self.wall_minus_mono_s = (time.time_ns() - time.monotonic_ns()) * 1e-9 + clock_offset_s
        self.volt_range: float | None = None  # None = autorange
        self.amp_range: float | None = None
        self.measurement: Measurement | None = None
        self.lines_sent = 0
        self.lock = threading.Lock()

    def wall_now(self) -> float:
        """The PTD host's wall clock now (s), the clock its samples are stamped with."""
        return time.monotonic_ns() * 1e-9 + self.wall_minus_mono_s

    def say(self, message: str) -> None:
        """One timestamped console line, as PTDaemon prints them (MLCommons' server keeps
        them as ptd_logs.txt and its checker reads them)."""
        print(f"{ptd_time(self.wall_now())}: {message}", flush=True)

    def close(self) -> None:
        with self.lock:  # not while a client's command is producing samples into the log
            if self.log is not None:
                self.log.close()
                self.log = None

    # -- ranges ------------------------------------------------------------------------------
    def ranges_reply(self) -> str:
        def part(current: float | None) -> str:
            return "1,-1.0" if current is None else f"0,{current}"

        return f"Ranges,{part(self.amp_range)},{part(self.volt_range)}"

    def set_range(self, which: str, value: str) -> str:
        ranges = VOLT_RANGES if which == "V" else AMP_RANGES
        if value.lower() == "auto":
            chosen = None
        else:
            try:
                wanted = float(value)
            except ValueError:
                return f"Error: range value {value!r} is not a number or Auto"
            if not 0 < wanted <= ranges[-1]:
                return f"Error: range {value} {which} is outside 0..{ranges[-1]}"
            chosen = _pick_range(wanted, ranges)
        if which == "V":
            self.volt_range = chosen
        else:
            self.amp_range = chosen
        return f"Range {which} changed"

    # -- measurement -------------------------------------------------------------------------
    def go(self, interval_ms: str, duration: str, mark: str) -> str:
        try:
            interval = int(interval_ms)
        except ValueError:
            return f"Error: sample interval {interval_ms!r} is not an integer (ms)"
        if duration != "0":
            return "Error: only untimed measurements (duration 0) are emulated"
        if self.measurement is not None and self.measurement.stop_ns is None:
            return "Error: a measurement is already running; send Stop first"
        self.measurement = Measurement(mark, interval / 1000.0, time.monotonic_ns())
        self.say(f"Go with mark {mark!r}")
        return (
            f"Starting untimed measurement, maximum {MAX_SAMPLES} samples at {interval}ms "
            "with 0 rampup samples"
        )

    def stop(self) -> str:
        if self.measurement is None or self.measurement.stop_ns is not None:
            return "Error: no measurement to stop"
        self._produce(time.monotonic_ns())
        self.measurement.stop_ns = time.monotonic_ns()
        self.say("Completed test")
        return "Stopping untimed measurement"

    def tick(self) -> None:
        """Produce the samples that are due, between commands, so the log file grows while
        measuring as the real daemon's does."""
        with self.lock:
            self._catch_up()

    def _catch_up(self) -> None:
        """Produce every sample due by now, less LAG_S (caller holds the lock)."""
        self._produce(time.monotonic_ns() - int(LAG_S * 1e9))

    def _produce(self, until_ns: int) -> None:
        """Make every sample whose interval has ended by `until_ns`."""
        m = self.measurement
        if m is None or m.stop_ns is not None:
            return
        self.timeline.refresh()
        step_ns = int(m.interval_s * 1e9)
        while m.start_ns + (m.produced + 1) * step_ns <= until_ns:
            end_ns = m.start_ns + (m.produced + 1) * step_ns
            true_w = self.timeline.energy(end_ns - step_ns, end_ns) / m.interval_s
            sample = self._sample(true_w, end_ns, m.mark)
            m.samples.append(sample)
            m.produced += 1
            m.unread += 1
            if self.log is not None:
                self.log.write(sample.log_line() + "\n")
                self.log.flush()

    def _sample(self, true_w: float, end_ns: int, mark: str) -> Sample:
        watts = float(self.timeline.model.reading(np.array([true_w]), self.rng)[0])
        amps = watts / (self.volts * self.pf)
        volt_range = self.volt_range or _pick_range(self.volts, VOLT_RANGES)
        amp_range = self.amp_range or _pick_range(abs(amps), AMP_RANGES)
        overload = abs(amps) > OVER_RANGE * amp_range or self.volts > OVER_RANGE * volt_range
        uncertainty = None
        if watts > 0 and not overload:
            absolute = READING_ACCURACY * watts + RANGE_ACCURACY * volt_range * amp_range
            uncertainty = absolute / watts
        wall = end_ns * 1e-9 + self.wall_minus_mono_s
        return Sample(wall, watts, self.volts, amps, self.pf, mark, overload, uncertainty)

    def read_unread(self) -> list[str]:
        m = self.measurement
        if m is None:
            return ["Last 0 samples"]
        self._catch_up()
        fresh = m.samples[len(m.samples) - m.unread :]
        m.unread = 0
        lines = []
        for sample in fresh:
            self.lines_sent += 1
            if self.garbage_every and self.lines_sent % self.garbage_every == 0:
                lines.append("\x07Ti#e,\xff\xfe??garbled")
            else:
                lines.append(sample.line())
        return [f"Last {len(lines)} samples", *lines]

    def watts_reply(self) -> str:
        self._catch_up()
        samples = self.measurement.samples if self.measurement else []
        good = [s.watts for s in samples if not s.overload]
        return "Watts," + self._summary(good, len(samples))

    def uncertainty_reply(self) -> str:
        self._catch_up()
        samples = self.measurement.samples if self.measurement else []
        values = [s.uncertainty for s in samples if s.uncertainty is not None]
        above = sum(1 for v in values if v > UNCERTAINTY_LIMIT)
        return "Uncertainty," + self._summary(values, len(samples)) + f",{above}"

    @staticmethod
    def _summary(values: list[float], total: int) -> str:
        if not values:
            return f"-1,-1,-1,0,{total},{total}"
        return (
            f"{sum(values) / len(values):.6f},{min(values):.6f},{max(values):.6f},"
            f"{len(values)},{total - len(values)},{total}"
        )

    def handle(self, command: str) -> list[str]:
        """The reply lines for one command line."""
        parts = command.strip().split(",")
        name = parts[0]
        with self.lock:
            if name == "Hello":
                return [HELLO_REPLY]
            if name == "Identify":
                return [f"{MODEL},version={VERSION},serial=EMU0001"]
            if name == "RR":
                return [self.ranges_reply()]
            if name == "SR" and len(parts) == 3 and parts[1] in ("V", "A"):
                return [self.set_range(parts[1], parts[2])]
            if name == "Go" and len(parts) == 4:
                return [self.go(*parts[1:])]
            if name == "Stop":
                return [self.stop()]
            if name == "RL":
                if len(parts) > 1:
                    return ["Error: Invalid number of parameters"]
                return self.read_unread()
            if name == "Watts":
                return [self.watts_reply()]
            if name == "Uncertainty":
                return [self.uncertainty_reply()]
            return [f"Error: Unknown command {command.strip()!r}"]


class _Handler(socketserver.StreamRequestHandler):
    server: PtdServer

    def handle(self) -> None:
        analyzer = self.server.analyzer
        while True:
            raw = self.rfile.readline()
            if not raw:
                return
            fault = self.server.fault_now()
            if fault == "drop":
                return
            if fault == "silent":
                continue
            lines = analyzer.handle(raw.decode("utf-8", errors="replace"))
            payload = "".join(line + "\r\n" for line in lines)
            self.wfile.write(payload.encode("utf-8", errors="replace"))


class PtdServer(socketserver.ThreadingTCPServer):
    """The daemon: one analyzer, any number of (sequential or concurrent) TCP clients.

    `startup` is what it says on its console once the port is announced, before it serves."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        analyzer: EmulatedAnalyzer,
        port: int = 0,
        *,
        stop_answering_after_s: float | None = None,
        drop_after_s: float | None = None,
        startup: tuple[str, ...] = (),
    ) -> None:
        self.analyzer = analyzer  # first: a failed bind calls server_close(), which uses it
        super().__init__(("127.0.0.1", port), _Handler)
        self.stop_answering_after_s = stop_answering_after_s
        self.drop_after_s = drop_after_s
        self.startup = startup

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        # Here, not in main: serve_tcp prints the port first, which is what
        # lab.emulator_process reads as the address.
        for message in self.startup:
            self.analyzer.say(message)
        super().serve_forever(poll_interval)

    def service_actions(self) -> None:
        self.analyzer.tick()

    def server_close(self) -> None:
        super().server_close()
        self.analyzer.close()

    def fault_now(self) -> str | None:
        """ "drop"/"silent" once the configured time since the latest Go has passed."""
        m = self.analyzer.measurement
        if m is None:
            return None
        elapsed = (time.monotonic_ns() - m.start_ns) * 1e-9
        if self.drop_after_s is not None and elapsed >= self.drop_after_s:
            return "drop"
        if self.stop_answering_after_s is not None and elapsed >= self.stop_answering_after_s:
            return "silent"
        return None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = emulator_parser(__doc__.splitlines()[0], "w", idle=2.0, active=5.0)
    parser.add_argument("-p", "--port", type=int, default=0, help="TCP port (0 = any free port)")
    parser.add_argument("--resolution-w", type=float, default=0.001, help="display resolution")
    parser.add_argument("--volts", type=float, default=230.0, help="line voltage (rms)")
    parser.add_argument("--pf", type=float, default=0.9, help="power factor of the load")
    parser.add_argument("--clock-offset-s", type=float, default=0.0, help="PTD host clock error")
    parser.add_argument("--stop-answering-after", type=float, metavar="S")
    parser.add_argument("--drop-after", type=float, metavar="S")
    parser.add_argument(
        "-l", "--log", type=Path, metavar="FILE", help="sample log, each line with its Go mark"
    )
    device = parser.add_argument_group(
        "PTDaemon's device options",
        "taken so this can stand in for ptd on MLCommons' server's command line; echoed on the "
        "console, not used (the analyzer is always an emulated WT310)",
    )
    device.add_argument("-b", dest="gpib_board", type=int, metavar="N", help="GPIB board")
    device.add_argument("-c", dest="channel", metavar="CH", help="analyzer channel(s)")
    device.add_argument("-D", dest="dc", action="store_true", help="DC analyzer flag")
    interface = device.add_mutually_exclusive_group()
    for flag in ("-g", "-n", "-y", "-U"):
        interface.add_argument(flag, dest="interface", action="store_const", const=flag)
    device.add_argument(
        "device_type",
        nargs="?",
        type=int,
        default=WT310_DEVICE_TYPE,
        help=f"PTDaemon device type ({WT310_DEVICE_TYPE} = Yokogawa WT310)",
    )
    device.add_argument("device_port", nargs="?", help="the analyzer's port, e.g. COM1")
    return parser.parse_args(argv)


def startup_messages(args: argparse.Namespace) -> tuple[str, ...]:
    """The console's start-up lines: the device options it was given (so a misconfigured
    server command shows in ptd_logs.txt) and the uncertainty line MLCommons' checker
    requires before ranging."""
    messages = []
    if args.device_type != WT310_DEVICE_TYPE:
        messages.append(
            f"Device type {args.device_type} requested; emulating a Yokogawa WT310 "
            f"(device type {WT310_DEVICE_TYPE}) regardless"
        )
    options = [
        *([] if args.gpib_board is None else [f"-b {args.gpib_board}"]),
        *([] if args.channel is None else [f"-c {args.channel}"]),
        *(["-D"] if args.dc else []),
        *([] if args.interface is None else [args.interface]),
    ]
    where = args.device_port or "no device port"
    unused = f", options {' '.join(options)} accepted, not used" if options else ""
    messages.append(f"Emulated Yokogawa WT310 at {where}{unused}")
    messages.append("Uncertainty checking for Yokogawa-WT310 is activated")
    if args.log is not None:
        messages.append(f"Logging samples to {args.log}")
    return tuple(messages)


def build_server(args: argparse.Namespace) -> PtdServer:
    log = None
    if args.log is not None:
        try:
            log = args.log.open("a", encoding="utf-8")
        except OSError as error:
            raise SystemExit(
                f"ptd_emulator: cannot open log file {args.log} ({error.strerror}); "
                "give -l a writable path"
            ) from None
    model = PowerModel(args.idle_w, args.active_w, args.noise_w, args.resolution_w)
    analyzer = EmulatedAnalyzer(
        ActivityTimeline(args.activity, model),
        volts=args.volts,
        pf=args.pf,
        clock_offset_s=args.clock_offset_s,
        seed=args.seed,
        garbage_every=args.garbage_every,
        log=log,
    )
    try:
        return PtdServer(
            analyzer,
            args.port,
            stop_answering_after_s=args.stop_answering_after,
            drop_after_s=args.drop_after,
            startup=startup_messages(args),
        )
    except OSError as error:
        raise SystemExit(
            f"ptd_emulator: cannot listen on port {args.port} ({error.strerror}); "
            "give -p a free port, or 0 for any"
        ) from None


def main(argv: list[str] | None = None) -> int:
    server = build_server(parse_args(argv))
    return serve_tcp(server, str(server.port))


if __name__ == "__main__":
    sys.exit(main())

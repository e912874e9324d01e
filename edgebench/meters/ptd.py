"""SPEC PTDaemon over TCP: the wattmeter path MLPerf Power uses (Yokogawa WT310 and kin).

The command sequence follows MLCommons' power server (research/power_and_peers.md §A1,
power-dev `lib/server.py`): `Hello` (must answer `Hello, PTDaemon here!`), `Identify`, `RR` to
save the initial ranges (restored on close), then per phase: ranging = `SR,V,Auto`,
`SR,A,Auto`; testing = `SR,V,<max volts seen in ranging>`, `SR,A,<1.1 x max amps>`; a settle
pause (MLPerf waits 10 s), `Go,<ms>,0,<session>_<phase>`, and at the end `Stop`, `Watts`,
`Uncertainty`. Samples are fetched with `RL` ("Last N samples" + N lines
`Time,MM-DD-YYYY HH:MM:SS.mmm,Watts,..,Volts,..,Amps,..,PF,..`; DC analyzers want `DC-RL`),
which power-dev adopted as SPEC's preferred way (power-dev #279). Where MLPerf's server calls
`RL` once after `Stop`, this driver polls it about once per sample so the trace reaches the
disk as it is measured and a daemon that dies mid-run leaves what it sent.

Sample times are the PTD host's wall clock (UTC, PTDaemon runs with TZ=UTC): the trace clock
is "utc". The raw sample lines are also kept as `spl.txt` beside the trace, in the legacy form
MLPerf's server writes (each RL line plus `,Mark,<the Go mark>`), and the run summary as
`ptd_out.txt`, the file names of MLPerf's result tree.

Inferred (the research and the PTDaemon docs we could read are silent):
- a Watts or Amps field of 9.9E+37 or more (Yokogawa's over-range code) is an overload: an
  "overload" event, the sample left out; a non-numeric Watts (nan) is an "uncertain" event;
- an unparseable line is a "message" event and is skipped, the run continues;
- `Uncertainty`'s fourth field is the largest per-sample uncertainty (a fraction); above 1 %
  (MLPerf's limit) an "uncertain" event is recorded.

Results are lab measurements, never MLPerf-Power-valid: only MLCommons' unmodified client and
server (checksummed by the submission checker) with a licensed PTDaemon may claim that. See
`edgebench.meters.mlcommons_power` for detecting and laying out that client's output.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..metrics.power_trace import PowerTrace, PowerTraceWriter
from . import mlcommons_power
from .base import PHASES, Meter, MeterError, MeterInfo
from .line_socket import LineSocket
from .recording import Recording
from .registry import register

HELLO_REPLY = "Hello, PTDaemon here!"
DEFAULT_PORT = 8888
OVERLOAD_AT = 9.0e37
UNCERTAINTY_LIMIT = 0.01
#: MLPerf's testing current range: 1.1 x the largest current seen while ranging.
AMPS_MARGIN = 1.1
#: Stated WT310(E) power accuracy at 45-66 Hz, from Yokogawa's datasheet:
#: +-(0.1 % of reading + 0.05 % of range). A profile's `accuracy` overrides it.
WT310_ACCURACY = {"reading_pct": 0.1, "range_pct": 0.05}
TIME_FORMAT = "%m-%d-%Y %H:%M:%S.%f"


class _Lines(LineSocket):
    """PTDaemon's text protocol: one command line, one reply line (RL: then N more)."""

    def __init__(self, host: str, port: int, timeout_s: float) -> None:
        fix = (
            f"start ptd there (e.g. `ptd -p {port} 49 <device>`) or fix host/port in the "
            "meter profile"
        )
        super().__init__(host, port, timeout_s, f"PTDaemon at {host}:{port}", unreachable_fix=fix)

    def readline(self) -> str:
        return self.read_line().decode("utf-8", errors="replace")

    def command(self, line: str) -> str:
        self.send_line(line)
        return self.readline()


def parse_sample(line: str) -> tuple[float, float, float, float]:
    """(UTC epoch s, watts, volts, amps) from one sample line, as `RL` sends it (ending at PF)
    or as spl.txt and PTDaemon's log keep it (`,Mark,<mark>` added); ValueError otherwise."""
    fields = line.strip().split(",")
    if len(fields) < 10 or fields[0:10:2] != ["Time", "Watts", "Volts", "Amps", "PF"]:
        raise ValueError("not a PTDaemon sample line")
    stamp = datetime.strptime(fields[1], TIME_FORMAT).replace(tzinfo=UTC)
    return stamp.timestamp(), float(fields[3]), float(fields[5]), float(fields[7])


def usable(writer: PowerTraceWriter, line: str, t: float, watts: float, amps: float) -> bool:
    """Whether a parsed sample holds a reading; if not, records why on `writer`: an over-range
    code (an "overload" event) or no valid watts (an "uncertain" event)."""
    if watts >= OVERLOAD_AT or amps >= OVERLOAD_AT:
        writer.event(t, "overload", f"analyzer over range: {line}")
        return False
    if not math.isfinite(watts):
        writer.event(t, "uncertain", f"no valid watts reading: {line}")
        return False
    return True


def spl_line(line: str, mark: str) -> str:
    """`line` as MLPerf's server writes it to spl.txt ("legacy" form): the RL line plus
    `,Mark,<mark>`; a line that already carries a Mark keeps just that one."""
    line = line.strip()
    return line if line.split(",")[10:11] == ["Mark"] else f"{line},Mark,{mark}"


def session_name(label: str = "edgebench") -> str:
    """MLPerf's session id form, `YYYY-MM-DD_HH-MM-SS_<label>`."""
    return datetime.now(tz=UTC).strftime("%Y-%m-%d_%H-%M-%S") + f"_{label}"


@register
class PtdMeter(Meter):
    driver = "ptd"
    tested_against = "emulator (edgebench.lab.ptd_emulator on loopback TCP); no hardware"
    emulator_module = "edgebench.lab.ptd_emulator"
    needs_ranging = True
    profile_keys: ClassVar[dict[str, type | tuple[type, ...]]] = {
        "host": str,
        "port": int,
        "model": str,
        "interval_ms": int,
        "timeout_s": (int, float),
        "settle_s": (int, float),
        "volts_range": (int, float, type(None)),
        "amps_range": (int, float, type(None)),
    }

    def __init__(self, profile: dict[str, Any]) -> None:
        super().__init__(profile)
        self.host = str(profile.get("host", "127.0.0.1"))
        self.port = int(profile.get("port", DEFAULT_PORT))
        self.interval_ms = int(profile.get("interval_ms", 1000))
        self.timeout_s = float(profile.get("timeout_s", 5.0))
        self.settle_s = float(profile.get("settle_s", 10.0))
        interval_ok = self.interval_ms > 0
        self._require("interval_ms", self.interval_ms, interval_ok, " must be > 0 (Go uses 1000)")
        self._conn: _Lines | None = None
        self._identity = ""
        self._initial_ranges: tuple[str, str] = ("Auto", "Auto")
        self._ranges = {"V": "Auto", "A": "Auto"}
        self._ranges_changed = False
        self._max_va: tuple[float, float] | None = None
        self._recording: _Recording | None = None

    # -- connection ------------------------------------------------------------------------
    def open(self) -> None:
        if self._conn is not None:
            return
        port = self._start_emulator()
        if port is not None:
            self.host, self.port = "127.0.0.1", int(port)
        try:
            self._conn = _Lines(self.host, self.port, self.timeout_s)
            hello = self._conn.command("Hello")
            if hello != HELLO_REPLY:
                raise MeterError(
                    f"{self.host}:{self.port} answered {hello!r} to Hello, not PTDaemon; "
                    "point host/port at PTDaemon's network port (-p)"
                )
            self._identity = self._conn.command("Identify")
            self._initial_ranges = self._read_ranges(self._conn.command("RR"))
        except MeterError:
            self.close()
            raise

    @staticmethod
    def _read_ranges(reply: str) -> tuple[str, str]:
        """(volts, amps) to restore: a fixed range where RR reports one, else Auto (as
        MLPerf's server does with `Ranges,{A auto},{A range},{V auto},{V range}`)."""
        fields = reply.split(",")

        def fixed(index: int) -> str:
            try:
                if fields[index] == "0" and float(fields[index + 1]) > 0:
                    return fields[index + 1]
            except (IndexError, ValueError):
                pass
            return "Auto"

        return fixed(3), fixed(1)

    def _command(self, line: str) -> str:
        if self._conn is None:
            raise self._refuse("not open")
        return self._conn.command(line)

    def _set_range(self, which: str, value: str) -> None:
        reply = self._command(f"SR,{which},{value}")
        if reply != f"Range {which} changed":
            raise MeterError(
                f"PTDaemon refused range {value} {which}: {reply!r}; "
                f"check volts_range/amps_range in meter profile {self.name}"
            )
        self._ranges[which] = value
        self._ranges_changed = True

    def close(self) -> None:
        self._abandon_recording(None)
        if self._conn is not None:
            if self._ranges_changed:
                # As MLPerf's server does; a dead daemon cannot be restored, close anyway.
                with contextlib.suppress(MeterError):
                    self._set_range("V", self._initial_ranges[0])
                    self._set_range("A", self._initial_ranges[1])
                self._ranges_changed = False
            self._conn.close()
            self._conn = None
        self._stop_emulator()

    # -- description -----------------------------------------------------------------------
    def describe(self) -> MeterInfo:
        fields = self._identity.split(",") if self._identity else []
        details = dict(f.split("=", 1) for f in fields[1:] if "=" in f)
        model = fields[0] if fields else str(self.profile.get("model", "PTDaemon analyzer"))
        client = mlcommons_power.find_client()
        notes = [
            "lab measurement through edgebench's own PTDaemon client: not MLPerf-Power-valid "
            "(that needs MLCommons' unmodified power client/server and a licensed PTDaemon)",
            f"PTDaemon version {details['version']}" if "version" in details else "",
            client.describe(),
            *self._emulated_note("analyzer"),
        ]
        return MeterInfo(
            driver=self.driver,
            model=model,
            serial=details.get("serial"),
            sample_rate_hz=1000.0 / self.interval_ms,
            ranges=[f"V {self._ranges['V']}", f"A {self._ranges['A']}"],
            accuracy=dict(self.profile.get("accuracy") or WT310_ACCURACY),
            records_marks=False,
            mlperf_power_valid=False,
            notes="; ".join(n for n in notes if n),
        )

    # -- recording -------------------------------------------------------------------------
    def start(self, directory: Path, phase: str = "testing") -> None:
        if phase not in PHASES:
            raise MeterError(f"unknown phase {phase!r}; use one of {', '.join(PHASES)}")
        self._check_can_start()  # not open: the first command says so
        volts, amps = self._phase_ranges(phase)
        self._set_range("V", volts)
        self._set_range("A", amps)
        time.sleep(self.settle_s)
        mark = f"{session_name()}_{phase}"
        reply = self._command(f"Go,{self.interval_ms},0,{mark}")
        if not reply.startswith("Starting untimed measurement"):
            raise MeterError(f"PTDaemon did not start measuring: {reply!r}; check ptd's console")
        writer = PowerTraceWriter(Path(directory), "power", self.describe().to_dict(), clock="utc")
        assert self._conn is not None
        period = self.interval_ms / 1000.0
        self._recording = _Recording(self._conn, writer, phase, mark, period)
        self._recording.begin()

    def _phase_ranges(self, phase: str) -> tuple[str, str]:
        if phase == "ranging":
            return "Auto", "Auto"
        volts, amps = self.profile.get("volts_range"), self.profile.get("amps_range")
        if self._max_va is not None:
            volts = volts or self._max_va[0]
            amps = amps or self._max_va[1] * AMPS_MARGIN
        if volts is None or amps is None:
            raise MeterError(
                f"meter {self.name}: the testing phase needs ranges; run the ranging phase "
                "first (the runner does for PTD) or set volts_range and amps_range"
            )
        return f"{float(volts):g}", f"{float(amps):g}"

    def stop(self) -> PowerTrace:
        recording = self._take_recording()
        recording.halt()
        if recording.failure is None:
            try:
                recording.end_measurement()
            except MeterError as error:
                recording.fail(str(error))
        trace = recording.finish()
        if recording.phase == "ranging":
            self._max_va = recording.max_va()
        return trace


class _Recording(Recording):
    """One Go..Stop measurement: a thread polls `RL` and appends what arrives; `mark` is the
    one sent with Go, which spl.txt's lines carry."""

    reader_name = "ptd-reader"

    def __init__(
        self, conn: _Lines, writer: PowerTraceWriter, phase: str, mark: str, period: float
    ) -> None:
        super().__init__(writer, "check the daemon and rerun")
        self.conn = conn
        self.phase = phase
        self.mark = mark
        self.poll_s = min(max(period, 0.1), 1.0)
        self.read_command = "RL"
        self.max_volts = 0.0
        self.max_amps = 0.0
        self._exchange = threading.Lock()  # one command/reply exchange at a time
        self._spl = open(writer.directory / "spl.txt", "a")  # noqa: SIM115 (closed at the end)

    def poll(self) -> None:
        """Fetch and store the samples PTDaemon has not sent yet."""
        with self._exchange:
            header = self.conn.command(self.read_command)
            if "Unknown command" in header and self.read_command == "RL":
                self.read_command = "DC-RL"  # DC analyzers (power-dev's fallback order)
                header = self.conn.command(self.read_command)
            words = header.split()
            if len(words) != 3 or words[0] != "Last" or not words[1].isdigit():
                self.writer.event(time.time(), "message", f"unexpected reply to RL: {header!r}")
                return
            lines = [self.conn.readline() for _ in range(int(words[1]))]
        times, watts = [], []
        for line in lines:
            try:
                t, w, v, a = parse_sample(line)
            except ValueError:
                self.writer.event(time.time(), "message", f"unparseable sample line {line!r}")
                continue
            self._spl.write(spl_line(line, self.mark) + "\n")
            if usable(self.writer, line, t, w, a):
                times.append(t)
                watts.append(w)
                self.max_volts = max(self.max_volts, v)
                self.max_amps = max(self.max_amps, a)
        self._spl.flush()
        if times:
            self.writer.append(np.array(watts), np.array(times))

    def end_measurement(self) -> None:
        """Stop the measurement, drain the last samples, keep PTD's own summary."""
        with self._exchange:
            reply = self.conn.command("Stop")
        if not reply.startswith("Stopping"):
            self.writer.event(time.time(), "message", f"reply to Stop: {reply!r}")
        self.poll()
        with self._exchange:
            watts = self.conn.command("Watts")
            uncertainty = self.conn.command("Uncertainty")
        (self.writer.directory / "ptd_out.txt").write_text(f"{watts}\n{uncertainty}\n")
        fields = uncertainty.split(",")
        try:
            worst = float(fields[3])
        except (IndexError, ValueError):
            worst = -1.0
        if worst > UNCERTAINTY_LIMIT:
            self.writer.event(
                time.time(),
                "uncertain",
                f"PTDaemon reports uncertainty up to {worst:.2%} (> 1 %): {uncertainty}",
            )
        self._spl.close()

    def _failure_time(self) -> float:
        last = self.writer.last_time
        return last if last is not None else time.time()

    def fail(self, why: str) -> None:
        super().fail(why)
        self._spl.close()

    def max_va(self) -> tuple[float, float] | None:
        return (self.max_volts, self.max_amps) if self.max_amps > 0 else None

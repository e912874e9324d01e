"""MLCommons' own power client (power-dev `ptd_client_server`) as a meter: the MLPerf Power path.

Only that client and its server, unmodified (the submission checker compares their source
checksums), driving a licensed PTDaemon give MLPerf-Power-valid results; edgebench's `ptd`
driver is a lab instrument. So this driver measures nothing itself: it runs the client and
lets it own the measurement, as MLPerf requires.

The client runs its workload command twice, ranging then testing (research/power_and_peers.md
§A1; power-dev `lib/client.py`): it starts the phase on the power server, runs the command,
looks in its `-L` folder for the `mlperf_log_detail.txt` whose `power_begin`/`power_end` lie
inside the command's run, copies that log and the summary, and stops the phase. At the end it
downloads the server's files into `<-o>/<session>/` (`power/`, `ranging/`, `run_1/`, each
with `spl.txt`: one sample a second, `Time,...,Watts,...,Mark,<session>_<phase>`).

edgebench's runner keeps its own loop (EnergyStep: start, run, stop; ranging first) by handing
the client a gate (`mlcommons_gate`) as the workload: start() launches the client (ranging)
and returns once the gate has called back, i.e. once the server is measuring; stop() puts the
run's LoadGen logs into `-L` and releases the gate. The meter's directory sits inside the run
directory of the workload it measures (EnergyStep's layout), which is where those logs are.
The testing stop() waits for the client to finish, copies its session into `<power>/mlcommons/`
(the files a submission lays out as `performance/{power,ranging,run_1}`), and turns
`run_1/spl.txt` into the run's power trace (UTC clock), whose energy is MLPerf's figure: the
mean of the positive watts in the window times its duration.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..lab.emulator_process import end_process
from ..metrics.power_trace import PowerTrace, PowerTraceWriter
from . import mlcommons_gate, ptd
from .base import PHASES, Meter, MeterError, MeterInfo
from .registry import register

CLIENT_SCRIPT = "power_client"
CLIENT_MODULE = "ptd_client_server.client"
DEFAULT_SERVER_PORT = 4950
#: Files MLPerf's submission checker requires per folder (INF REQUIRED_POWER_FILES /
#: REQUIRED_PERF_POWER_FILES).
REQUIRED = {
    "power": ("client.json", "client.log", "ptd_logs.txt", "server.json", "server.log"),
    "ranging": ("mlperf_log_detail.txt", "mlperf_log_summary.txt", "spl.txt"),
    "run_1": ("mlperf_log_detail.txt", "mlperf_log_summary.txt", "spl.txt"),
}

#: The LoadGen logs the client copies from `-L` into `ranging/` and `run_1/`.
LOADGEN_LOGS = ("mlperf_log_detail.txt", "mlperf_log_summary.txt")
#: Where in the testing power directory the client's session is kept.
SESSION_DIR = "mlcommons"
#: Where in the ranging power directory the client works (its -L and -o, its console).
CLIENT_WORK_DIR = "mlcommons-client"
#: The lab stand-in for client + server (edgebench.lab.power_client_stand_in): never valid.
STAND_IN_MODULE = "edgebench.lab.power_client_stand_in"
#: The server sleeps 10 s around each phase and PTDaemon may take ~17 s to start.
DEFAULT_TIMEOUT_S = 120.0
#: MLPerf Power's analyzers are Yokogawa's (the checker's whitelist of PTDaemon device types).
ACCEPTED_ANALYZER = "Yokogawa"


@dataclass(frozen=True)
class ClientInfo:
    """Where MLCommons' power client is, if anywhere."""

    command: tuple[str, ...] | None

    @property
    def found(self) -> bool:
        return self.command is not None

    def describe(self) -> str:
        if self.command is None:
            return (
                "MLCommons power client not installed (pip install "
                "git+https://github.com/mlcommons/power-dev): no MLPerf Power submission path"
            )
        return f"MLCommons power client found: {' '.join(self.command)}"


def find_client() -> ClientInfo:
    """The `power_client` console script, else the importable module, else nothing."""
    script = shutil.which(CLIENT_SCRIPT)
    if script:
        return ClientInfo((script,))
    try:
        if importlib.util.find_spec(CLIENT_MODULE) is not None:
            return ClientInfo((sys.executable, "-m", CLIENT_MODULE))
    except ModuleNotFoundError:
        pass
    return ClientInfo(None)


def client_command(
    client: ClientInfo,
    *,
    server: str,
    workload: str,
    loadgen_logs: Path,
    output: Path,
    ntp: str,
    label: str = "edgebench",
    port: int = DEFAULT_SERVER_PORT,
) -> list[str]:
    """The client's command line (power-dev `lib/client.py`: -a -p -w -L -o -n -l)."""
    if client.command is None:
        raise MeterError(f"{client.describe()}; install it to make MLPerf Power submissions")
    return [
        *client.command,
        "--addr", server,
        "--port", str(port),
        "--run-workload", workload,
        "--loadgen-logs", str(loadgen_logs),
        "--output", str(output),
        "--ntp", ntp,
        "--label", label,
    ]  # fmt: skip


def latest_session(output: Path, label: str = "edgebench") -> Path:
    """The newest `<timestamp>_<label>` session folder the client wrote into `output`."""
    sessions = sorted(p for p in Path(output).glob(f"*_{label}") if p.is_dir())
    if not sessions:
        raise MeterError(
            f"no MLCommons power client session '*_{label}' in {output}; "
            "check the client's log (did the run finish?)"
        )
    return sessions[-1]


def kept_session(power_dir: Path) -> Path | None:
    """The client session a run kept in its power directory, if the meter was this one."""
    sessions = sorted(p for p in (Path(power_dir) / SESSION_DIR).glob("*") if p.is_dir())
    return sessions[-1] if sessions else None


def lay_out(session: Path, performance_dir: Path) -> list[Path]:
    """Copy a client session into MLPerf's `.../<scenario>/performance/` folder, unchanged.

    Every required file is checked first, so a half-finished session never produces a tree
    that looks complete. Returns the files written."""
    session = Path(session)
    missing = [
        f"{folder}/{name}"
        for folder, names in REQUIRED.items()
        for name in names
        if not (session / folder / name).is_file()
    ]
    if missing:
        raise MeterError(
            f"MLCommons power session {session} lacks {', '.join(missing)}; "
            "rerun the power client (both ranging and testing must finish)"
        )
    written = []
    for folder in REQUIRED:
        target = Path(performance_dir) / folder
        target.mkdir(parents=True, exist_ok=True)
        for source in sorted((session / folder).iterdir()):
            if source.is_file():
                written.append(Path(shutil.copy2(source, target / source.name)))
    return written


@register
class MlcommonsPowerMeter(Meter):
    driver = "mlcommons-power"
    tested_against = (
        "stand-in client (edgebench.lab.power_client_stand_in) on the PTDaemon emulator; "
        "by hand, MLCommons' client and server (power-dev) on the PTDaemon emulator; no hardware"
    )
    emulator_module = "edgebench.lab.ptd_emulator"
    needs_ranging = True
    records_alone = False
    profile_keys: ClassVar[dict[str, type | tuple[type, ...]]] = {
        "server": str,
        "port": int,
        "ntp": str,
        "label": str,
        "client": (list, type(None)),
        "timeout_s": (int, float),
    }

    def __init__(self, profile: dict[str, Any]) -> None:
        super().__init__(profile)
        self.server = str(profile.get("server", "127.0.0.1"))
        self.port = int(profile.get("port", DEFAULT_SERVER_PORT))
        self.ntp = profile.get("ntp")
        self.label = str(profile.get("label", "edgebench"))
        self.timeout_s = float(profile.get("timeout_s", DEFAULT_TIMEOUT_S))
        label_ok = bool(self.label) and all(c.isalnum() or c in "-_" for c in self.label)
        self._require("label", self.label, label_ok, ": letters, digits, - and _ only")
        self._require("ntp", self.ntp, self.ntp is not None, ": set the NTP server both hosts use")
        ranging = profile.get("ranging", True)
        self._require("ranging", ranging, ranging, ": MLCommons' client always ranges first")
        self._client: ClientInfo | None = None
        self._listener: socket.socket | None = None
        self._token = secrets.token_hex(8)
        self._process: subprocess.Popen[bytes] | None = None
        self._work: Path | None = None
        self._gate: socket.socket | None = None
        self._phase: tuple[str, Path] | None = None
        self._analyzer: str | None = None  # PTDaemon's Identify reply, once a session is in

    # -- connection ------------------------------------------------------------------------
    def open(self) -> None:
        if self._client is not None:
            return
        port = self._start_emulator()
        if port is not None:  # the stand-in client talks to the emulated PTDaemon itself
            self.server, self.port = "127.0.0.1", int(port)
        command = [str(word) for word in self.profile.get("client") or ()]
        if command[:1] in (["python"], ["python3"]):  # the interpreter running edgebench
            command[0] = sys.executable
        client = ClientInfo(tuple(command)) if command else find_client()
        try:
            if not client.found:
                raise MeterError(
                    f"meter {self.name}: {client.describe()}, or name its command in the "
                    "profile (client: [python, /path/to/client.py])"
                )
            try:
                socket.create_connection((self.server, self.port), timeout=5.0).close()
            except OSError as error:
                raise MeterError(
                    f"cannot reach the MLCommons power server at {self.server}:{self.port} "
                    f"({error.strerror or error}); start `power_server -c server.conf` on the "
                    f"director, or fix server/port in meter profile {self.name}"
                ) from None
            self._listener = socket.create_server(("127.0.0.1", 0))
        except MeterError:
            self.close()
            raise
        self._client = client

    def close(self) -> None:
        self._release_gate("the edgebench run closed the meter")
        self._end_client()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        self._phase = None
        self._client = None
        self._stop_emulator()

    def _end_client(self) -> None:
        """Stop a client still running (an abandoned session), so the next run starts anew."""
        if self._process is not None:
            end_process(self._process, 5.0)
        self._process = None

    # -- description -----------------------------------------------------------------------
    def _stand_in(self) -> bool:
        return self._emulator is not None or STAND_IN_MODULE in (self._client_command() or ())

    def _accepted_analyzer(self) -> bool:
        """MLPerf Power accepts Yokogawa analyzers only; unknown until a session is in."""
        return self._analyzer is None or self._analyzer.startswith(ACCEPTED_ANALYZER)

    def _client_command(self) -> tuple[str, ...] | None:
        return self._client.command if self._client else None

    def describe(self) -> MeterInfo:
        notes = [
            "measured by MLCommons' power client and server; whether the result is "
            "MLPerf-Power-valid is the MLCommons submission checker's call (their source "
            "checksums, the PTDaemon version and analyzer)",
            f"client: {' '.join(self._client_command() or ('not found',))}",
            *self._emulated_note("analyzer"),
        ]
        if self._stand_in():
            notes.append("stand-in client and analyzer for tests: never an MLPerf Power result")
        if self._analyzer is not None:
            notes.append(f"PTDaemon's analyzer identifies as {self._analyzer!r}")
        if not self._accepted_analyzer():
            notes.append("not an analyzer MLPerf Power accepts (Yokogawa only): lab measurement")
        analyzer = (self._analyzer or "").split(",")
        return MeterInfo(
            driver=self.driver,
            model=f"MLCommons power client/server with PTDaemon {analyzer[0]}".strip(),
            serial=next((f[7:] for f in analyzer if f.startswith("serial=")), None),
            sample_rate_hz=1.0,  # the server's Go,1000: one sample a second
            accuracy=dict(self.profile.get("accuracy") or ptd.WT310_ACCURACY),
            records_marks=False,
            mlperf_power_valid=not self._stand_in() and self._accepted_analyzer(),
            energy_method="mlperf-power",
            notes="; ".join(notes),
        )

    # -- recording -------------------------------------------------------------------------
    def start(self, directory: Path, phase: str = "testing") -> None:
        if phase not in PHASES:
            raise MeterError(f"unknown phase {phase!r}; use one of {', '.join(PHASES)}")
        if self._client is None:
            raise self._refuse("not open")
        if self._phase is not None:
            raise self._refuse("already recording")
        directory = Path(directory)
        if phase == "ranging":
            self._launch(directory)
        elif self._process is None:
            raise MeterError(
                f"meter {self.name}: the testing phase needs the client's ranging phase first "
                "(MLCommons' client runs both); record ranging before testing"
            )
        self._gate = self._await_gate(phase)
        self._phase = (phase, directory)

    def _launch(self, directory: Path) -> None:
        if self._process is not None:
            raise MeterError(
                f"meter {self.name}: the client is already running a session; one ranging "
                "and one testing phase per session"
            )
        assert self._listener is not None and self._client is not None
        self._work = directory.absolute() / CLIENT_WORK_DIR
        (self._work / "loadgen").mkdir(parents=True, exist_ok=True)
        host, port = self._listener.getsockname()[:2]
        gate = [sys.executable, "-m", mlcommons_gate.__name__, f"{host}:{port}", self._token]
        command = client_command(
            self._client,
            server=self.server,
            port=self.port,
            workload=shlex.join(gate),
            loadgen_logs=self._work / "loadgen",
            output=self._work / "output",
            ntp=str(self.ntp),
            label=self.label,
        )
        (self._work / "command.txt").write_text(shlex.join(command) + "\n")
        with open(self._work / "console.txt", "wb") as console:
            try:
                self._process = subprocess.Popen(
                    command, stdout=console, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
                )
            except OSError as error:
                raise MeterError(
                    f"cannot start the MLCommons power client {command[0]!r} "
                    f"({error.strerror or error}); fix `client:` in meter profile {self.name}"
                ) from None

    def _await_gate(self, phase: str) -> socket.socket:
        """The gate's call once the server measures; MeterError if the client gives up."""
        assert self._listener is not None
        deadline = time.monotonic() + self.timeout_s
        self._listener.settimeout(0.2)
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                self._process = None
                raise MeterError(
                    f"MLCommons power client exited before the {phase} phase began "
                    f"({self._console_tail()}); see {self._work}/console.txt"
                )
            try:
                link, _ = self._listener.accept()
            except TimeoutError:
                continue
            link.settimeout(5.0)
            try:
                hello = json.loads(link.makefile("r").readline() or "{}")
            except (OSError, ValueError):
                hello = {}
            if hello.get("token") == self._token:
                link.settimeout(None)
                return link
            link.close()  # not our gate
        self._end_client()
        raise MeterError(
            f"MLCommons power client did not start the {phase} phase within "
            f"{self.timeout_s:g} s ({self._console_tail()}); check the power server, or "
            f"raise timeout_s in meter profile {self.name}"
        )

    def _console_tail(self) -> str:
        try:
            lines = (self._work / "console.txt").read_text(errors="replace").splitlines()
        except (OSError, TypeError):
            return "no console output"
        return " | ".join(line.strip() for line in lines[-2:] if line.strip()) or "no output"

    def _release_gate(self, answer: str) -> None:
        if self._gate is not None:
            with contextlib.suppress(OSError):
                self._gate.sendall(answer.encode() + b"\n")
            self._gate.close()
            self._gate = None

    def stop(self) -> PowerTrace:
        if self._phase is None:
            raise self._refuse("not recording")
        phase, directory = self._phase
        self._phase = None
        assert self._work is not None
        logs = directory.parent
        missing = [name for name in LOADGEN_LOGS if not (logs / name).is_file()]
        if missing:
            why = (
                f"the run left no {', '.join(missing)} in {logs}; MLCommons' client needs "
                "LoadGen's logs: run with --loop loadgen"
            )
            self._release_gate(why)
            self._end_client()
            raise self._fail(directory, phase, why)
        into = self._work / "loadgen" / phase
        into.mkdir(parents=True, exist_ok=True)
        for name in LOADGEN_LOGS:
            shutil.copy2(logs / name, into / name)
        self._release_gate(mlcommons_gate.DONE)
        if phase == "ranging":
            trace = PowerTraceWriter(directory, "power", self.describe().to_dict(), clock="utc")
            trace.event(time.time(), "message", "ranging samples arrive with the session")
            return trace.close("complete")
        return self._collect(directory)

    def _collect(self, directory: Path) -> PowerTrace:
        """Wait for the client's session, keep it, and read its testing samples."""
        assert self._process is not None and self._work is not None
        try:
            code = self._process.wait(timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            self._end_client()
            raise self._fail(
                directory, "testing", f"the client did not finish within {self.timeout_s:g} s"
            ) from None
        self._process = None
        if code != 0:
            why = f"the client failed (exit {code}: {self._console_tail()})"
            raise self._fail(directory, "testing", why)
        try:
            session = latest_session(self._work / "output", self.label)
        except MeterError as error:
            raise self._fail(directory, "testing", str(error)) from None
        kept = directory / SESSION_DIR / session.name
        kept.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(session, kept)
        with contextlib.suppress(OSError):  # the client's -o, empty now; checkers flag those
            session.parent.rmdir()
        self._analyzer = analyzer_identity(kept)
        return _trace_from_spl(kept / "run_1" / "spl.txt", directory, self.describe())

    def _fail(self, directory: Path, phase: str, why: str) -> MeterError:
        """Close this phase's trace as stopped, keep what the client wrote, and say where."""
        writer = PowerTraceWriter(directory, "power", self.describe().to_dict(), clock="utc")
        writer.event(time.time(), "gap", why)
        writer.close(f"stopped: {why}")
        return MeterError(
            f"MLCommons power {phase} phase failed: {why}; the client's files are kept in "
            f"{self._work}"
        )


def analyzer_identity(session: Path) -> str | None:
    """PTDaemon's reply to `Identify` (model first) as the server logged it in server.json."""
    try:
        about = json.loads((session / "power" / "server.json").read_text())
    except (OSError, ValueError):
        return None
    for message in about.get("ptd_messages") or []:
        if isinstance(message, dict) and message.get("cmd") == "Identify":
            return str(message.get("reply"))
    return None


def _trace_from_spl(spl: Path, directory: Path, info: MeterInfo) -> PowerTrace:
    """The samples of one spl.txt as a power trace (UTC clock), overloads as events."""
    writer = PowerTraceWriter(directory, "power", info.to_dict(), clock="utc")
    times, watts = [], []
    for line in spl.read_text(errors="replace").splitlines():
        try:
            t, w, _, a = ptd.parse_sample(line)
        except ValueError:
            writer.event(time.time(), "message", f"unparseable sample line {line!r}")
            continue
        if ptd.usable(writer, line, t, w, a):
            times.append(t)
            watts.append(w)
    if times:
        writer.append(np.array(watts), np.array(times))
    return writer.close("complete")

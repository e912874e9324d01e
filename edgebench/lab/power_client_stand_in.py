"""A stand-in for MLCommons' power client and server in one process, for tests on loopback.

power-dev is not on PyPI and its server needs a licensed PTDaemon, so CI cannot run the real
pair. This stand-in keeps the side of the client's contract that edgebench's
`mlcommons-power` driver depends on (power-dev `lib/client.py`, `lib/server.py`):
- its command line: -a -p -w -L -o -n -l (-T: no session folder);
- two phases, ranging then testing, each: set the ranges (Auto; then the ranging run's
  largest volts and 1.1 x its largest amps), `Go,1000,0,<session>_<phase>`, the workload in
  a shell, `Stop`, `RL`;
- the LoadGen log it keeps: the `mlperf_log_detail.txt` under -L whose power_begin and
  power_end lie inside the workload's run, copied with its summary; none is a failure;
- the session left in `<-o>/<YYYY-MM-DD_HH-MM-SS>_<label>/`: `power/`, `ranging/` and
  `run_1/`, spl.txt lines ending `,Mark,<session>_<phase>` as the server writes them.
It talks PTDaemon's protocol straight to the analyzer at -a:-p (edgebench's PTDaemon
emulator) where the real client talks to the power server, skips NTP (-n is accepted) and
writes placeholder power/ files (the real ones carry source checksums and message logs), so
its results can never pass as MLPerf Power results; the driver labels them so.

    python -m edgebench.lab.power_client_stand_in -a 127.0.0.1 -p PORT -n NTP \
        -w "COMMAND" -L LOGDIR -o OUTDIR -l LABEL
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from ..meters.ptd import parse_sample
from ..submission.checks.performance import POWER_TIME_FORMAT
from ..submission.run_files import read_loadgen_detail

PHASE_FOLDERS = {"ranging": "ranging", "testing": "run_1"}
AMPS_MARGIN = 1.1
POWER_FILES = ("client.json", "client.log", "ptd_logs.txt", "server.json", "server.log")


class StandInFailure(RuntimeError):
    """The session cannot go on; the message is what the real client would log."""


class Analyzer:
    """PTDaemon's text protocol, with every exchange kept for ptd_logs.txt."""

    def __init__(self, host: str, port: int) -> None:
        try:
            self.sock = socket.create_connection((host, port), timeout=10.0)
        except OSError as error:
            raise StandInFailure(f"Could not connect to the server {host}:{port} {error}") from None
        self.reader = self.sock.makefile("r", encoding="utf-8", newline="")
        self.transcript: list[tuple[str, str]] = []
        self.measuring = False

    def line(self) -> str:
        text = self.reader.readline()
        if not text:
            raise StandInFailure("The analyzer closed the connection")
        return text.rstrip("\r\n")

    def command(self, text: str) -> str:
        self.sock.sendall(text.encode() + b"\r\n")
        reply = self.line()
        self.transcript.append((text, reply))
        if text.startswith("Go,") and reply.startswith("Starting"):
            self.measuring = True
        elif text == "Stop":
            self.measuring = False
        return reply

    def samples(self) -> list[str]:
        header = self.command("RL").split()
        if len(header) != 3 or header[0] != "Last" or not header[1].isdigit():
            raise StandInFailure(f"unexpected reply to RL: {' '.join(header)!r}")
        return [self.line() for _ in range(int(header[1]))]


def utc_seconds(stamp: str) -> float:
    return datetime.strptime(stamp, POWER_TIME_FORMAT).replace(tzinfo=UTC).timestamp()


def find_loadgen_log(root: Path, began: float, ended: float) -> Path:
    """The detail log written by this phase's workload, as the real client picks it."""
    for detail in sorted(root.rglob("mlperf_log_detail.txt")):
        log = read_loadgen_detail(detail)
        begin, end = log.get("power_begin"), log.get("power_end")
        try:
            if begin and end and began < utc_seconds(begin) and utc_seconds(end) < ended:
                return detail
        except ValueError:
            continue
    raise StandInFailure(
        f"Expected {str(root)!r} to be a directory containing loadgen logs, but it is not"
    )


def run_phase(
    analyzer: Analyzer, session: str, phase: str, ranges: tuple[str, str], args, out: Path
) -> list[tuple[float, float, float]]:
    """One phase; returns its (watts, volts, amps) samples."""
    for which, value in zip("VA", ranges, strict=True):
        analyzer.command(f"SR,{which},{value}")
    mark = f"{session}_{phase}"
    reply = analyzer.command(f"Go,1000,0,{mark}")
    if not reply.startswith("Starting"):
        raise StandInFailure(f"the analyzer did not start measuring: {reply!r}")
    began = time.time()
    workload = subprocess.run(args.run_workload, shell=True, check=False)
    ended = time.time()
    analyzer.command("Stop")
    lines = analyzer.samples()
    if workload.returncode != 0:
        raise StandInFailure(f"the workload exited with {workload.returncode}")
    folder = out / PHASE_FOLDERS[phase]
    folder.mkdir(parents=True)
    detail = find_loadgen_log(Path(args.loadgen_logs), began, ended)
    for name in ("mlperf_log_detail.txt", "mlperf_log_summary.txt"):
        shutil.copy2(detail.parent / name, folder / name)
    readings = []
    with open(folder / "spl.txt", "w") as spl:
        for line in lines:
            if ",Mark," not in line:
                line += f",Mark,{mark}"
            spl.write(line + "\n")
            _, watts, volts, amps = parse_sample(line)
            readings.append((watts, volts, amps))
    return readings


def write_power_files(out: Path, session: str, analyzer: Analyzer, log: list[str]) -> None:
    power = out / "power"
    power.mkdir(parents=True)
    results = {
        str(path.relative_to(out)): hashlib.sha1(path.read_bytes()).hexdigest()
        for path in sorted(out.rglob("*"))
        if path.is_file()
    }
    about = {"stand_in": True, "session_name": session, "results": results}
    (power / "client.json").write_text(json.dumps(about, indent=2) + "\n")
    messages = [{"cmd": cmd, "reply": reply} for cmd, reply in analyzer.transcript]
    server = {"stand_in": True, "ptd_messages": messages}
    (power / "server.json").write_text(json.dumps(server, indent=2) + "\n")
    (power / "client.log").write_text("".join(f"{line}\n" for line in log))
    (power / "server.log").write_text("stand-in: client and server are one process\n")
    (power / "ptd_logs.txt").write_text("".join(f"{c} -> {r}\n" for c, r in analyzer.transcript))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="stand-in for MLCommons' power client")
    parser.add_argument("-a", "--addr", required=True)
    parser.add_argument("-p", "--port", type=int, default=4950)
    parser.add_argument("-w", "--run-workload", required=True)
    parser.add_argument("-L", "--loadgen-logs", required=True)
    parser.add_argument("-o", "--output", required=True)
    parser.add_argument("-n", "--ntp", required=True)
    parser.add_argument("-l", "--label", default="")
    parser.add_argument("-T", "--no-timestamp-path", action="store_true")
    return parser.parse_args(argv)


def stop_on_sigterm(signum: int, frame: object) -> None:
    raise StandInFailure("terminated")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    log: list[str] = []
    # Terminated mid-phase (the run was abandoned), it ends the analyzer's measurement as
    # the real server ends a dropped session's, so the next session can start one.
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    analyzer: Analyzer | None = None
    try:
        analyzer = Analyzer(args.addr, args.port)
        if analyzer.command("Hello") != "Hello, PTDaemon here!":
            raise StandInFailure("Not a PTDaemon")
        analyzer.command("Identify")
        analyzer.command("RR")
        session = datetime.now().strftime("%Y-%m-%d_%H-%M-%S") + f"_{args.label}"
        out = Path(args.output) if args.no_timestamp_path else Path(args.output) / session
        ranging = run_phase(analyzer, session, "ranging", ("Auto", "Auto"), args, out)
        log.append(f"ranging done: {len(ranging)} samples")
        volts = max((v for _, v, _ in ranging), default=0.0)
        amps = max((a for _, _, a in ranging), default=0.0) * AMPS_MARGIN
        testing = run_phase(analyzer, session, "testing", (f"{volts:g}", f"{amps:g}"), args, out)
        log.append(f"testing done: {len(testing)} samples")
        write_power_files(out, session, analyzer, log)
    except StandInFailure as failure:
        print(f"[CRITICAL] {failure}", file=sys.stderr)
        if analyzer is not None and analyzer.measuring:
            with contextlib.suppress(OSError, StandInFailure):
                analyzer.command("Stop")
        return 1
    print("Successful exit", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The PTDaemon emulator as MLCommons' power server runs it: started with PTDaemon's own
command line (`-l LOG -p PORT ... DEVICE_TYPE DEVICE_PORT`), spoken to over TCP, its log file
and console read the way that server and MLCommons' compliance checker read them."""

from __future__ import annotations

import re
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from edgebench.lab.emulator_process import STOP_TIMEOUT_S, python_module_argv

from .meter_support import free_port

MODULE = "edgebench.lab.ptd_emulator"
IDLE_W = 2.0  # the emulator's default idle power; no activity file, so always idle
INTERVAL_MS = 100
#: power-dev `lib/server.py` RE_PTD_LOG: how the server finds ranging lines in the log.
PTD_LOG_LINE = re.compile(
    r"^Time,[^,]*,Watts,[^,]*,Volts,(?P<v>[^,]*),Amps,(?P<a>[^,]*),PF,[^,]*,Mark,(?P<mark>[^,]*)$"
)
#: The compliance checker (power-dev compliance/check.py): console time stamp and messages.
CONSOLE_TIME = r"^\d\d-\d\d-\d\d\d\d \d\d:\d\d:\d\d.\d\d\d"
UNCERTAINTY_ON = re.compile(r"Uncertainty checking for Yokogawa\S+ is activated")


class Daemon:
    """One emulator process started as the power server starts ptd, and one client of it."""

    def __init__(self, process: subprocess.Popen[bytes], console: Path, port: int) -> None:
        self.process = process
        self.console = console
        deadline = time.monotonic() + 15
        while True:  # as the server does: retry connecting until the daemon listens
            assert process.poll() is None, console.read_text()
            try:
                self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                break
            except ConnectionRefusedError:
                assert time.monotonic() < deadline, "emulator did not listen within 15 s"
                time.sleep(0.05)
        self.stream = self.sock.makefile("rwb")

    def command(self, line: str) -> str:
        self.stream.write(line.encode() + b"\r\n")
        self.stream.flush()
        return self.read()

    def read(self) -> str:
        return self.stream.readline().decode().rstrip("\r\n")

    def console_messages(self) -> list[str]:
        """The console's time-stamped lines, without their time stamp (as the checker sees
        them); the first console line, the bare port, has none."""
        lines = self.console.read_text().splitlines()
        return [re.sub(CONSOLE_TIME, "", line).strip() for line in lines[1:]]


@contextmanager
def ptd(tmp_path: Path, *device: str) -> Iterator[Daemon]:
    """`ptd -l <log> -p <port> <device...>` with stdout kept in a file (the server's Tee)."""
    port = free_port()
    args = ["-l", str(tmp_path / "ptd_logfile.txt"), "-p", str(port), *device]
    argv, env = python_module_argv(MODULE, args)
    with (tmp_path / "console.txt").open("wb") as console:
        process = subprocess.Popen(argv, stdout=console, stderr=subprocess.STDOUT, env=env)
    try:
        daemon = Daemon(process, tmp_path / "console.txt", port)
        with daemon.sock, daemon.stream:
            yield daemon
    finally:
        process.terminate()
        process.wait(timeout=STOP_TIMEOUT_S)


def log_mark(line: str) -> str | None:
    """The Mark of a log line as the server's regex reads it (None: not such a line)."""
    found = PTD_LOG_LINE.match(line)
    return found["mark"] if found else None


def summary(reply: str) -> tuple[float, int]:
    """(average, number of values) from a `Watts,...` or `Uncertainty,...` reply."""
    fields = reply.split(",")
    return float(fields[1]), int(fields[4])


def test_ptd_command_line_session(tmp_path: Path) -> None:
    mark = "2026-01-02_03-04-05_edgebench_ranging"
    with ptd(tmp_path, "-n", "49", "COM1") as daemon:
        assert daemon.command("Hello") == "Hello, PTDaemon here!"
        assert daemon.command(f"Go,{INTERVAL_MS},0,{mark}").startswith("Starting untimed")
        time.sleep(0.6)
        # The log grows while measuring, every line with the Go mark, as the server reads it.
        live = (tmp_path / "ptd_logfile.txt").read_text().splitlines()
        assert len(live) >= 3
        assert [log_mark(line) for line in live] == [mark] * len(live)
        # Watts and Uncertainty before Stop (the server asks while testing): the samples so far.
        watts, good = summary(daemon.command("Watts"))
        assert good >= len(live) and watts == pytest.approx(IDLE_W)
        assert summary(daemon.command("Uncertainty"))[1] == good
        header = daemon.command("RL")
        lines = [daemon.read() for _ in range(int(header.split()[1]))]
        assert len(lines) >= good
        # RL lines end at PF, as the real daemon's: the server appends the Mark itself.
        assert all(line.endswith(",PF,0.900000") for line in lines)
        assert daemon.command("Stop") == "Stopping untimed measurement"
        total = summary(daemon.command("Watts"))[1]
        messages = daemon.console_messages()
    logged = (tmp_path / "ptd_logfile.txt").read_text().splitlines()
    assert len(logged) == total
    assert [line.removesuffix(f",Mark,{mark}") for line in logged[: len(lines)]] == lines
    # What MLCommons' checker needs in ptd_logs.txt, in this order.
    go = messages.index(f": Go with mark {mark!r}")
    assert any(UNCERTAINTY_ON.search(m) for m in messages[:go])
    assert ": Completed test" in messages[go:]
    assert not any(m.startswith("Device type") for m in messages)
    assert any("COM1" in m and "-n" in m for m in messages)


def test_other_device_type_is_emulated_as_wt310_and_said_so(tmp_path: Path) -> None:
    with ptd(tmp_path, "-D", "-c", "1", "8", "/dev/ttyUSB0") as daemon:
        assert daemon.command("Hello") == "Hello, PTDaemon here!"
        assert daemon.command("Identify").startswith("EmulatedWT310,")
        messages = daemon.console_messages()
    assert any(
        m.startswith(": Device type 8 requested; emulating a Yokogawa WT310") for m in messages
    )


@pytest.mark.parametrize("problem", ["unwritable log", "port taken"])
def test_bad_start_is_a_one_line_error(tmp_path: Path, problem: str) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        if problem == "port taken":
            args, fix = ["-p", str(taken.getsockname()[1])], "give -p a free port"
        else:
            args, fix = ["-l", str(tmp_path / "no" / "such" / "log.txt")], "give -l a writable"
        argv, env = python_module_argv(MODULE, args)
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and fix in done.stderr, done.stderr

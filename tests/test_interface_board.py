"""Serial DUTs behind an interface board: the host's `interface:` support end to end.

The emulated board (edgebench.lab.interface_board, its own process on its own pty) forwards
`dut` commands to a virtual MCU, so the profile's `port:` is the board and every byte crosses
two real ptys, as with an Arduino or an STM32H573I-DK in front of a Nucleo. Runs go at
115200 on both hops to stay fast; the 9600-baud DUT hop of energy setups is checked with an
identification (a 490-byte input takes over a second to load there).
"""

from __future__ import annotations

import json
import os
import pty
import re
import signal
import subprocess
import threading
import time
import tty
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import serial

from edgebench.devices.base import DeviceError
from edgebench.devices.profiles import open_device
from edgebench.devices.serial_dut import Dut
from edgebench.devices.serial_link import DutLink, DutLog
from edgebench.devices.serial_port import open_port
from edgebench.firmware.ports import firmware_port
from edgebench.lab.interface_board import BoardError, InterfaceBoard
from edgebench.meters.profiles import open_meter
from edgebench.runner.run import RunOptions, run_benchmark
from edgebench.runner.tiny_run import TINY_SCENARIO, read_windows
from edgebench.suite.benchmarks import get_benchmark

from .support import CLI, REPO
from .test_serial_device import (
    WINDOW_S,
    cli_error,
    run,
    tflm_reference,
    virtual,
    write_meter_profile,
    write_profile,
)

HOST_BAUD = 115200
DUT_BAUD = 9600  # EEMBC's energy builds behind the IO manager
INFER_US = 2000


@contextmanager
def behind(kind: str, mcu_baud: int = DUT_BAUD, *faults: str) -> Iterator[InterfaceBoard]:
    """A kws virtual MCU with a `kind` board in front of it."""
    with (
        virtual("kws", *faults, baud=mcu_baud, infer_us=INFER_US) as mcu,
        InterfaceBoard.start(kind, mcu.port, dut_baud=mcu_baud) as board,
    ):
        yield board


def board_profile(directory: Path, board: InterfaceBoard, kind: str, **keys: object) -> Path:
    return write_profile(directory, board.port, baud=HOST_BAUD, interface=kind, **keys)


def talk(port: str, command: str, timeout_s: float = 3.0) -> list[str]:
    """One raw command to the board; the lines it answers, up to its `m-ready`."""
    with serial.Serial(port, HOST_BAUD, timeout=timeout_s) as line:
        line.write(command.encode() + b"%")
        lines = [line.readline().decode("ascii", "replace").rstrip("\r\n")]
        while lines[-1] not in ("m-ready", ""):
            lines.append(line.readline().decode("ascii", "replace").rstrip("\r\n"))
    return lines


# --- end to end through the transport ---------------------------------------------------------


@pytest.mark.parametrize("kind", ["io-manager", "mlc-interface"])
def test_performance_and_accuracy_through_the_board(tmp_path: Path, kind: str) -> None:
    with behind(kind, HOST_BAUD) as board:
        profile = board_profile(tmp_path, board, kind)
        result = run(profile, "kws", "performance", tmp_path / "perf")
        accuracy = run(profile, "kws", "accuracy", tmp_path / "acc", max_samples=3)
    assert result["status"] == "complete" and result["valid"], result.get("reasons")
    assert result["scenario"] == TINY_SCENARIO and result["firmware_model_id"] == "eb-kws"
    system = result["system"]
    assert system["dut_name"] == "edgebench-virtual-mcu" and system["interface"] == kind
    metrics = result["metrics"]
    assert len(metrics["windows"]) == 5
    # the DUT's own laps: the second hop and the board add nothing to the timed window
    assert metrics["median_throughput"] == pytest.approx(1e6 / INFER_US, rel=1e-3)
    assert result["load"]["framing"] == "hex"
    assert result["load"]["payload_efficiency"] == pytest.approx(26 / 60, rel=0.02)
    log = (tmp_path / "perf" / result["run_id"] / "dut_log.txt").read_text()
    assert "> dut name%" in log and "< [dut]: m-name-dut-[edgebench-virtual-mcu]" in log
    chunks = re.findall(r"> dut db ([0-9a-f]+)%", log)
    assert chunks and max(len(c) for c in chunks) == 2 * 26  # 26 bytes per chunk via a board
    # accuracy: every output read back through the board is TFLM's
    assert accuracy["status"] == "complete" and accuracy["windows_measured"] == 3
    windows = read_windows(tmp_path / "acc" / accuracy["run_id"])
    outputs = [tuple(w["results"]) for w in windows]
    assert outputs == tflm_reference(get_benchmark("kws"), [w["sample"] for w in windows])


def test_energy_through_the_io_manager_with_a_virtual_meter(tmp_path: Path) -> None:
    """MLPerf Tiny's energy bench: meter, IO manager, DUT. 5 mA at 1.8 V for 1 ms: 9 uJ."""
    activity = tmp_path / "activity.jsonl"
    meter = open_meter(str(write_meter_profile(tmp_path, activity)))
    with (
        virtual("ad", activity=activity, baud=HOST_BAUD, infer_us=1000) as mcu,
        InterfaceBoard.start("io-manager", mcu.port, dut_baud=HOST_BAUD) as board,
    ):
        device = open_device(str(board_profile(tmp_path, board, "io-manager")))
        options = RunOptions(results_root=tmp_path, min_duration_s=WINDOW_S, meter=meter)
        with device, meter:
            result = run_benchmark(
                device, device.describe(), get_benchmark("ad"), "", "energy", options
            )
    assert result["status"] == "complete" and result["energy"]["tier"] == "meter-marks"
    assert result["system"]["timestamp_mode"] == "energy"
    assert result["metrics"]["median_energy_uj"] == pytest.approx(9.0, rel=0.05)
    log = (tmp_path / result["run_id"] / "dut_log.txt").read_text()
    assert "> dut mode energy%" in log and "< [dut]: m-timestamp-mode-energy" in log


def test_the_c_bridge_behind_the_mlc_board_scores_like_tflm(tmp_path: Path) -> None:
    """The board forwards to any DUT port: here the C firmware core's posix port."""
    bench = get_benchmark("kws")
    with (
        firmware_port("posix").running(bench.model_path, "eb-kws") as firmware,
        InterfaceBoard.start("mlc-interface", firmware.port, dut_baud=HOST_BAUD) as board,
    ):
        profile = board_profile(tmp_path, board, "mlc-interface")
        result = run(profile, "kws", "accuracy", tmp_path, max_samples=3)
    assert result["system"]["dut_name"] == "edgebench posix bridge"
    assert result["load"]["framing"] == "hex"  # the bridge offers db64; the board does not
    windows = read_windows(tmp_path / result["run_id"])
    outputs = [tuple(w["results"]) for w in windows]
    assert outputs == tflm_reference(bench, [w["sample"] for w in windows])


# --- faults -------------------------------------------------------------------------------------


def test_a_dut_silent_behind_the_board_names_the_command(tmp_path: Path) -> None:
    with behind("io-manager", HOST_BAUD, "--never-answer", "infer") as board:
        profile = board_profile(tmp_path, board, "io-manager", timeout=1)
        with pytest.raises(DeviceError) as caught:
            run(profile, "kws", "performance", tmp_path)
    error = str(caught.value)
    assert re.search(r"no m-ready from the DUT within [0-9.]+ s after `infer 1 0%`", error)
    assert board.port in error  # the port the host talks to is the board's


def test_a_dut_where_a_board_should_be_is_named(tmp_path: Path) -> None:
    """`interface: io-manager` pointed straight at a DUT, which refuses `dut name`."""
    with virtual("kws", baud=HOST_BAUD) as mcu:
        profile = write_profile(tmp_path, mcu.port, baud=HOST_BAUD, interface="io-manager")
        profile.write_text(profile.read_text().replace("timeout: 3", "timeout: 1"))
        error = cli_error("-d", str(profile), "-b", "kws", "-m", "performance", cwd=tmp_path)
    assert "refused `dut name%` (e-[Unknown command: dut]): it is no interface board" in error
    assert "check `interface:` in the profile" in error


class ChattyDut:
    """A DUT on a pty that prints a slow debug line after each `m-ready`, as firmware with
    logging left on does; the board forwards to its pty like to any other."""

    def __init__(self) -> None:
        self.master, self._slave = pty.openpty()  # the slave stays open: the master reads
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        self.debug_started = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        pending = b""
        while True:
            try:
                pending += os.read(self.master, 256)
            except OSError:
                return
            while b"%" in pending:
                command, pending = pending.split(b"%", 1)
                if command == b"name":
                    os.write(self.master, b"m-name-dut-[chatty]\r\nm-ready\r\n")
                self.debug_started.set()
                for byte in b"debug: adc samples " + b"1023 " * 16:  # about 1 s of trickle
                    os.write(self.master, bytes([byte]))
                    time.sleep(0.01)
                os.write(self.master, b"\r\n")

    def close(self) -> None:
        os.close(self.master)
        os.close(self._slave)


def test_dut_debug_output_collides_with_the_next_command() -> None:
    dut = ChattyDut()
    try:
        with InterfaceBoard.start("io-manager", dut.port) as board:
            link = DutLink(open_port(board.port, HOST_BAUD), "io-manager", DutLog())
            try:
                assert [r.value for r in link.command("name", 3)] == ["chatty"]
                assert dut.debug_started.wait(3)
                time.sleep(0.1)  # the debug line is coming in at the board
                with pytest.raises(DeviceError, match=r"half duplex.*debug output") as caught:
                    link.command("profile", 3)
            finally:
                link.close()
    finally:
        dut.close()
    assert "did not take `dut profile%` (it answered 'e-?" in str(caught.value)


# --- the board's own commands and errors --------------------------------------------------------


def test_board_commands_and_setbaud(tmp_path: Path) -> None:
    (tmp_path / "sd").mkdir()
    (tmp_path / "sd" / "ww01.wav").write_bytes(b"")
    with (
        virtual("kws", "--expect-baud", str(HOST_BAUD), baud=HOST_BAUD) as mcu,
        InterfaceBoard.start(
            "mlc-interface", mcu.port, extra_args=["--sd-card", str(tmp_path / "sd")]
        ) as board,
    ):
        assert talk(board.port, "name") == ["m-name-[MLCommons interface board]", "m-ready"]
        assert talk(board.port, "ls") == ["ww01.wav", "m-ready"]
        assert talk(board.port, "checkbaud")[-2:] == ["m-baud-no-answer", "m-ready"]
        assert talk(board.port, "setbaud 115200") == ["m-baud-[115200]", "m-ready"]
        assert talk(board.port, "checkbaud") == ["m-baud-[115200]", "m-baud-ok", "m-ready"]
        assert talk(board.port, "setbaud fast")[0].startswith("e-[setbaud needs")
        assert talk(board.port, "play")[0] == "e-[play: streaming wakeword is not emulated]"
        dut = Dut(DutLink(open_port(board.port, HOST_BAUD), "mlc-interface", DutLog()), 3)
        try:
            assert dut.identify(0.5).model == "eb-kws"  # now at the DUT's real rate
        finally:
            dut.link.close()
    with virtual("kws", baud=DUT_BAUD) as mcu, InterfaceBoard.start("io-manager", mcu.port) as b:
        dut = Dut(DutLink(open_port(b.port, HOST_BAUD), "io-manager", DutLog()), 3)
        try:  # the rate EEMBC's energy builds use behind the IO manager
            assert dut.identify(0.5).name == "edgebench-virtual-mcu"
        finally:
            dut.link.close()
        assert talk(b.port, "version") == ["m-version-[1.0.3]", "m-ready"]
        assert talk(b.port, "tm 0") == talk(b.port, "enable-timer") == ["m-ready"]
        assert talk(b.port, "tm 7") == ["e-?tm 7", "m-ready"]
        assert talk(b.port, "x" * 100) == ["e-?" + "x" * 79, "m-ready"]  # the 80-char buffer


def test_board_start_errors_are_one_line(tmp_path: Path) -> None:
    missing = InterfaceBoard.start("io-manager", str(tmp_path / "ttyNONE"))
    with pytest.raises(BoardError, match=r"cannot open the DUT port .*ttyNONE.*--dut-port"):
        missing.__enter__()
    unknown = InterfaceBoard.start("arduino", "/dev/null")
    with pytest.raises(BoardError, match=r"kind 'arduino' is unknown; use io-manager or"):
        unknown.__enter__()


def test_lab_up_puts_a_board_in_front_of_the_virtual_mcu() -> None:
    argv = ["lab", "up", "-b", "kws", "--baud", str(HOST_BAUD), "--interface", "io-manager"]
    process = subprocess.Popen(
        [*CLI, *argv, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    try:
        lines = [process.stdout.readline()]
        while lines[-1] not in ("}\n", ""):
            lines.append(process.stdout.readline())
        ports = json.loads("".join(lines) or process.stderr.read())
        dut = Dut(DutLink(open_port(ports["interface-board"], HOST_BAUD), "io-manager"), 3)
        try:
            assert dut.identify(0.5).name == "edgebench-virtual-mcu"
        finally:
            dut.link.close()
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

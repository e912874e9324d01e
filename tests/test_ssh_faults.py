"""Every way an SSH device goes wrong ends in one line naming the problem and the fix.

Each fault is real: a closed port, a key the server does not know, a host key that changed,
a Python or runtime the device lacks, a filesystem that is full, a session killed mid-run.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from edgebench.agent.recorder import QUERY_FILES
from edgebench.devices.base import DeviceError
from edgebench.devices.profiles import validate
from edgebench.devices.ssh import SshDevice

from .ssh_fixtures import (  # noqa: F401  (fixtures)
    LoopbackDevice,
    agent_pids,
    device_fixture,
    edgebench,
    error_lines,
    fill,
    sshd_fixture,
    start_long_run,
    start_sshd,
    stranger_key,
    tmpfs,
    wait_measuring,
)
from .support import REPO, shared_model


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def connect(device: LoopbackDevice, **overrides) -> SshDevice:
    ssh = SshDevice(validate(device.profile(**overrides), Path("loopback.yaml")))
    ssh.open()
    return ssh


def one_line_error(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 1, done.stderr
    lines = error_lines(done)
    assert len(lines) == 1, lines
    return lines[0]


def test_unreachable_host(device: LoopbackDevice, tmp_path: Path) -> None:
    profile = device.write(port=closed_port())
    line = one_line_error(edgebench("run", "--device", str(profile), "-b", "ad", cwd=tmp_path))
    assert "cannot connect (connection refused)" in line
    assert "sshd runs there" in line


def test_wrong_key(device: LoopbackDevice, tmp_path: Path) -> None:
    profile = device.write(identity_file=str(stranger_key(tmp_path)))
    line = one_line_error(edgebench("run", "--device", str(profile), "-b", "ad", cwd=tmp_path))
    assert "authentication failed" in line
    assert "ssh-copy-id" in line


def test_password_without_a_terminal_to_ask_on(device: LoopbackDevice, tmp_path: Path) -> None:
    profile = device.write(identity_file=str(stranger_key(tmp_path)), password=True)
    line = one_line_error(edgebench("run", "--device", str(profile), "-b", "ad", cwd=tmp_path))
    assert "password authentication needs a terminal to ask on" in line
    assert f"ssh-copy-id -p {device.sshd.port}" in line


def test_changed_host_key_is_refused_even_when_trusting_new_keys(
    device: LoopbackDevice, tmp_path: Path
) -> None:
    other = stranger_key(tmp_path)
    kind, blob = other.with_suffix(".pub").read_text().split()[:2]
    known = tmp_path / "known_hosts"
    known.write_text(f"[{device.sshd.host}]:{device.sshd.port} {kind} {blob}\n")
    for trust in (False, True):
        with pytest.raises(DeviceError) as caught:
            connect(device, known_hosts=str(known), trust_new_host_key=trust)
        message = str(caught.value)
        assert "HOST KEY CHANGED" in message and "ssh-keygen -R" in message
        assert "\n" not in message


def test_unknown_host_key_needs_explicit_trust(device: LoopbackDevice, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    with pytest.raises(DeviceError) as caught:
        connect(device, known_hosts=str(known))
    message = str(caught.value)
    assert "unknown host key ssh-ed25519 SHA256:" in message
    assert "ssh-keyscan" in message and "--trust-new-host-key" in message
    assert not known.exists()
    connect(device, known_hosts=str(known), trust_new_host_key=True).close()
    assert device.sshd.host_public_key() in known.read_text()
    connect(device, known_hosts=str(known)).close()  # now known: no trust flag needed


def test_run_trusts_a_new_host_key_only_when_asked(device: LoopbackDevice, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    # A device without a runtime: the run stops right after connecting, which is all we need.
    python = device.python_wrapper("python-bare", ["ai_edge_litert", "tflite_runtime"])
    profile = device.write(known_hosts=str(known), python=str(python))
    model = shared_model("ad01_int8.tflite")
    run = ("run", "--device", str(profile), "--model", str(model), "--json")
    line = one_line_error(edgebench(*run, cwd=tmp_path))
    assert "unknown host key" in line and not known.exists()
    done = edgebench(*run, "--trust-new-host-key", cwd=tmp_path)
    assert "trusted new host key" in done.stderr
    assert "no usable TFLite runtime" in done.stderr  # got past the host key, to the device
    assert device.sshd.host_public_key() in known.read_text()


def test_a_file_size_limit_fails_the_run_like_a_full_disk(
    device: LoopbackDevice, tmp_path: Path
) -> None:
    """`ulimit -f` on the device (no root needed): the record's 64 KiB reserve fits, the
    per-query times of a second of ad01 (>12,000 queries, 8 bytes each per file) do not; the
    write fails with EFBIG and the run says so."""
    if not shutil.which("prlimit"):
        pytest.skip("prlimit (util-linux) is not installed")
    python = device.python_wrapper("python-fsize", [], launcher=f"prlimit --fsize={96 << 10}")
    profile = device.write(python=str(python))
    done = edgebench(
        "run", "--device", str(profile), "--model", str(shared_model("ad01_int8.tflite")),
        "-s", "SingleStream", "--duration", "1", "--results", "res", "--json", cwd=tmp_path,
    )  # fmt: skip
    line = one_line_error(done)
    assert "failed (File too large: queries; " in line and "free space on the device" in line
    [result] = json.loads(done.stdout)
    record = json.loads((tmp_path / "res" / result["run_id"] / "record.json").read_text())
    assert record["status"] == "failed" and record["query_count"] == 0


def test_no_room_even_for_the_agents_first_file(device: LoopbackDevice, tmp_path: Path) -> None:
    """The plan fits, the agent's record reserve does not: the agent's own reason comes back."""
    model = shared_model("ad01_int8.tflite")
    with deployed_on_a_small_disk(device, tmp_path, model, 12 << 10) as workdir:
        profile = device.write(workdir=str(workdir))
        done = edgebench(
            "run", "--device", str(profile), "--model", str(model), "-s", "SingleStream",
            "--json", cwd=tmp_path,
        )  # fmt: skip
    line = one_line_error(done)
    assert "exited with code 1 before writing a record: writing the run's files in" in line
    assert "No space left on device: record.json.reserve" in line
    assert "free space on the device" in line


def test_ssh_config_problems_are_named(device: LoopbackDevice, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-config"
    with pytest.raises(DeviceError, match="no such ssh config file; fix `ssh_config:`"):
        connect(device, ssh_config=str(missing))
    broken = tmp_path / "broken-config"
    broken.write_text("Host board\n  HostName\n")
    with pytest.raises(DeviceError) as caught:
        connect(device, ssh_config=str(broken))
    assert str(caught.value) == (
        f"{broken}: unreadable ssh config (Unparsable line HostName); fix it"
    )


def test_device_without_sftp(tmp_path: Path) -> None:
    server = start_sshd(sftp=False)
    try:
        with pytest.raises(DeviceError) as caught:
            connect(LoopbackDevice(server, tmp_path))
    finally:
        server.stop()
    assert "no SFTP on the device" in str(caught.value)
    assert "Subsystem sftp" in str(caught.value)


def test_workdir_the_device_user_cannot_create(device: LoopbackDevice, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")  # stops root too, unlike permissions
    profile = device.write(workdir=str(blocker / "wd"))
    line = one_line_error(edgebench("run", "--device", str(profile), "-b", "ad", cwd=tmp_path))
    assert f"cannot create {blocker}/wd on the device (Not a directory)" in line
    assert "set `workdir:` in the profile" in line


def test_missing_python_on_the_device(device: LoopbackDevice, tmp_path: Path) -> None:
    profile = device.write(python="/nonexistent/python3")
    line = one_line_error(edgebench("run", "--device", str(profile), "-b", "ad", cwd=tmp_path))
    assert "Python '/nonexistent/python3' not found on the device" in line
    assert "set `python:`" in line


def test_missing_runtime_fails_before_the_run_with_the_install_command(
    device: LoopbackDevice, tmp_path: Path
) -> None:
    python = device.python_wrapper("python-bare", ["ai_edge_litert", "tflite_runtime"])
    profile = device.write(python=str(python))
    model = shared_model("ad01_int8.tflite")
    done = edgebench("run", "--device", str(profile), "--model", str(model), cwd=tmp_path)
    line = one_line_error(done)
    assert "no usable TFLite runtime" in line
    assert f"{python} -m pip install ai-edge-litert" in line
    [result_file] = (tmp_path / "results").glob("*/result.json")
    result = json.loads(result_file.read_text())
    assert result["status"] == "failed" and "TFLite runtime" in result["reasons"][0]
    assert not list((device.workdir / "runs").iterdir())  # nothing was started


def test_a_32_bit_board_is_told_to_install_tflite_runtime_with_numpy_1(
    device: LoopbackDevice,
) -> None:
    """No ai-edge-litert wheels for 32-bit ARM: there the command is tflite-runtime, whose
    wheels are built for NumPy 1.x. `setarch i686` makes uname say 32-bit, as such a board's."""
    if not shutil.which("setarch"):
        pytest.skip("setarch (util-linux) is not installed")
    hidden = ["ai_edge_litert", "tflite_runtime"]
    python = device.python_wrapper("python-i686", hidden, launcher="setarch i686")
    ssh = connect(device, python=str(python))
    try:
        assert ssh.probe()["machine"] == "i686"
        with pytest.raises(DeviceError) as caught:
            ssh.require_runtime()
    finally:
        ssh.close()
    message = str(caught.value)
    assert f'{python} -m pip install tflite-runtime "numpy<2"' in message
    assert ("(it needs NumPy 1.x)" in message) == (np.__version__.split(".")[0] == "2")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs just big enough for the agent: the model no longer fits."""
    agent_bytes = sum(p.stat().st_size for p in (REPO / "edgebench" / "agent").glob("*.py"))
    with tmpfs(tmp_path / "disk", agent_bytes + (96 << 10)) as mount:
        yield mount


def test_full_disk_on_the_device(device: LoopbackDevice, small_disk: Path, tmp_path: Path) -> None:
    profile = device.write(workdir=str(small_disk / "wd"))
    model = shared_model("ad01_int8.tflite")
    done = edgebench("run", "--device", str(profile), "--model", str(model), cwd=tmp_path)
    line = one_line_error(done)
    assert "copying ad01_int8.tflite" in line and "KiB free" in line
    assert "larger filesystem" in line
    [result_file] = (tmp_path / "results").glob("*/result.json")
    assert json.loads(result_file.read_text())["status"] == "failed"
    assert not list((small_disk / "wd" / "blobs").glob("*.part-*"))  # no half-copied file left


def test_device_without_numpy_gets_the_install_command(
    device: LoopbackDevice, tmp_path: Path
) -> None:
    """The agent itself cannot start there, yet the message is the install command."""
    python = device.python_wrapper("python-no-numpy", ["numpy"])
    profile = device.write(python=str(python))
    line = one_line_error(edgebench("run", "--device", str(profile), "-b", "ad", cwd=tmp_path))
    assert "no usable TFLite runtime" in line and "numpy: ImportError" in line
    assert f"{python} -m pip install ai-edge-litert" in line


@contextlib.contextmanager
def deployed_on_a_small_disk(
    device: LoopbackDevice, tmp_path: Path, model: Path, room: int
) -> Iterator[Path]:
    """A workdir on a fresh 8 MiB tmpfs with the agent and `model` deployed, then filled up
    to `room` free bytes; yields the workdir."""
    with tmpfs(tmp_path / "disk", 8 << 20) as disk:
        workdir = disk / "wd"
        with SshDevice(
            validate(device.profile(workdir=str(workdir)), Path("loopback.yaml"))
        ) as ssh:
            ssh.deploy(model, None)  # type: ignore[attr-defined]
        fill(disk, leave=room)
        yield workdir


# Room for the run's small files (plan, record and its 64 KiB reserve, user.conf, LoadGen's
# ~35 KiB of logs), but not for the per-query times of more than a few thousand queries (24
# bytes each), which even a slow machine runs in a second of ad01.
RUN_ROOM = 160 << 10


@pytest.mark.parametrize("loop", ["loadgen", "native"])
def test_disk_filling_up_during_the_run_fails_it_and_keeps_what_was_written(
    device: LoopbackDevice, tmp_path: Path, loop: str
) -> None:
    """Deploy fits, then only RUN_ROOM bytes are left: the run's own files hit ENOSPC."""
    model = shared_model("ad01_int8.tflite")
    with deployed_on_a_small_disk(device, tmp_path, model, RUN_ROOM) as workdir:
        profile = device.write(workdir=str(workdir))
        done = edgebench(
            "run", "--device", str(profile), "--model", str(model), "-s", "SingleStream",
            "--duration", "1", "--loop", loop, "--results", "res", "--json", cwd=tmp_path,
        )  # fmt: skip
        assert not list((workdir / "runs").iterdir())  # fetched, then removed from the device
    line = one_line_error(done)
    [result] = json.loads(done.stdout)
    assert result["status"] == "failed", result
    [reason] = result["reasons"]
    assert reason in line
    assert f"in {workdir}/runs/" in reason and "/out failed (" in reason
    assert "free space on the device" in reason
    run_dir = tmp_path / "res" / result["run_id"]
    record = json.loads((run_dir / "record.json").read_text())
    assert record["status"] == "failed" and record["error"] == reason
    assert record["loop"] == loop
    sizes = {(run_dir / "queries" / name).stat().st_size for name in QUERY_FILES}
    assert sizes == {8 * record["query_count"]}  # trimmed to the samples all three files hold
    assert (run_dir / "ssh.json").is_file() and (run_dir / "agent.log").is_file()
    assert not (run_dir / "record.json.reserve").exists()


def test_a_full_disk_before_the_run_stops_it_at_the_plan(
    device: LoopbackDevice, tmp_path: Path
) -> None:
    model = shared_model("ad01_int8.tflite")
    with deployed_on_a_small_disk(device, tmp_path, model, 0) as workdir:
        profile = device.write(workdir=str(workdir))
        done = edgebench("run", "--device", str(profile), "--model", str(model), cwd=tmp_path)
        assert not list((workdir / "runs").iterdir())  # the half-made run directory is gone
    line = one_line_error(done)
    assert f"writing {workdir}/runs/" in line and "/plan.json failed" in line
    assert f"0 KiB free in {workdir}: free some space on the device" in line


def test_connection_dropped_mid_run_keeps_what_was_measured(
    device: LoopbackDevice, tmp_path: Path
) -> None:
    process = start_long_run(device, tmp_path, "--loop", "native")
    try:
        assert wait_measuring(device.workdir), "the remote run never started measuring"
        assert device.sshd.drop_sessions() >= 1
        dropped = time.monotonic()
        stdout, stderr = process.communicate(timeout=40)
    finally:
        if process.poll() is None:
            process.kill()
    assert time.monotonic() - dropped < 30
    assert process.returncode == 1
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "lost mid-run" in lines[0], lines
    [result] = json.loads(stdout)
    assert result["status"] == "failed" and "lost mid-run" in result["reasons"][0]
    run_dir = tmp_path / "res" / result["run_id"]
    record = json.loads((run_dir / "record.json").read_text())
    assert record["query_count"] > 0  # fetched after reconnecting
    assert (run_dir / "queries" / "index.i64").stat().st_size == 8 * record["query_count"]


def test_agent_killed_on_the_device_mid_run(device: LoopbackDevice, tmp_path: Path) -> None:
    """As the OOM killer would: SIGKILL, no last word; the host says so and keeps the data."""
    process = start_long_run(device, tmp_path, "--loop", "native")
    try:
        assert wait_measuring(device.workdir), "the remote run never started measuring"
        for pid in agent_pids(device.workdir):
            os.kill(pid, signal.SIGKILL)
        stdout, stderr = process.communicate(timeout=40)
    finally:
        if process.poll() is None:
            process.kill()
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert process.returncode == 1 and "Traceback" not in stderr
    assert len(lines) == 1 and "was killed by a signal while running" in lines[0], lines
    [result] = json.loads(stdout)
    assert result["status"] == "failed" and "check `dmesg`" in result["reasons"][0]
    run_dir = tmp_path / "res" / result["run_id"]
    assert (run_dir / "queries" / "index.i64").stat().st_size > 0  # the chunks on disk came back


def test_device_gone_for_good_mid_run_exits_cleanly(tmp_path: Path) -> None:
    """The network stays down: nothing to fetch, but the host says so in one line and exits."""
    server = start_sshd()  # its own server: this test kills it
    device = LoopbackDevice(server, tmp_path)
    try:  # start_long_run may skip (no shared model): the server must not outlive the test
        process = start_long_run(device, tmp_path, "--loop", "native")
    except BaseException:
        server.stop()
        raise
    try:
        assert wait_measuring(device.workdir), "the remote run never started measuring"
        server.stop()  # the listener and every session: reconnecting is refused
        stdout, stderr = process.communicate(timeout=40)
    finally:
        server.stop()
        if process.poll() is None:
            process.kill()
        for pid in agent_pids(device.workdir):  # the agent left running on the 'device'
            os.kill(pid, signal.SIGKILL)
    assert process.returncode == 1, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "reconnecting failed too" in lines[0], lines
    [result] = json.loads(stdout)
    assert result["status"] == "failed" and "lost mid-run" in result["reasons"][0]
    assert (tmp_path / "res" / result["run_id"] / "agent.log").is_file()

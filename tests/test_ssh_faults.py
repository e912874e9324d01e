"""Every way an SSH device goes wrong ends in one line naming the problem and the fix.

Each fault is real: a closed port, a key the server does not know, a host key that changed,
a Python or runtime the device lacks, a filesystem that is full, a session killed mid-run.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from edgebench.devices.base import DeviceError
from edgebench.devices.profiles import validate
from edgebench.devices.ssh import SshDevice

from .ssh_fixtures import (  # noqa: F401  (fixtures)
    LoopbackDevice,
    device_fixture,
    edgebench,
    error_lines,
    sshd_fixture,
    start_sshd,
)
from .support import CLI, REPO, shared_model


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
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    profile = device.write(identity_file=str(stranger))
    line = one_line_error(edgebench("run", "--device", str(profile), "-b", "ad", cwd=tmp_path))
    assert "authentication failed" in line
    assert "ssh-copy-id" in line


def test_changed_host_key_is_refused_even_when_trusting_new_keys(
    device: LoopbackDevice, tmp_path: Path
) -> None:
    other = tmp_path / "other_host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
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


@pytest.fixture
def small_disk(tmp_path: Path):
    """A tmpfs just big enough for the agent: the model no longer fits."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    agent_bytes = sum(p.stat().st_size for p in (REPO / "edgebench" / "agent").glob("*.py"))
    size = agent_bytes + (96 << 10)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


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


def test_connection_dropped_mid_run_keeps_what_was_measured(
    device: LoopbackDevice, tmp_path: Path
) -> None:
    model = shared_model("kws_ref_model.tflite")
    profile = device.write()
    env = dict(os.environ, PYTHONPATH=str(REPO), COLUMNS="4000")
    process = subprocess.Popen(
        [*CLI, "run", "--device", str(profile), "--model", str(model),
         "-s", "SingleStream", "--duration", "30", "--loop", "native", "--results", "res",
         "--json"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not _measuring(device.workdir) and time.monotonic() < deadline:
            time.sleep(0.1)
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


def test_device_gone_for_good_mid_run_exits_cleanly(tmp_path: Path) -> None:
    """The network stays down: nothing to fetch, but the host says so in one line and exits."""
    model = shared_model("kws_ref_model.tflite")
    server = start_sshd()  # its own server: this test kills it
    device = LoopbackDevice(server, tmp_path)
    env = dict(os.environ, PYTHONPATH=str(REPO), COLUMNS="4000")
    env.pop("SSH_AUTH_SOCK", None)
    process = subprocess.Popen(
        [*CLI, "run", "--device", str(device.write()), "--model",
         str(model), "-s", "SingleStream", "--duration", "30", "--loop", "native",
         "--results", "res", "--json"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not _measuring(device.workdir) and time.monotonic() < deadline:
            time.sleep(0.1)
        server.stop()  # the listener and every session: reconnecting is refused
        stdout, stderr = process.communicate(timeout=40)
    finally:
        if process.poll() is None:
            process.kill()
        _kill_orphans(device.workdir)
    assert process.returncode == 1, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "reconnecting failed too" in lines[0], lines
    [result] = json.loads(stdout)
    assert result["status"] == "failed" and "lost mid-run" in result["reasons"][0]
    assert (tmp_path / "res" / result["run_id"] / "agent.log").is_file()


def _kill_orphans(workdir: Path) -> None:
    """The agent this test left on the 'device' (by PID, found by its run directory)."""
    needle = str(workdir).encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if needle in (entry / "cmdline").read_bytes():
                    os.kill(int(entry.name), signal.SIGKILL)
            except OSError:
                continue


def _measuring(workdir: Path) -> bool:
    """The first chunk of per-query times (65,536 queries) reached the device's disk."""
    files = list((workdir / "runs").glob("*/out/queries/index.i64"))
    return bool(files) and files[0].stat().st_size > 0

"""The SSH device end to end against a real OpenSSH server on loopback.

What a user with a Raspberry Pi sees: `edgebench run --device pi.yaml` deploys, runs the agent
with the device's Python, streams progress and brings back the same results directory as the
local device; a second deploy copies nothing; latencies agree with the local device.
"""

from __future__ import annotations

import getpass
import json
import os
import posixpath
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import paramiko
import pytest
import yaml

from edgebench.agent.recorder import read_queries
from edgebench.cli.devices_check import add_check_parser
from edgebench.devices.base import DeviceError
from edgebench.devices.profiles import validate
from edgebench.devices.ssh import SshDevice
from edgebench.devices.ssh_config import jump_hosts
from edgebench.lab.sshd import LoopbackSshd
from edgebench.runner.run import RunOptions, run_benchmark
from edgebench.suite.user_model import user_benchmark

from .ssh_fixtures import (  # noqa: F401  (device_fixture, sshd_fixture: pytest fixtures)
    LoopbackDevice,
    agent_pids,
    device_fixture,
    edgebench,
    edgebench_on_terminal,
    sshd_fixture,
    start_long_run,
    start_sshd,
    stranger_key,
    throwaway_user,
    wait_measuring,
)
from .support import REPO, ctrl_c, shared_model

LOADGEN_LOGS = ("mlperf_log_summary.txt", "mlperf_log_detail.txt", "mlperf_log_accuracy.json")


def run_json(*args: str, cwd: Path) -> list[dict]:
    done = edgebench("run", *args, "--json", cwd=cwd)
    assert done.stdout.strip(), done.stderr
    return json.loads(done.stdout)


def open_ssh(device: LoopbackDevice, **overrides) -> SshDevice:
    return SshDevice(validate(device.profile(**overrides), Path("loopback.yaml")))


def test_run_over_ssh_gives_the_local_layout_with_loadgen(
    device: LoopbackDevice, tmp_path: Path
) -> None:
    model = shared_model("ad01_int8.tflite")
    profile = device.write()
    [result] = run_json(
        "--device", str(profile), "--model", str(model), "-s", "SingleStream", "--duration", "1",
        "--results", "res", cwd=tmp_path,
    )  # fmt: skip
    assert result["status"] == "complete", result
    assert result["valid"] is True, result["reasons"]
    assert result["device"]["transport"] == "ssh"
    assert result["loop"] == "loadgen"
    assert result["system"]["ssh"]["target"].endswith(f":{device.sshd.port}")
    run_dir = tmp_path / "res" / result["run_id"]
    device_files = ("user.conf", "record.json", "plan.json", "monitor.jsonl", "agent.log")
    host_files = ("summary.txt", "result.json", "clock.json", "ssh.json")
    for name in (*LOADGEN_LOGS, *device_files, *host_files):
        assert (run_dir / name).is_file(), name
    assert not (run_dir / "record.json.reserve").exists()
    assert json.loads((run_dir / "monitor.jsonl").read_text().splitlines()[0])
    assert "Result is : VALID" in (run_dir / "mlperf_log_summary.txt").read_text()
    index, issue, complete = read_queries(str(run_dir / "queries"))
    assert len(index) == result["metrics"]["query_count"] > 0
    assert np.all(complete >= issue)
    # The per-run directory is gone from the device; the model stays cached by its hash.
    assert list((device.workdir / "runs").iterdir()) == []
    assert [p.name[:64] for p in (device.workdir / "blobs").iterdir()] == [
        result["model"]["sha256"]
    ]


def test_without_loadgen_on_the_device_the_native_loop_runs(
    device: LoopbackDevice, tmp_path: Path
) -> None:
    model = shared_model("ad01_int8.tflite")
    python = device.python_wrapper("python-no-loadgen", ["mlperf_loadgen"])
    profile = device.write(python=str(python), keep=True)
    [result] = run_json(
        "--device", str(profile), "--model", str(model), "-s", "SingleStream", "--duration", "1",
        "--results", "res", cwd=tmp_path,
    )  # fmt: skip
    assert result["status"] == "complete", result
    assert result["loop"] == "native"
    assert result["loadgen"] == "none (edgebench native loop)"
    run_dir = tmp_path / "res" / result["run_id"]
    assert (run_dir / "native_log_summary.txt").is_file()
    assert not (run_dir / "mlperf_log_summary.txt").exists()
    assert result["system"]["runtime_probe"]["mlperf_loadgen"]["ok"] is False
    [kept] = list((device.workdir / "runs").iterdir())  # `keep: true`
    assert (kept / "out" / "native_log_summary.txt").is_file()
    ssh_info = json.loads((run_dir / "ssh.json").read_text())
    assert ssh_info["kept"] is True and ssh_info["remote_dir"] == str(kept)


def test_progress_streams_from_the_device_while_it_runs(
    device: LoopbackDevice, tmp_path: Path
) -> None:
    """Events arrive as the agent emits them (every 0.5 s), not in one batch at the end."""
    events: list[tuple[float, dict]] = []
    benchmark = user_benchmark(shared_model("ad01_int8.tflite"))
    options = RunOptions(min_duration_s=1.5, results_root=tmp_path / "res")
    with open_ssh(device) as ssh:
        system = ssh.describe()
        result = run_benchmark(
            ssh, system, benchmark, "SingleStream", "performance", options,
            lambda event: events.append((time.monotonic(), event)),
        )  # fmt: skip
    assert result["status"] == "complete", result
    kinds = [event["event"] for _, event in events]
    assert kinds[-1] == "done" and "progress" in kinds
    phases = [event.get("phase") for _, event in events if event["event"] == "phase"]
    assert phases == ["calibrating", "running"]
    running = [(t, e) for t, e in events if e["event"] == "progress" and e["queries"] > 0]
    assert running[-1][1]["queries"] > running[0][1]["queries"]
    assert events[-1][0] - running[0][0] > 0.5  # the first count came well before the end


def test_second_deploy_copies_nothing_and_hashes_are_checked_on_the_device(
    device: LoopbackDevice, record_property
) -> None:
    model = shared_model("ad01_int8.tflite")
    ssh = open_ssh(device)
    with ssh:
        system = ssh.describe()
        assert system.get("python") == ".".join(map(str, sys.version_info[:3]))
        assert system.get("cpu_cores") == os.cpu_count()
        assert system.get("runtime_probe")["ai_edge_litert"]["ok"] is True
        ssh.deploy(model, None)
        first = ssh.deploy_stats
        ssh.deploy(model, None)
        second = ssh.deploy_stats
        [blob] = (device.workdir / "blobs").iterdir()
        blob.write_bytes(b"corrupted behind our back")
        ssh.deploy(model, None)
        third = ssh.deploy_stats
    record_property("deploy_first_s", first["seconds"])
    record_property("deploy_second_s", second["seconds"])
    print(f"deploy: first {first}, second {second}")
    assert first["copied_bytes"] == model.stat().st_size
    assert second["copied_bytes"] == 0 and second["reused_files"] == 1
    assert second["seconds"] < first["seconds"]
    assert third["copied_bytes"] == model.stat().st_size  # the bad copy was replaced
    assert blob.read_bytes() == model.read_bytes()


def test_old_agent_versions_are_pruned_but_never_under_a_running_agent(
    device: LoopbackDevice,
) -> None:
    versions = device.workdir / "agent"
    now = time.time()
    for age, name in enumerate(("old-busy", "old-a", "old-b")):  # oldest first
        package = versions / name / "edgebench"
        shutil.copytree(REPO / "edgebench" / "agent", package / "agent")
        shutil.copy(REPO / "edgebench" / "__init__.py", package)
        os.utime(versions / name, (now - 1000 + age, now - 1000 + age))
    # A real agent (the clock server) running from the oldest copy, as a concurrent run would.
    busy = subprocess.Popen(
        [sys.executable, "-m", "edgebench.agent", "--clock"],
        env=dict(os.environ, PYTHONPATH=str(versions / "old-busy")),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert busy.stdout is not None and busy.stdout.readline().startswith(b"edgebench-clock")
        with open_ssh(device) as ssh:
            ssh.describe()  # deploys the current agent, then prunes
            current = posixpath.basename(ssh._ensure_agent())
        assert sorted(p.name for p in versions.iterdir()) == sorted([current, "old-b", "old-busy"])
    finally:
        busy.kill()
        busy.wait()
    with open_ssh(device) as ssh:
        ssh.describe()
    assert sorted(p.name for p in versions.iterdir()) == sorted([current, "old-b"])


def test_ssh_and_local_p50_agree(device: LoopbackDevice, tmp_path: Path) -> None:
    """Interleaved repeats, so drift in the machine's state hits both transports alike."""
    model = shared_model("kws_ref_model.tflite")
    profile = device.write()
    p50: dict[str, list[float]] = {"ssh": [], "local": []}
    for repeat in range(3):
        for name, where in (("ssh", str(profile)), ("local", "local")):
            [result] = run_json(
                "--device", where, "--model", str(model), "-s", "SingleStream", "--duration",
                "1", "--affinity", "1", "--results", f"r{repeat}", cwd=tmp_path,
            )  # fmt: skip
            assert result["status"] == "complete", result
            p50[name].append(result["metrics"]["latency_ns"]["p50"])
    ssh, local = statistics.median(p50["ssh"]), statistics.median(p50["local"])
    print(f"p50 ns: ssh {p50['ssh']} local {p50['local']}; medians {ssh} vs {local}")
    assert abs(ssh - local) <= max(0.03 * local, 2000), p50


def test_ctrl_c_stops_the_remote_agent_and_keeps_its_measurements(
    device: LoopbackDevice, tmp_path: Path
) -> None:
    process = start_long_run(device, tmp_path)
    stderr = ctrl_c(
        process,
        lambda: wait_measuring(device.workdir),
        "the remote run never started measuring",
        timeout=40,
    )
    assert process.returncode == 130, stderr
    [run_dir] = list((tmp_path / "res").iterdir())
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "incomplete"
    record = json.loads((run_dir / "record.json").read_text())
    assert record["status"] == "interrupted"
    index, _, _ = read_queries(str(run_dir / "queries"))
    assert len(index) == record["query_count"] > 0
    assert not agent_pids(device.workdir)


def test_devices_check_walks_the_run_path(device: LoopbackDevice, capsys) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    add_check_parser(parser.add_subparsers())
    args = parser.parse_args(["check", str(device.write()), "--json"])
    assert args.handler(args) == 0
    rows = {row["check"]: row for row in json.loads(capsys.readouterr().out)}
    assert [rows[name]["status"] for name in ("connect", "python", "runtime", "disk")] == ["ok"] * 4
    assert "host key verified" in rows["connect"]["detail"]
    assert rows["clock"]["detail"].startswith("offset"), rows["clock"]


def ssh_config_entry(name: str, sshd: LoopbackSshd, *extra: str) -> str:
    """A `Host` block reaching `sshd` with its key and pinned host key."""
    lines = [
        f"Host {name}",
        f"HostName {sshd.host}",
        f"Port {sshd.port}",
        f"User {sshd.user}",
        f"IdentityFile {sshd.client_key}",
        f"UserKnownHostsFile {sshd.known_hosts}",
        *extra,
    ]
    return "\n  ".join(lines) + "\n"


def open_board(config: Path, device: LoopbackDevice) -> SshDevice:
    """`host: board`, resolved through `config` alone."""
    profile = {"name": "board", "transport": "ssh", "host": "board", "ssh_config": str(config)}
    profile["python"], profile["workdir"] = sys.executable, str(device.workdir)
    return SshDevice(validate(profile, Path("board.yaml")))


def test_ssh_config_alias_and_proxy_jump(device: LoopbackDevice, tmp_path: Path) -> None:
    """`host: board` resolves through an ssh config and hops via a second sshd (ProxyJump)."""
    board_sshd = start_sshd()
    try:
        config = tmp_path / "ssh_config"
        config.write_text(
            ssh_config_entry("jumpbox", device.sshd)
            + ssh_config_entry("board", board_sshd, "ProxyJump jumpbox")
        )
        ssh = open_board(config, device)
        with ssh:
            assert len(ssh._jumps) == 1
            assert isinstance(ssh._transport().sock, paramiko.Channel)  # tunnelled, not TCP
            assert ssh.describe().get("ssh")["target"] == f"board ({board_sshd.user}@" + (
                f"{board_sshd.host}:{board_sshd.port})"
            )
    finally:
        board_sshd.stop()


def test_proxy_jump_spellings() -> None:
    """OpenSSH's forms of a hop list: user@host:port, ssh:// URIs, [IPv6] with or without port."""
    spec = "ssh://ann@gate:2200, bob@[::1]:2201,[fe80::2],bastion"
    hops = jump_hosts(spec, paramiko.SSHConfig(), ["/k"])
    assert [(hop.user, hop.hostname, hop.port) for hop in hops] == [
        ("ann", "gate", 2200),
        ("bob", "::1", 2201),
        (getpass.getuser(), "fe80::2", 22),
        (getpass.getuser(), "bastion", 22),
    ]
    assert all(hop.known_hosts == ["/k"] for hop in hops)
    assert jump_hosts("none", paramiko.SSHConfig(), []) == []


def test_a_jump_host_that_refuses_tunnels(device: LoopbackDevice, tmp_path: Path) -> None:
    jump = start_sshd(forwarding=False)
    try:
        config = tmp_path / "ssh_config"
        config.write_text(
            ssh_config_entry("jumpbox", jump)
            + ssh_config_entry("board", device.sshd, "ProxyJump jumpbox")
        )
        with pytest.raises(DeviceError) as caught:
            open_board(config, device).open()
    finally:
        jump.stop()
    message = str(caught.value)
    assert f"could not open a tunnel to {device.sshd.host}:{device.sshd.port}" in message
    assert "AllowTcpForwarding" in message


def test_proxy_command_from_the_ssh_config(device: LoopbackDevice, tmp_path: Path) -> None:
    """The classic `ProxyCommand ssh -W %h:%p jumpbox` (OpenSSH's client as the pipe)."""
    sshd = device.sshd
    proxy = (
        f"ProxyCommand ssh -F none -o BatchMode=yes -o UserKnownHostsFile={sshd.known_hosts} "
        f"-i {sshd.client_key} -p %p -W %h:%p %r@%h"
    )
    config = tmp_path / "ssh_config"
    config.write_text(ssh_config_entry("board", sshd, proxy))
    ssh = open_board(config, device)
    with ssh:
        assert isinstance(ssh._transport().sock, paramiko.ProxyCommand)
        assert ssh.describe().get("python") == ".".join(map(str, sys.version_info[:3]))
    broken = tmp_path / "broken_config"
    broken.write_text(ssh_config_entry("board", sshd, "ProxyCommand /nonexistent/relay %h %p"))
    with pytest.raises(DeviceError) as caught:
        open_board(broken, device).open()
    assert "ProxyCommand `/nonexistent/relay 127.0.0.1" in str(caught.value)
    assert "fix ProxyCommand in the ssh config" in str(caught.value)


def test_key_from_ssh_agent(device: LoopbackDevice, tmp_path: Path, monkeypatch) -> None:
    """No key file anywhere (empty HOME): the key held by a real ssh-agent logs in."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    profile = device.profile()
    del profile["identity_file"]
    with pytest.raises(DeviceError, match="authentication failed"):
        SshDevice(validate(profile, Path("agent.yaml"))).open()  # no agent yet: no key
    socket_path = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(socket_path)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not socket_path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        monkeypatch.setenv("SSH_AUTH_SOCK", str(socket_path))
        subprocess.run(["ssh-add", "-q", str(device.sshd.client_key)], check=True)
        with SshDevice(validate(profile, Path("agent.yaml"))) as ssh:
            assert ssh.free_space() > 0  # type: ignore[attr-defined]
    finally:
        agent.terminate()
        agent.wait()


def test_password_is_asked_on_the_terminal_after_the_keys_fail(tmp_path: Path) -> None:
    """`password: true`: a refused key, then the prompt; the password is never echoed."""
    password = f"pw-{uuid.uuid4().hex[:12]}"
    stranger = stranger_key(tmp_path)
    with throwaway_user(password) as (user, home):
        server = start_sshd(passwords=True)
        try:
            profile = server.write_profile(
                tmp_path / "pw.yaml", user=user, password=True, identity_file=str(stranger)
            )
            wrong, wrong_shown = edgebench_on_terminal(
                "devices", "check", str(profile), "--json", cwd=tmp_path, answer="not-it"
            )
            _, shown = edgebench_on_terminal(
                "devices", "check", str(profile), "--json", cwd=tmp_path, answer=password
            )
        finally:
            server.stop()
        deployed = (home / ".cache" / "edgebench-agent" / "agent").is_dir()
    assert f"{user}@{server.host}'s password:" in shown, shown
    assert password not in shown  # echo was off
    assert password not in profile.read_text()
    rows = {row["check"]: row for row in json.loads(shown[shown.index("\n[") + 1 :])}
    assert rows["connect"]["status"] == "ok", rows["connect"]
    assert deployed  # files went over SFTP as that user, so the session really was theirs
    assert wrong == 1 and f"{user}@{server.host}'s password:" in wrong_shown
    failed = {row["check"]: row for row in json.loads(wrong_shown[wrong_shown.index("\n[") + 1 :])}
    detail = failed["connect"]["detail"]
    assert failed["connect"]["status"] == "FAIL"
    assert "authentication failed" in detail and "tried the password" in detail
    assert "check the password" in detail


def test_bundled_ssh_profiles_validate() -> None:
    for name in ("raspberry-pi-5", "jetson-orin-nano", "generic-linux"):
        path = REPO / "device_profiles" / f"{name}.yaml"
        profile = validate(yaml.safe_load(path.read_text()), path)
        assert profile["transport"] == "ssh"
        SshDevice(profile)  # constructs without touching the network


pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

"""The SSH device end to end against a real OpenSSH server on loopback.

What a user with a Raspberry Pi sees: `edgebench run --device pi.yaml` deploys, runs the agent
with the device's Python, streams progress and brings back the same results directory as the
local device; a second deploy copies nothing; latencies agree with the local device.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from edgebench.agent.recorder import read_queries
from edgebench.cli.devices_check import add_check_parser
from edgebench.devices.profiles import validate
from edgebench.devices.ssh import SshDevice

from .ssh_fixtures import (  # noqa: F401  (device_fixture, sshd_fixture: pytest fixtures)
    LoopbackDevice,
    device_fixture,
    edgebench,
    sshd_fixture,
)
from .support import CLI, REPO, shared_model

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
    for name in (*LOADGEN_LOGS, "user.conf", "record.json", "plan.json", "summary.txt"):
        assert (run_dir / name).is_file(), name
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
    profile = device.write(python=str(python))
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
    model = shared_model("kws_ref_model.tflite")
    profile = device.write()
    env = dict(os.environ, PYTHONPATH=str(REPO))
    process = subprocess.Popen(
        [*CLI, "run", "--device", str(profile), "--model", str(model),
         "-s", "SingleStream", "--duration", "30", "--results", "res", "--json"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert wait_for_remote_queries(device, 60), "the remote run never started measuring"
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=40)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr
    [run_dir] = list((tmp_path / "res").iterdir())
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "incomplete"
    record = json.loads((run_dir / "record.json").read_text())
    assert record["status"] == "interrupted"
    index, _, _ = read_queries(str(run_dir / "queries"))
    assert len(index) == record["query_count"] > 0
    assert not agent_running(device.workdir)


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


def test_ssh_config_alias_and_proxy_jump(device: LoopbackDevice, tmp_path: Path) -> None:
    """`host: board` resolves through an ssh config, hopping via a jump host (ProxyJump)."""
    sshd = device.sshd
    config = tmp_path / "ssh_config"
    config.write_text(
        f"Host jumpbox\n  HostName {sshd.host}\n  Port {sshd.port}\n  User {sshd.user}\n"
        f"  IdentityFile {sshd.client_key}\n  UserKnownHostsFile {sshd.known_hosts}\n"
        f"Host board\n  HostName {sshd.host}\n  Port {sshd.port}\n  User {sshd.user}\n"
        f"  IdentityFile {sshd.client_key}\n  UserKnownHostsFile {sshd.known_hosts}\n"
        f"  ProxyJump jumpbox\n"
    )
    profile = {"name": "board", "transport": "ssh", "host": "board", "ssh_config": str(config)}
    profile["python"], profile["workdir"] = sys.executable, str(device.workdir)
    ssh = SshDevice(validate(profile, Path("board.yaml")))
    with ssh:
        assert len(ssh._jumps) == 1
        assert ssh.describe().get("ssh")["target"].startswith("board (")


def wait_for_remote_queries(device: LoopbackDevice, timeout: float) -> bool:
    """The first chunk of per-query times (65,536 queries) reached the device's disk."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        files = list((device.workdir / "runs").glob("*/out/queries/index.i64"))
        if files and files[0].stat().st_size > 0:
            return True
        time.sleep(0.1)
    return False


def agent_running(workdir: Path) -> bool:
    """Is any agent process with this workdir in its command line still alive?"""
    needle = str(workdir).encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if needle in (entry / "cmdline").read_bytes():
                    return True
            except OSError:
                continue
    return False


def test_bundled_ssh_profiles_validate() -> None:
    for name in ("raspberry-pi-5", "jetson-orin-nano", "generic-linux"):
        path = REPO / "device_profiles" / f"{name}.yaml"
        profile = validate(yaml.safe_load(path.read_text()), path)
        assert profile["transport"] == "ssh"
        SshDevice(profile)  # constructs without touching the network


pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

"""The loopback SSH 'device' as pytest fixtures: a real sshd, profiles, and the CLI against it.

The device's working directory deliberately contains `$(touch <marker>)`: every test that runs
something on the device also proves that profile values never reach a shell unquoted.
"""

from __future__ import annotations

import contextlib
import os
import pty
import select
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgebench.lab.sshd import LoopbackSshd, SshdUnavailable

from .support import CLI, REPO, processes_mentioning, shared_model, wait_for


def start_sshd(**options: Any) -> LoopbackSshd:
    try:
        return LoopbackSshd(**options).start()
    except (SshdUnavailable, OSError, RuntimeError) as error:
        pytest.skip(f"no loopback sshd: {error}")


@pytest.fixture(scope="module", name="sshd")
def sshd_fixture() -> Iterator[LoopbackSshd]:
    server = start_sshd()
    try:
        yield server
    finally:
        server.stop()


class LoopbackDevice:
    """Writes profiles for the loopback sshd under one test's tmp_path."""

    def __init__(self, sshd: LoopbackSshd, root: Path) -> None:
        self.sshd = sshd
        self.root = root
        self.marker = root / "pwned"
        self.workdir = root / f"dev $(touch {self.marker}); `touch {self.marker}`" / "wd"

    def profile(self, **overrides: Any) -> dict[str, Any]:
        values: dict[str, Any] = {"python": sys.executable, "workdir": str(self.workdir)}
        values.update(overrides)
        return self.sshd.profile(**values)

    def write(self, name: str = "loopback.yaml", **overrides: Any) -> Path:
        values: dict[str, Any] = {"python": sys.executable, "workdir": str(self.workdir)}
        values.update(overrides)
        return self.sshd.write_profile(self.root / name, **values)

    def python_wrapper(self, name: str, hidden: list[str], launcher: str = "") -> Path:
        """A 'device python' on which the given modules fail to import (shadowed), started
        through `launcher` (e.g. `setarch i686`: a board whose uname says 32-bit)."""
        shadow = self.root / f"{name}-shadow"
        for module in hidden:
            package = shadow / module
            package.mkdir(parents=True, exist_ok=True)
            (package / "__init__.py").write_text("raise ImportError('not on this device')\n")
        wrapper = self.root / name
        wrapper.write_text(
            "#!/bin/sh\n"
            f'PYTHONPATH="{shadow}${{PYTHONPATH:+:$PYTHONPATH}}" '
            f'exec {launcher} "{sys.executable}" "$@"\n'
        )
        wrapper.chmod(0o755)
        return wrapper


@pytest.fixture(name="device")
def device_fixture(sshd: LoopbackSshd, tmp_path: Path) -> Iterator[LoopbackDevice]:
    loopback = LoopbackDevice(sshd, tmp_path)
    yield loopback
    assert not loopback.marker.exists(), "a profile value was run by a shell"


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The CLI's environment: this checkout first, wide lines, no ssh-agent."""
    env = dict(os.environ, COLUMNS="4000", **(extra or {}))
    env.pop("SSH_AUTH_SOCK", None)  # only the profile's key may log in
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def edgebench(
    *args: str, cwd: Path, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """The real CLI in a subprocess, wide enough that one message stays one line."""
    return subprocess.run(
        [*CLI, *args],
        cwd=cwd,
        env=cli_env(env),
        stdin=subprocess.DEVNULL,  # never the terminal pytest runs in, nor its /dev/tty:
        start_new_session=True,  # a new session has no controlling terminal
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def edgebench_on_terminal(
    *args: str, cwd: Path, answer: str, prompt: bytes = b"password: ", timeout: float = 120
) -> tuple[int, str]:
    """The CLI on a pseudo-terminal, as a person runs it: `answer` is typed at `prompt`.

    The child gets its own session, without a controlling terminal, so it never reaches the
    terminal pytest runs in; getpass then asks on stdin, the pty, with echo off. Returns the
    exit code and everything the terminal showed (CRLF folded to LF).
    """
    main, child = pty.openpty()
    process = subprocess.Popen(
        [*CLI, *args],
        cwd=cwd,
        env=cli_env(),
        stdin=child,
        stdout=child,
        stderr=child,
        start_new_session=True,
    )
    os.close(child)
    shown, answered = b"", False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not select.select([main], [], [], 1.0)[0]:
                continue
            try:
                chunk = os.read(main, 65536)
            except OSError:  # EIO: every process holding the terminal has exited
                break
            if not chunk:
                break
            shown += chunk
            if not answered and prompt in shown:
                os.write(main, answer.encode() + b"\n")
                answered = True
        code = process.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(main)
    return code, shown.decode(errors="replace").replace("\r\n", "\n")


@contextlib.contextmanager
def throwaway_user(password: str) -> Iterator[tuple[str, Path]]:
    """A local account with `password` and a home under /tmp; deleted afterwards (root only).

    sshd with `UsePAM no` checks passwords against the shadow file, so a real account is the
    only way to test password logins without touching the system's PAM set-up.
    """
    if os.geteuid() != 0 or not (shutil.which("useradd") and shutil.which("chpasswd")):
        pytest.skip("a throwaway user with a password needs root, useradd and chpasswd")
    name = f"edgebench-{uuid.uuid4().hex[:8]}"
    home = Path(tempfile.gettempdir()) / name
    done = subprocess.run(
        ["useradd", "--create-home", "--home-dir", str(home), "--shell", "/bin/sh", name],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot create a throwaway user here: {done.stderr.strip()}")
    try:
        subprocess.run(
            ["chpasswd"], input=f"{name}:{password}\n", text=True, check=True, capture_output=True
        )
        yield name, home
    finally:
        subprocess.run(["userdel", "--remove", name], check=False, capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


@contextlib.contextmanager
def tmpfs(mount: Path, size: int) -> Iterator[Path]:
    """A real filesystem of `size` bytes: writes past it fail with ENOSPC, even for root."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def fill(directory: Path, leave: int = 0) -> None:
    """Take the free space of `directory`'s filesystem, all but `leave` bytes (a ballast file)."""
    info = os.statvfs(directory)
    (directory / "ballast").write_bytes(bytes(info.f_bavail * info.f_frsize - leave))


def stranger_key(directory: Path) -> Path:
    """A key pair no server here knows."""
    key = directory / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key


def start_long_run(device: LoopbackDevice, cwd: Path, *extra: str) -> subprocess.Popen:
    """A 30 s `edgebench run` (kws, SingleStream, --json) in the background, to be cut short."""
    model = shared_model("kws_ref_model.tflite")
    return subprocess.Popen(
        [*CLI, "run", "--device", str(device.write()), "--model", str(model),
         "-s", "SingleStream", "--duration", "30", "--results", "res", "--json", *extra],
        cwd=cwd, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def wait_measuring(workdir: Path, timeout: float = 60) -> bool:
    """The first chunk of per-query times (65,536 queries) reached the device's disk."""

    def measuring() -> bool:
        files = list((workdir / "runs").glob("*/out/queries/index.i64"))
        return bool(files) and files[0].stat().st_size > 0

    return wait_for(measuring, timeout)


def agent_pids(workdir: Path) -> list[int]:
    """Processes (not this one) with `workdir` in their command line: agents on the device."""
    return processes_mentioning(str(workdir))


def error_lines(done: subprocess.CompletedProcess) -> list[str]:
    assert "Traceback" not in done.stderr, done.stderr
    return [line for line in done.stderr.splitlines() if line.strip()]

"""The loopback SSH 'device' as pytest fixtures: a real sshd, profiles, and the CLI against it.

The device's working directory deliberately contains `$(touch <marker>)`: every test that runs
something on the device also proves that profile values never reach a shell unquoted.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgebench.lab.sshd import LoopbackSshd, SshdUnavailable

from .support import CLI, REPO


def start_sshd() -> LoopbackSshd:
    try:
        return LoopbackSshd().start()
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

    def python_wrapper(self, name: str, hidden: list[str]) -> Path:
        """A 'device python' on which the given modules fail to import (shadowed)."""
        shadow = self.root / f"{name}-shadow"
        for module in hidden:
            package = shadow / module
            package.mkdir(parents=True, exist_ok=True)
            (package / "__init__.py").write_text("raise ImportError('not on this device')\n")
        wrapper = self.root / name
        wrapper.write_text(
            "#!/bin/sh\n"
            f'PYTHONPATH="{shadow}${{PYTHONPATH:+:$PYTHONPATH}}" exec "{sys.executable}" "$@"\n'
        )
        wrapper.chmod(0o755)
        return wrapper


@pytest.fixture(name="device")
def device_fixture(sshd: LoopbackSshd, tmp_path: Path) -> Iterator[LoopbackDevice]:
    loopback = LoopbackDevice(sshd, tmp_path)
    yield loopback
    assert not loopback.marker.exists(), "a profile value was run by a shell"


def edgebench(
    *args: str, cwd: Path, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """The real CLI in a subprocess, wide enough that one message stays one line."""
    full_env = dict(os.environ, COLUMNS="4000", **(env or {}))
    full_env.pop("SSH_AUTH_SOCK", None)  # only the profile's key may log in
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), full_env.get("PYTHONPATH")]))
    return subprocess.run(
        [*CLI, *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def error_lines(done: subprocess.CompletedProcess) -> list[str]:
    assert "Traceback" not in done.stderr, done.stderr
    return [line for line in done.stderr.splitlines() if line.strip()]

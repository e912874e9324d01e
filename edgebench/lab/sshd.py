"""A real OpenSSH server on 127.0.0.1, so the SSH transport is tested against the real thing.

Mocking paramiko would test our idea of SSH; a throwaway sshd with its own config, host key
and authorized_keys tests what a Raspberry Pi will do, including the faults (refused keys,
changed host keys, a session killed under a running agent). It listens on a free loopback port,
writes everything under one temp directory and only ever signals its own PID and the session
processes it forked.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

SSHD = "/usr/sbin/sshd"
SFTP_SERVER = "/usr/lib/openssh/sftp-server"
PRIVSEP_DIR = Path("/run/sshd")
START_TIMEOUT_S = 10.0


class SshdUnavailable(RuntimeError):
    """OpenSSH's server is not installed here; tests skip with this message."""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _keygen(path: Path, comment: str) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        capture_output=True,
    )


def _children(pid: int) -> list[int]:
    """Direct children of `pid`, read from /proc (no psutil on CI images)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may contain spaces and parentheses; fields resume after the last ')'.
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def _command_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


class LoopbackSshd:
    """One sshd on 127.0.0.1:<free port>; a context manager and a natural pytest fixture.

    `client_key` is authorized for the current user (and for any other: one AuthorizedKeysFile
    serves every account, so a password test must offer another key); `known_hosts` pins the
    host key, so a client can verify the server the way a real deployment should. With
    `passwords=True` it also accepts passwords (checked by sshd against the system's shadow
    file, no PAM); `sftp` and `forwarding` switch off the SFTP subsystem and TCP forwarding,
    as some boards do.
    """

    def __init__(
        self,
        directory: Path | None = None,
        *,
        passwords: bool = False,
        sftp: bool = True,
        forwarding: bool = True,
    ) -> None:
        if not (os.path.exists(SSHD) and shutil.which("ssh-keygen")):
            raise SshdUnavailable(
                f"{SSHD} not found: install it with apt-get install openssh-server"
            )
        self._own_dir = directory is None
        self.directory = Path(directory or tempfile.mkdtemp(prefix="edgebench-sshd-"))
        self.user = getpass.getuser()
        self.host = "127.0.0.1"
        self.port = 0
        self.host_key = self.directory / "ssh_host_ed25519_key"
        self.client_key = self.directory / "client_ed25519"
        self.known_hosts = self.directory / "known_hosts"
        self.config = self.directory / "sshd_config"
        self.log = self.directory / "sshd.log"
        self.passwords = passwords
        self.sftp = sftp  # False: a board whose sshd has no SFTP server (dropbear, minimal images)
        self.forwarding = forwarding  # False: a jump host that refuses to open tunnels
        self.process: subprocess.Popen | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> LoopbackSshd:
        if os.geteuid() == 0:
            PRIVSEP_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
        if not self.host_key.exists():
            _keygen(self.host_key, "edgebench-lab-host")
        if not self.client_key.exists():
            _keygen(self.client_key, "edgebench-lab-client")
        authorized = self.directory / "authorized_keys"
        authorized.write_text(self.client_key.with_suffix(".pub").read_text())
        for _attempt in range(5):  # another process may grab the free port first
            self.port = _free_port()
            self._write_config(authorized)
            self.process = subprocess.Popen(
                [SSHD, "-D", "-f", str(self.config), "-E", str(self.log)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if self._wait_listening():
                self._write_known_hosts()
                return self
            self.process.kill()
            self.process.wait()
        raise RuntimeError(f"sshd did not start; see {self.log}")

    def _write_config(self, authorized: Path) -> None:
        lines = [
            "ListenAddress 127.0.0.1",
            f"Port {self.port}",
            f"HostKey {self.host_key}",
            f"PidFile {self.directory / 'sshd.pid'}",
            f"AuthorizedKeysFile {authorized}",
            "PubkeyAuthentication yes",
            f"PasswordAuthentication {'yes' if self.passwords else 'no'}",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "StrictModes no",  # the keys sit under world-writable /tmp
            "PermitRootLogin prohibit-password",
            f"AllowTcpForwarding {'yes' if self.forwarding else 'no'}",  # ProxyJump via us
            "LogLevel VERBOSE",
        ]
        if self.sftp:
            lines.append(f"Subsystem sftp {SFTP_SERVER}")
        self.config.write_text("\n".join(lines) + "\n")

    def _wait_listening(self) -> bool:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                return False
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return True
            except OSError:
                time.sleep(0.01)
        return False

    def _write_known_hosts(self) -> None:
        self.known_hosts.write_text(self.known_hosts_line())

    def stop(self) -> None:
        """Stop our sshd (by its PID) and the sessions it serves; remove the temp dir."""
        if self.process is not None and self.process.poll() is None:
            self.drop_sessions()
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self._own_dir:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> LoopbackSshd:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what clients need -------------------------------------------------------------------

    def host_public_key(self) -> str:
        """'ssh-ed25519 AAAA...' without the comment."""
        kind, blob = self.host_key.with_suffix(".pub").read_text().split()[:2]
        return f"{kind} {blob}"

    def known_hosts_line(self) -> str:
        return f"[{self.host}]:{self.port} {self.host_public_key()}\n"

    def profile(self, **overrides: Any) -> dict[str, Any]:
        """A device profile reaching this server, for `edgebench run --device x.yaml`."""
        profile: dict[str, Any] = {
            "name": "loopback",
            "transport": "ssh",
            "description": "OpenSSH on 127.0.0.1 (edgebench.lab.sshd)",
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "identity_file": str(self.client_key),
            "known_hosts": str(self.known_hosts),
        }
        profile.update(overrides)
        return profile

    def write_profile(self, path: Path, **overrides: Any) -> Path:
        import yaml

        path.write_text(yaml.safe_dump(self.profile(**overrides), sort_keys=False))
        return path

    # -- faults ------------------------------------------------------------------------------

    def session_pids(self) -> list[int]:
        """The sshd processes serving connections (not the listener, not the user's commands)."""
        if self.process is None:
            return []
        found: list[int] = []
        pending = _children(self.process.pid)
        while pending:
            pid = pending.pop()
            if _command_name(pid) == "sshd":
                found.append(pid)
                pending.extend(_children(pid))
        return found

    def drop_sessions(self) -> int:
        """Kill every session process, as a dropped network would: the commands they ran
        keep running on the 'device', the client sees its connection die. Returns how many."""
        pids = self.session_pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return len(pids)

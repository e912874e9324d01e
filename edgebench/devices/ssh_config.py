"""Where and how to reach an SSH device: the profile first, then ~/.ssh/config, then defaults.

Users already describe their boards in ~/.ssh/config (aliases, users, keys, jump hosts); a
profile that says only `host: pi5` must reach the same machine `ssh pi5` does. Profile values
win over the config file, as command-line options win over it for OpenSSH.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paramiko

from .base import DeviceError

DEFAULT_CONFIG = "~/.ssh/config"
DEFAULT_KNOWN_HOSTS = ("~/.ssh/known_hosts",)
SYSTEM_KNOWN_HOSTS = ("/etc/ssh/ssh_known_hosts",)
DEFAULT_TIMEOUT_S = 10.0


@dataclass
class Target:
    """One resolved SSH destination (a device or a jump host)."""

    alias: str
    hostname: str
    port: int = 22
    user: str = ""
    identity_files: list[str] = field(default_factory=list)
    identities_only: bool = False
    known_hosts: list[str] = field(default_factory=list)
    proxy_jump: str | None = None
    proxy_command: str | None = None
    connect_timeout: float = DEFAULT_TIMEOUT_S

    @property
    def label(self) -> str:
        """How messages name the device: user@host:port, plus the alias when it differs."""
        where = f"{self.user}@{self.hostname}:{self.port}"
        return where if self.alias == self.hostname else f"{self.alias} ({where})"

    @property
    def known_hosts_name(self) -> str:
        """The name known_hosts files use for this host: `host`, or `[host]:port`."""
        return self.hostname if self.port == 22 else f"[{self.hostname}]:{self.port}"


def load_ssh_config(path: str | None = None) -> paramiko.SSHConfig:
    """The user's ssh config (none is fine), or the file a profile names (which must exist)."""
    config_path = Path(os.path.expanduser(path or DEFAULT_CONFIG))
    if not config_path.is_file():
        if path:
            raise DeviceError(f"{path}: no such ssh config file; fix `ssh_config:` in the profile")
        return paramiko.SSHConfig()
    try:
        return paramiko.SSHConfig.from_path(str(config_path))
    except (OSError, UnicodeDecodeError, paramiko.ssh_exception.ConfigParseError) as error:
        raise DeviceError(f"{config_path}: unreadable ssh config ({error}); fix it") from None


def resolve(
    alias: str,
    config: paramiko.SSHConfig,
    *,
    port: int | None = None,
    user: str | None = None,
    identity_file: str | None = None,
    known_hosts: str | None = None,
    connect_timeout: float | None = None,
) -> Target:
    """Merge explicit values over what ~/.ssh/config says for `alias`."""
    entry = config.lookup(alias)
    files = [identity_file] if identity_file else list(entry.get("identityfile") or [])
    known = [known_hosts] if known_hosts else (entry.get("userknownhostsfile") or "").split()
    timeout = connect_timeout or float(entry.get("connecttimeout") or DEFAULT_TIMEOUT_S)
    return Target(
        alias=alias,
        hostname=str(entry.get("hostname") or alias),
        port=int(port or entry.get("port") or 22),
        user=str(user or entry.get("user") or getpass.getuser()),
        identity_files=[os.path.expanduser(f) for f in files],
        # An explicit key in the profile means "this key": guessing others would hide a typo.
        identities_only=bool(identity_file) or entry.get("identitiesonly", "no").lower() == "yes",
        known_hosts=[os.path.expanduser(f) for f in (known or DEFAULT_KNOWN_HOSTS)],
        proxy_jump=entry.get("proxyjump"),
        proxy_command=entry.get("proxycommand"),
        connect_timeout=timeout,
    )


def resolve_profile(profile: dict[str, Any], config: paramiko.SSHConfig) -> Target:
    target = resolve(
        str(profile["host"]),
        config,
        port=profile.get("port"),
        user=profile.get("user"),
        identity_file=profile.get("identity_file"),
        known_hosts=profile.get("known_hosts"),
        connect_timeout=profile.get("connect_timeout"),
    )
    if profile.get("proxy_jump"):
        target.proxy_jump = str(profile["proxy_jump"])
    return target


def jump_hosts(spec: str, config: paramiko.SSHConfig, known_hosts: list[str]) -> list[Target]:
    """`ProxyJump a,user@b:2222` as targets, in the order to hop through."""
    hops = []
    for part in spec.split(","):
        part = part.strip().removeprefix("ssh://")
        if not part or part.lower() == "none":
            continue
        user, _, rest = part.rpartition("@")
        host, _, port = rest.partition(":")
        if host.startswith("["):  # [v6addr] or [v6addr]:port
            host, _, port = rest[1:].partition("]")
            port = port.removeprefix(":")
        hop = resolve(host, config, port=int(port) if port else None, user=user or None)
        if not (config.lookup(host).get("userknownhostsfile")):
            hop.known_hosts = list(known_hosts)
        hops.append(hop)
    return hops

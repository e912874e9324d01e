"""Opening an SSH connection the careful way: verified host keys, clear refusals, jump hosts.

A benchmark host often holds lab credentials, so a device whose host key is unknown or has
changed is refused unless the user explicitly trusts it, and every failure becomes one line
saying which host, what went wrong and the command that fixes it (paramiko's own exceptions
name neither the profile nor the fix).
"""

from __future__ import annotations

import base64
import contextlib
import getpass
import hashlib
import itertools
import logging
import os
import shlex
import socket
import sys
from pathlib import Path

import paramiko

from .base import DeviceError
from .ssh_config import SYSTEM_KNOWN_HOSTS, Target, jump_hosts

# paramiko's transport thread logs failed handshakes with a traceback; with no logging set up
# Python would print it to stderr beside our one-line error. Our errors say it all.
logging.getLogger("paramiko").addHandler(logging.NullHandler())

# What a broken or closed connection raises, wherever paramiko notices it.
SSH_ERRORS = (OSError, EOFError, paramiko.SSHException)

# A device that vanishes without closing TCP (cable pulled, board reset) is noticed by the
# kernel after about KEEPIDLE + KEEPINTVL * KEEPCNT seconds instead of the default ~2 hours.
TCP_KEEPALIVE = {"TCP_KEEPIDLE": 10, "TCP_KEEPINTVL": 5, "TCP_KEEPCNT": 3}


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's SHA256:... form, the one `ssh-keygen -lf` and `ssh` print."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def _keyscan_fix(target: Target, profile_name: str) -> str:
    port = "" if target.port == 22 else f"-p {target.port} "
    return (
        f"check the fingerprint on the device (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub), then "
        f"`ssh-keyscan {port}{target.hostname} >> {target.known_hosts[0]}` or "
        f"`edgebench devices check {profile_name} --trust-new-host-key` "
        f"(the same flag works for `edgebench run`; or set trust_new_host_key: true in the "
        f"profile)"
    )


class RefuseUnknownHost(paramiko.MissingHostKeyPolicy):
    """Refuse a host that no known_hosts file lists, naming its fingerprint and the fix."""

    def __init__(self, target: Target, profile_name: str) -> None:
        self.target = target
        self.profile_name = profile_name

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey):
        raise DeviceError(
            f"{self.target.label}: unknown host key {key.get_name()} {fingerprint(key)} "
            f"(not in {', '.join(self.target.known_hosts)}); refusing to connect: "
            + _keyscan_fix(self.target, self.profile_name)
        )


class TrustNewHost(paramiko.MissingHostKeyPolicy):
    """Explicitly asked for: accept a host seen for the first time and record its key.

    Only *unknown* hosts pass; a changed key still fails in paramiko's own check before this
    policy is consulted, because that is what an attack looks like.
    """

    def __init__(self, target: Target) -> None:
        self.target = target

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey):
        path = Path(self.target.known_hosts[0])
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(path, "a") as handle:
            handle.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")
        client.get_host_keys().add(hostname, key.get_name(), key)
        sys.stderr.write(
            f"edgebench: trusted new host key for {self.target.label}: "
            f"{key.get_name()} {fingerprint(key)} (added to {path})\n"
        )


def _client(target: Target, profile_name: str, trust_new: bool) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    for path in SYSTEM_KNOWN_HOSTS:
        if os.path.isfile(path):
            with contextlib.suppress(OSError, paramiko.SSHException):
                client.load_system_host_keys(path)
    for path in target.known_hosts:
        if os.path.isfile(path):
            try:
                client.get_host_keys().load(path)
            except (OSError, paramiko.SSHException) as error:
                raise DeviceError(
                    f"{path}: unreadable known_hosts file ({error}); fix or remove it"
                ) from None
    client.set_missing_host_key_policy(
        TrustNewHost(target) if trust_new else RefuseUnknownHost(target, profile_name)
    )
    return client


def _has_terminal() -> bool:
    """A terminal to ask on: the controlling one (as getpass and ssh use), else stdin."""
    try:
        with open("/dev/tty", "rb"):
            return True
    except OSError:
        return sys.stdin.isatty()


def _password(target: Target) -> str:
    """Ask for it on the terminal; never read from files, never stored or logged."""
    if not _has_terminal():
        raise DeviceError(
            f"{target.label}: password authentication needs a terminal to ask on; "
            f"install a key instead: ssh-copy-id -p {target.port} {target.user}@{target.hostname}"
        )
    return getpass.getpass(f"{target.user}@{target.hostname}'s password: ")


def _tune_socket(client: paramiko.SSHClient) -> None:
    transport = client.get_transport()
    sock = getattr(transport, "sock", None)
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for name, value in TCP_KEEPALIVE.items():
            if hasattr(socket, name):
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)


def _proxy_command(target: Target) -> paramiko.ProxyCommand:
    try:
        return paramiko.ProxyCommand(target.proxy_command)
    except OSError as error:
        raise DeviceError(
            f"{target.label}: ProxyCommand `{target.proxy_command}` could not start "
            f"({error.strerror or error}); fix ProxyCommand in the ssh config"
        ) from None


def _login(client: paramiko.SSHClient, target: Target, ask_password: bool, **options) -> None:
    """Keys and ssh-agent first; the password is asked only once the host key checked out and
    no key was accepted, as OpenSSH does, so nobody types a password to an unverified host."""
    try:
        client.connect(target.hostname, port=target.port, username=target.user, **options)
    except paramiko.BadHostKeyException:
        raise
    except paramiko.SSHException as error:
        transport = client.get_transport()
        if transport is None or not transport.is_active() or transport.is_authenticated():
            raise
        if not ask_password:  # connected, but no key was accepted (or there was none)
            if isinstance(error, paramiko.AuthenticationException):
                raise
            raise paramiko.AuthenticationException(str(error)) from None
        transport.auth_password(target.user, _password(target))


def _connect_one(
    target: Target,
    profile_name: str,
    *,
    trust_new: bool,
    ask_password: bool,
    sock: object | None = None,
) -> paramiko.SSHClient:
    key_files = [f for f in target.identity_files if os.path.isfile(f)]
    if target.identities_only and target.identity_files and not key_files:
        raise DeviceError(
            f"{target.label}: identity file {target.identity_files[0]} does not exist; "
            f"fix identity_file in the profile (or IdentityFile in ~/.ssh/config)"
        )
    client = _client(target, profile_name, trust_new)
    try:
        if sock is None and target.proxy_command:
            sock = _proxy_command(target)
        _login(
            client,
            target,
            ask_password,
            key_filename=key_files or None,
            look_for_keys=not target.identities_only,
            allow_agent=True,
            timeout=target.connect_timeout,
            banner_timeout=target.connect_timeout,
            auth_timeout=target.connect_timeout,
            sock=sock,
        )
    except DeviceError:
        client.close()
        raise
    except paramiko.BadHostKeyException as error:
        client.close()
        raise DeviceError(
            f"{target.label}: HOST KEY CHANGED: the device offered {error.key.get_name()} "
            f"{fingerprint(error.key)} but known_hosts has {fingerprint(error.expected_key)}; "
            f"refusing to connect (possible man-in-the-middle). If the device was reinstalled, "
            f"remove the old key with `ssh-keygen -R '{target.known_hosts_name}' -f "
            f"{target.known_hosts[0]}` and verify the new one"
        ) from None
    except paramiko.PasswordRequiredException:
        client.close()
        raise DeviceError(
            f"{target.label}: the key {key_files[0] if key_files else ''} is passphrase-protected; "
            f"load it into ssh-agent first (ssh-add {key_files[0] if key_files else 'KEY'})"
        ) from None
    except paramiko.AuthenticationException as error:
        client.close()
        tried = ", ".join(key_files) or "default keys and ssh-agent"
        fix = (
            f"install your public key on the device (ssh-copy-id -i KEY.pub -p {target.port} "
            f"{target.user}@{target.hostname}) or set identity_file in the profile"
        )
        if ask_password:
            tried, fix = f"the password, {tried}", f"check the password, or {fix}"
        raise DeviceError(
            f"{target.label}: authentication failed ({error}; tried {tried}); {fix}"
        ) from None
    except TimeoutError:
        client.close()
        raise DeviceError(
            f"{target.label}: no answer within {target.connect_timeout:g} s; check that the "
            f"device is on and reachable (ping {target.hostname}), or raise connect_timeout"
        ) from None
    except (OSError, paramiko.SSHException) as error:
        client.close()
        reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
        if isinstance(error, paramiko.ssh_exception.NoValidConnectionsError):
            reason = "connection refused"
        raise DeviceError(
            f"{target.label}: cannot connect ({reason}); check that the device is on and sshd "
            f"runs there, and the host/port in the profile or ~/.ssh/config"
        ) from None
    _tune_socket(client)
    return client


def _tunnel(jump: paramiko.SSHClient, following: Target, target: Target) -> paramiko.Channel:
    """A TCP stream from the jump host to the next hop, as `ssh -J` opens it."""
    transport = jump.get_transport()
    assert transport is not None
    try:
        return transport.open_channel(
            "direct-tcpip", (following.hostname, following.port), ("127.0.0.1", 0)
        )
    except paramiko.SSHException as error:
        raise DeviceError(
            f"{target.label}: the jump host could not open a tunnel to {following.hostname}:"
            f"{following.port} ({error or type(error).__name__}); check ProxyJump and that the "
            f"jump host allows TCP forwarding (AllowTcpForwarding in its sshd_config)"
        ) from None


def connect(
    target: Target,
    profile_name: str,
    *,
    config: paramiko.SSHConfig,
    trust_new: bool = False,
    ask_password: bool = False,
) -> tuple[paramiko.SSHClient, list[paramiko.SSHClient]]:
    """(client for the device, jump clients to close after it), hopping via ProxyJump.

    Every hop is verified and authenticated like the device itself (its own known_hosts and
    keys from the ssh config, else the device's known_hosts).
    """
    jumps: list[paramiko.SSHClient] = []
    sock = None
    hops = jump_hosts(target.proxy_jump, config, target.known_hosts) if target.proxy_jump else []
    options = {"trust_new": trust_new, "ask_password": ask_password}
    try:
        for hop, following in itertools.pairwise([*hops, target]):
            jumps.append(_connect_one(hop, profile_name, sock=sock, **options))
            sock = _tunnel(jumps[-1], following, target)
        return _connect_one(target, profile_name, sock=sock, **options), jumps
    except BaseException:
        for client in jumps:
            client.close()
        raise


def shell_join(words: list[str]) -> str:
    """A command line with every word quoted: profile values never reach a shell raw."""
    return " ".join(shlex.quote(str(word)) for word in words)

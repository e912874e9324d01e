"""A Linux board over SSH (Raspberry Pi, Jetson, any Linux box) as the device under test.

The board runs the same agent as the local device, started with the board's own Python, so
the timed loop runs on the board and the network only carries the plan in and the logs out:
inference is timed on the device, never per SSH command (an exec costs tens of ms, more with
slow shell rc files). Layout under the device's `workdir`:

    agent/<hash>/edgebench/...       the agent package, one directory per agent version (the
                                     current and the previous are kept, older ones pruned)
    blobs/<sha256><suffix>           models and samples, by content (reused across runs)
    runs/<run id>-<random>/          plan.json and out/ (the agent's results); removed after
                                     the fetch unless `keep: true`

Every command is built from quoted words (`shell_join`) or passes values as positional
arguments to a fixed `sh -c` script, so no profile value is ever parsed by a shell.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import posixpath
import threading
import time
import uuid
from pathlib import Path
from typing import Any, ClassVar

import paramiko

from ..metrics.clock_mapping import ClockAnchor, ClockChannel, ClockError
from ..suite.benchmarks import sha256_file
from .base import FINAL_STATUSES, Device, DeviceError, EventHandler, RunRecord, SystemInfo
from .local import relay_events
from .registry import register
from .remote_files import DEVICE_SCRIPT, RemoteStore, Upload, fetch_tree, json_reply
from .ssh_config import Target, load_ssh_config, resolve_profile
from .ssh_connect import SSH_ERRORS, connect, shell_join
from .ssh_runtime import PROBE_SCRIPT, require_runtime

DEFAULT_WORKDIR = "~/.cache/edgebench-agent"
DEFAULT_PYTHON = "python3"
STOP_GRACE_SECONDS = 10
AGENT_PACKAGE = Path(__file__).resolve().parents[1]
PID_MARK = "@edgebench-pid "
# How a run that ended on purpose leaves record.json; any other status means the agent died.
# Agent versions kept on the device: the current one and the one before (a host switching
# back and forth between two checkouts re-copies nothing); older ones are deleted.
KEEP_AGENTS = 2
# Test-only clock injection (edgebench/agent/clock.py) travels to the device like it reaches a
# local agent through the environment; nothing else from the host environment does.
FORWARDED_ENV = ("EDGEBENCH_TEST_CLOCK_OFFSET_NS", "EDGEBENCH_TEST_CLOCK_DRIFT_PPM")

# Fixed scripts; the values they act on arrive as "$1", "$2", ... never inside the text. The
# first argument is the agent's directory, put in front of the device's own PYTHONPATH.
WITH_AGENT = 'PYTHONPATH="$1${PYTHONPATH:+:$PYTHONPATH}"; export PYTHONPATH; shift; '
LAUNCH = WITH_AGENT + 'echo "@edgebench-pid $$"; exec "$@"'
DESCRIBE = WITH_AGENT + '"$1" -c "$2"; "$1" -m edgebench.agent --describe'
STOP = (
    'tr "\\000" " " < "/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$3" || exit 0; '
    'kill -s "$2" "$1" 2>/dev/null || exit 0; i=0; '
    'while kill -0 "$1" 2>/dev/null && [ "$i" -lt "$4" ]; do sleep 0.1; i=$((i+1)); done; '
    'kill -s KILL "$1" 2>/dev/null; exit 0'
)


def agent_files() -> list[Path]:
    """What the device needs to run the agent: it imports nothing else from edgebench."""
    return [AGENT_PACKAGE / "__init__.py", *sorted((AGENT_PACKAGE / "agent").glob("*.py"))]


class _LockedLog:
    """agent.log written by two threads (stdout noise and stderr) without torn lines."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle
        self.lock = threading.Lock()

    def write(self, text: str) -> None:
        with self.lock:
            self.handle.write(text)
            self.handle.flush()


@register
class SshDevice(Device):
    """A Linux device reached with SSH (paramiko), running the agent with its own Python.

    Quirks: the device needs Python 3.8+, numpy and a TFLite runtime (checked before every run,
    with the install command); LoadGen is used where importable there. Host keys are verified
    against known_hosts; an unknown key is trusted only with `trust_new_host_key`.
    """

    transport = "ssh"
    profile_keys: ClassVar[dict[str, type | tuple[type, ...]]] = {
        "host": str,
        "port": int,
        "user": str,
        "identity_file": str,
        "password": bool,  # true: ask on the terminal (never stored)
        "python": str,
        "workdir": str,
        "keep": bool,
        "known_hosts": str,
        "trust_new_host_key": bool,
        "connect_timeout": (int, float),
        "proxy_jump": str,
        "ssh_config": str,
    }

    def __init__(self, profile: dict[str, Any]) -> None:
        super().__init__(profile)
        if not profile.get("host"):
            raise DeviceError(
                f"device {self.name}: transport ssh needs `host:` (an address or a "
                f"~/.ssh/config Host alias) in its profile"
            )
        self.trust_new_host_key = bool(profile.get("trust_new_host_key", False))
        self.keep = bool(profile.get("keep", False))
        self.client: paramiko.SSHClient | None = None
        self._jumps: list[paramiko.SSHClient] = []
        self.sftp: paramiko.SFTPClient | None = None
        self.target: Target | None = None
        self._agent_root: str | None = None
        self._probe: dict[str, Any] | None = None
        self._remote_model: str | None = None
        self._remote_samples: str | None = None
        self.deploy_stats: dict[str, Any] = {}

    # -- connection --------------------------------------------------------------------------

    @property
    def label(self) -> str:
        return self.target.label if self.target else str(self.profile.get("host"))

    def open(self) -> None:
        config = load_ssh_config(self.profile.get("ssh_config"))
        self.target = resolve_profile(self.profile, config)
        self.client, self._jumps = connect(
            self.target,
            self.name,
            config=config,
            trust_new=self.trust_new_host_key,
            ask_password=bool(self.profile.get("password")),
        )
        try:
            self.sftp = self.client.open_sftp()
            home = self.sftp.normalize(".")
        except SSH_ERRORS as error:
            self.close()
            raise DeviceError(
                f"{self.label}: no SFTP on the device ({error or type(error).__name__}); "
                f"edgebench copies files with SFTP: enable sshd's sftp subsystem (Subsystem sftp "
                f"in sshd_config; on dropbear boards install openssh-sftp-server)"
            ) from None
        self.workdir = self._expand(str(self.profile.get("workdir") or DEFAULT_WORKDIR), home)
        self.python = self._expand(str(self.profile.get("python") or DEFAULT_PYTHON), home)
        self.store = RemoteStore(self.sftp, self._device_call, self.label)

    @staticmethod
    def _expand(path: str, home: str) -> str:
        """`~` means the remote home; we expand it ourselves because quoting stops the shell."""
        if path == "~":
            return home
        if path.startswith("~/"):
            return posixpath.join(home, path[2:])
        return path

    def close(self) -> None:
        for closable in (self.sftp, self.client, *reversed(self._jumps)):
            if closable is not None:
                with contextlib.suppress(Exception):
                    closable.close()
        self.sftp, self.client, self._jumps = None, None, []

    def _transport(self) -> paramiko.Transport:
        transport = self.client.get_transport() if self.client else None
        if transport is None or not transport.is_active():
            raise DeviceError(
                f"{self.label}: not connected (the connection was closed or never opened); "
                f"check the network and the device"
            )
        return transport

    def _exec(self, words: list[str], timeout: float | None = 120) -> tuple[int, str, str]:
        """Run one command (quoted words) and wait for it; (exit code, stdout, stderr)."""
        try:
            with self._transport().open_session() as channel:
                channel.settimeout(timeout)
                channel.exec_command(shell_join(words))
                out = channel.makefile("rb").read().decode(errors="replace")
                err = channel.makefile_stderr("rb").read().decode(errors="replace")
                return channel.recv_exit_status(), out, err
        except TimeoutError:
            raise DeviceError(
                f"{self.label}: `{words[0]}` gave no answer within {timeout} s; check the device"
            ) from None
        except SSH_ERRORS as error:
            raise DeviceError(
                f"{self.label}: running `{words[0]}` failed ({error or type(error).__name__}); "
                f"the connection may have dropped: check the network and the device"
            ) from None

    def _python_failed(self, code: int, err: str) -> DeviceError:
        last = (err.strip().splitlines() or ["no output"])[-1]
        if code == 127 or "No such file" in last or "not found" in last:
            return DeviceError(
                f"{self.label}: Python {self.python!r} not found on the device ({last}); set "
                f"`python:` in profile {self.name} to the device's Python 3.8+ "
                f"(e.g. /usr/bin/python3, or a venv's bin/python)"
            )
        return DeviceError(f"{self.label}: the device's Python {self.python!r} failed: {last}")

    def _device_call(self, mode: str, request: dict) -> dict:
        code, out, err = self._exec([self.python, "-c", DEVICE_SCRIPT, mode, json.dumps(request)])
        if code != 0:
            raise self._python_failed(code, err)
        return json_reply(out, self.label)

    # -- deploy ------------------------------------------------------------------------------

    def _ensure_agent(self) -> str:
        """Copy the agent package (once per version) and return its PYTHONPATH root."""
        if self._agent_root is not None:
            return self._agent_root
        files = [(path, sha256_file(path)) for path in agent_files()]
        version = sha256_file_list(files)[:16]
        root = f"{self.workdir}/agent/{version}"
        uploads = [
            Upload(path, f"{root}/{path.relative_to(AGENT_PACKAGE.parent).as_posix()}", digest)
            for path, digest in files
        ]
        mkdir = [f"{root}/edgebench/agent", f"{self.workdir}/blobs", f"{self.workdir}/runs"]
        self.store.ensure(uploads, mkdir, self.workdir)
        self._device_call(
            "prune", {"dir": f"{self.workdir}/agent", "current": version, "keep": KEEP_AGENTS}
        )
        self._agent_root = root
        return root

    def _describe_and_probe(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The probe runs first and needs only the stdlib, so a device whose agent cannot
        start (no numpy) still gets the install command instead of an import traceback."""
        root = self._ensure_agent()
        code, out, err = self._exec(["sh", "-c", DESCRIBE, "sh", root, self.python, PROBE_SCRIPT])
        objects = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        probes = [found for found in objects if "imports" in found]
        if probes:
            self._probe = probes[0]
        if code != 0:
            if probes:
                self.require_runtime(str(self.profile.get("runtime") or "auto"))
            raise self._python_failed(code, err)
        if not probes or len(objects) < 2:
            raise DeviceError(f"{self.label}: unexpected --describe output: {out.strip()[:200]!r}")
        return objects[-1], probes[0]

    def describe(self) -> SystemInfo:
        info, probe = self._describe_and_probe()
        info["ssh"] = {"target": self.label, "python": self.python, "workdir": self.workdir}
        info["runtime_probe"] = probe["imports"]
        return SystemInfo(info)

    def probe(self) -> dict[str, Any]:
        """Which runtimes import on the device (cached for the connection)."""
        if self._probe is None:
            self._describe_and_probe()
        assert self._probe is not None
        return self._probe

    def free_space(self) -> int:
        """Bytes free under the workdir, where runs write their logs and per-query files."""
        reply = self._device_call(
            "check", {"mkdir": [self.workdir], "files": {}, "df": self.workdir}
        )
        return int(reply["free"])

    def require_runtime(self, runtime: str = "auto") -> None:
        require_runtime(self.probe(), self.python, self.label, runtime)

    def deploy(self, model: Path, samples: Path | None) -> None:
        for path in (model, samples):
            if path is not None and not path.is_file():
                raise DeviceError(f"{path} does not exist; check the path")
        started = time.perf_counter()
        self.require_runtime(str(self.profile.get("runtime") or "auto"))
        uploads = [
            Upload(path, f"{self.workdir}/blobs/{digest}{path.suffix}", digest)
            for path, digest in ((p, sha256_file(p)) for p in (model, samples) if p is not None)
        ]
        copied_before, reused_before = self.store.copied_bytes, self.store.reused
        self.store.ensure(uploads, [f"{self.workdir}/blobs"], self.workdir)
        self._remote_model = uploads[0].remote
        self._remote_samples = uploads[1].remote if samples is not None else None
        self.deploy_stats = {
            "seconds": round(time.perf_counter() - started, 4),
            "copied_bytes": self.store.copied_bytes - copied_before,
            "reused_files": self.store.reused - reused_before,
        }

    # -- run ---------------------------------------------------------------------------------

    def run(self, plan: dict[str, Any], outdir: Path, on_event: EventHandler) -> RunRecord:
        if self._remote_model is None:
            raise DeviceError("run() before deploy(): nothing to run")
        self.require_runtime(str(plan.get("runtime") or "auto"))
        run_dir = f"{self.workdir}/runs/{outdir.name}-{uuid.uuid4().hex[:8]}"
        plan = dict(plan, model=self._remote_model, samples=self._remote_samples)
        outdir.mkdir(parents=True, exist_ok=True)
        plan_text = json.dumps(plan, indent=2)
        (outdir / "plan.json").write_text(plan_text)
        self._put_plan(run_dir, plan_text)
        command = self._agent_command(f"{run_dir}/plan.json", f"{run_dir}/out")
        session = _AgentSession(self, run_dir)
        with open(outdir / "agent.log", "w") as handle:
            log = _LockedLog(handle)
            try:
                session.start(command, log)
                session.relay(on_event, log)
            except KeyboardInterrupt:
                with contextlib.suppress(DeviceError):  # the connection may be gone as well
                    session.stop("INT", log)
                    self._collect(session, outdir)
                raise
        self._collect(session, outdir)
        record = RunRecord.load(outdir)
        record.data.setdefault("exit_code", session.exit_code)
        if session.lost is not None:
            record.data["status"] = "failed"
            record.data["error"] = session.lost
        elif record.status == "missing":
            record.data["error"] = self._launch_error(session, outdir / "agent.log")
        elif record.status not in FINAL_STATUSES:  # the agent died without a last word
            record.data["error"] = self._death(session, record.status)
            record.data["status"] = "failed"
        return record

    def _death(self, session: _AgentSession, phase: str) -> str:
        if session.error:
            return f"the agent on {self.label} stopped while {phase}: {session.error}"
        if session.exit_code is None:  # sshd reported a signal (paramiko keeps no number)
            return (
                f"the agent on {self.label} was killed by a signal while {phase} (out of "
                f"memory? check `dmesg` on the device); what it measured was kept"
            )
        return (
            f"the agent on {self.label} exited with code {session.exit_code} while {phase}; "
            f"see agent.log"
        )

    def _agent_command(self, *args: str) -> str:
        """The deployed agent started with the device's Python (values as quoted words)."""
        env = [f"{k}={os.environ[k]}" for k in FORWARDED_ENV if k in os.environ]
        root = self._ensure_agent()
        words = ["env", "TF_CPP_MIN_LOG_LEVEL=2", *env, "sh", "-c", LAUNCH, "sh", root]
        return shell_join([*words, self.python, "-m", "edgebench.agent", *args])

    def _put_plan(self, run_dir: str, text: str) -> None:
        """The run's directory and plan.json on the device (the first write of every run)."""
        assert self.sftp is not None
        try:
            self.sftp.mkdir(run_dir)
            with self.sftp.open(f"{run_dir}/plan.json", "w") as handle:
                handle.write(text)
        except SSH_ERRORS as error:
            with contextlib.suppress(DeviceError):
                self._exec(["rm", "-rf", "--", run_dir])
            raise self.store.write_failed(
                f"writing {run_dir}/plan.json", error, self.workdir
            ) from None

    def _launch_error(self, session: _AgentSession, log_path: Path) -> str:
        """Why an agent left no record: its own last word (an `error` event) if it said one,
        else the last line it printed."""
        lines = [line for line in log_path.read_text().splitlines() if line.strip()]
        last = session.error or (lines[-1] if lines else "no output")
        if session.exit_code == 127:
            return str(self._python_failed(127, last))
        return (
            f"the agent on {self.label} exited with code {session.exit_code} before writing a "
            f"record: {last}"
        )

    def _collect(self, session: _AgentSession, outdir: Path) -> None:
        """Fetch whatever the run left (also after Ctrl-C or a drop), then clean up."""
        if session.lost is not None and not self._reconnect(session):
            return
        assert self.sftp is not None
        started = time.perf_counter()
        try:
            count = fetch_tree(self.sftp, f"{session.run_dir}/out", outdir)
            fetch_s = time.perf_counter() - started
            if not self.keep:
                self._exec(["rm", "-rf", "--", session.run_dir])
        except (DeviceError, *SSH_ERRORS) as error:
            problem = f"fetching the results from {self.label} failed ({error})"
            session.lost = f"{session.lost}; {problem}" if session.lost else problem
            return
        info = {
            "target": self.label,
            "remote_dir": session.run_dir,
            "kept": self.keep,
            "deploy": self.deploy_stats,
            "fetched_files": count,
            "fetch_seconds": round(fetch_s, 4),
            "connection_lost": session.lost,
        }
        (outdir / "ssh.json").write_text(json.dumps(info, indent=2) + "\n")

    def _reconnect(self, session: _AgentSession) -> bool:
        """After a drop: reconnect once, stop the orphaned agent, so its files can be fetched."""
        self.close()
        try:
            self.open()
            if session.pid is not None:
                session.stop("TERM", None)
        except (DeviceError, *SSH_ERRORS) as error:
            session.lost = (
                f"{session.lost}; reconnecting failed too ({error}), results stay on the device"
            )
            return False
        session.lost = f"{session.lost}; partial results fetched after reconnecting"
        return True

    # -- clock mapping ---------------------------------------------------------------------

    def measure_clock(self) -> ClockAnchor:
        """One device-to-host clock anchor, by round trips over the open SSH connection.

        The runner calls this before and after each run (runner/clock_step.py); the
        estimator is `edgebench.metrics.clock_mapping`'s, this only supplies the channel: a
        session running the agent's `--clock` echo server (write one line, read back the
        device time in ns, after its `edgebench-clock/1 ...` hello; earlier lines are skipped).
        """
        command = self._agent_command("--clock")
        try:
            with self._transport().open_session() as channel:
                channel.settimeout(30)
                channel.exec_command(command)
                stdin, stdout = channel.makefile_stdin("wb"), channel.makefile("rb")
                return ClockChannel(stdin, stdout).measure()
        except SSH_ERRORS as error:
            raise ClockError(
                f"{self.label}: clock round trips failed ({error or type(error).__name__})"
            ) from None


def sha256_file_list(files: list[tuple[Path, str]]) -> str:
    """One digest for a set of files: names and contents (a rename is a new version too)."""
    digest = hashlib.sha256()
    for path, file_digest in files:
        digest.update(f"{path.name}\0{file_digest}\n".encode())
    return digest.hexdigest()


class _AgentSession:
    """One running agent on the device: its channel, its PID there, how it ended."""

    def __init__(self, device: SshDevice, run_dir: str) -> None:
        self.device = device
        self.run_dir = run_dir
        self.channel: paramiko.Channel | None = None
        self.pid: int | None = None
        self.exit_code: int | None = None
        self.lost: str | None = None
        self.error: str | None = None  # the agent's last `error` event
        self._stderr_thread: threading.Thread | None = None

    def start(self, command: str, log: _LockedLog) -> None:
        try:
            self.channel = self.device._transport().open_session()
            self.channel.exec_command(command)
        except SSH_ERRORS as error:
            raise DeviceError(
                f"{self.device.label}: starting the agent failed ({error or type(error).__name__}"
                f"); check the network and the device"
            ) from None
        self.stdout = self.channel.makefile("r")
        stderr = self.channel.makefile_stderr("r")
        self._stderr_thread = threading.Thread(
            target=lambda: [log.write(line) for line in stderr], name="ssh-stderr", daemon=True
        )
        self._stderr_thread.start()
        for line in self.stdout:  # shell rc noise may come first
            if line.startswith(PID_MARK):
                self.pid = int(line[len(PID_MARK) :])
                break
            log.write(line)

    def relay(self, on_event: EventHandler, log: _LockedLog) -> None:
        def handle(event: dict[str, Any]) -> None:
            if event.get("event") == "error":
                self.error = str(event.get("message"))
            on_event(event)

        with contextlib.suppress(OSError):  # the connection died mid-line: noticed below
            relay_events(self.stdout, handle, log)
        self._finish()

    def _finish(self) -> None:
        assert self.channel is not None
        status = self.channel.recv_exit_status()  # -1 when the connection died instead
        self.exit_code = None if status == -1 else status
        if self._stderr_thread is not None:
            self._stderr_thread.join(2)
        transport = self.channel.get_transport()
        if self.exit_code is None and not transport.is_active():
            self.lost = (
                f"connection to {self.device.label} lost mid-run (the agent may still be "
                f"running there); check the network and the device"
            )

    def stop(self, signal_name: str, log: _LockedLog | None) -> None:
        """Signal the remote agent, give it STOP_GRACE_SECONDS to write its record, then kill."""
        if self.pid is None:
            return
        self.device._exec(
            [
                "sh",
                "-c",
                STOP,
                "sh",
                str(self.pid),
                signal_name,
                self.run_dir,
                str(STOP_GRACE_SECONDS * 10),
            ],
            timeout=STOP_GRACE_SECONDS + 30,
        )
        if log is not None and self.channel is not None:
            # Drain what the agent said while stopping (its "interrupted" event) into the log.
            self.channel.settimeout(5)
            try:
                for line in self.stdout:
                    log.write(line)
            except (OSError, TimeoutError):
                pass
            if self.channel.exit_status_ready():
                self.exit_code = self.channel.exit_status

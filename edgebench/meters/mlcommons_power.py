"""MLCommons' own power client (power-dev `ptd_client_server`): find it, call it, file its output.

Only that client and its server, unmodified (the submission checker compares their source
checksums), driving a licensed PTDaemon give MLPerf-Power-valid results; edgebench's `ptd`
driver is a lab instrument. So for a submission edgebench does not measure: it runs
`power_client` with the workload command and lays the session directory the client wrote
(research/power_and_peers.md §A1 "Files and directories"; power-dev README) into MLPerf's
result tree byte for byte, because client.json/server.json hold checksums of those files.

Client session layout (power-dev README): `<outdir>/<YYYY-MM-DD_HH-MM-SS>_<label>/` with
`power/{client.json,client.log,ptd_logs.txt,server.json,server.log}`,
`ranging/{mlperf_log_detail.txt,mlperf_log_summary.txt,spl.txt,...}` and `run_1/{same}`.
MLPerf wants those three folders under `<results>/<system>/<benchmark>/<scenario>/performance/`.

Not done here (no client or licensed PTDaemon to test against): running the client end to end
from the runner, and NTP setup; `client_command` builds the exact command line for that.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from .base import MeterError

CLIENT_SCRIPT = "power_client"
CLIENT_MODULE = "ptd_client_server.client"
DEFAULT_SERVER_PORT = 4950
#: Files MLPerf's submission checker requires per folder (INF REQUIRED_POWER_FILES /
#: REQUIRED_PERF_POWER_FILES).
REQUIRED = {
    "power": ("client.json", "client.log", "ptd_logs.txt", "server.json", "server.log"),
    "ranging": ("mlperf_log_detail.txt", "mlperf_log_summary.txt", "spl.txt"),
    "run_1": ("mlperf_log_detail.txt", "mlperf_log_summary.txt", "spl.txt"),
}


@dataclass(frozen=True)
class ClientInfo:
    """Where MLCommons' power client is, if anywhere."""

    command: tuple[str, ...] | None

    @property
    def found(self) -> bool:
        return self.command is not None

    def describe(self) -> str:
        if self.command is None:
            return (
                "MLCommons power client not installed (pip install "
                "git+https://github.com/mlcommons/power-dev): no MLPerf Power submission path"
            )
        return f"MLCommons power client found: {' '.join(self.command)}"


def find_client() -> ClientInfo:
    """The `power_client` console script, else the importable module, else nothing."""
    script = shutil.which(CLIENT_SCRIPT)
    if script:
        return ClientInfo((script,))
    try:
        if importlib.util.find_spec(CLIENT_MODULE) is not None:
            return ClientInfo((sys.executable, "-m", CLIENT_MODULE))
    except ModuleNotFoundError:
        pass
    return ClientInfo(None)


def client_command(
    client: ClientInfo,
    *,
    server: str,
    workload: str,
    loadgen_logs: Path,
    output: Path,
    ntp: str,
    label: str = "edgebench",
    port: int = DEFAULT_SERVER_PORT,
) -> list[str]:
    """The client's command line (flags as in power-dev's README)."""
    if client.command is None:
        raise MeterError(f"{client.describe()}; install it to make MLPerf Power submissions")
    return [
        *client.command,
        "--addr", server,
        "--port", str(port),
        "--run-workload", workload,
        "--loadgen-logs", str(loadgen_logs),
        "--output", str(output),
        "--ntp", ntp,
        "--label", label,
    ]  # fmt: skip


def latest_session(output: Path, label: str = "edgebench") -> Path:
    """The newest `<timestamp>_<label>` session folder the client wrote into `output`."""
    sessions = sorted(p for p in Path(output).glob(f"*_{label}") if p.is_dir())
    if not sessions:
        raise MeterError(
            f"no MLCommons power client session '*_{label}' in {output}; "
            "check the client's log (did the run finish?)"
        )
    return sessions[-1]


def lay_out(session: Path, performance_dir: Path) -> list[Path]:
    """Copy a client session into MLPerf's `.../<scenario>/performance/` folder, unchanged.

    Every required file is checked first, so a half-finished session never produces a tree
    that looks complete. Returns the files written."""
    session = Path(session)
    missing = [
        f"{folder}/{name}"
        for folder, names in REQUIRED.items()
        for name in names
        if not (session / folder / name).is_file()
    ]
    if missing:
        raise MeterError(
            f"MLCommons power session {session} lacks {', '.join(missing)}; "
            "rerun the power client (both ranging and testing must finish)"
        )
    written = []
    for folder in REQUIRED:
        target = Path(performance_dir) / folder
        target.mkdir(parents=True, exist_ok=True)
        for source in sorted((session / folder).iterdir()):
            if source.is_file():
                written.append(Path(shutil.copy2(source, target / source.name)))
    return written

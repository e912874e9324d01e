"""The run driven by the official MLPerf LoadGen, so its logs are genuine MLPerf logs.

The SUT is LoadGen's FastSUT (ids and indices as plain lists, no QuerySample objects) and the
callback does only what a query needs: copy the sample in, invoke, point one reused response
at the output tensor, complete. That keeps the harness cost near LoadGen's own floor
(research: ~1.0 us/query for FastSUT). LoadGen blocks in C++ with the GIL released, so it runs
in a worker thread and the main thread stays free to take Ctrl-C.
"""

from __future__ import annotations

import errno
import os
import threading
import time
from typing import Dict, Optional

from .recorder import QueryRecorder
from .runtime import Engine

LOG_FILES = ("mlperf_log_summary.txt", "mlperf_log_detail.txt", "mlperf_log_accuracy.json")

_SCENARIO_ATTR = {
    "SingleStream": "SingleStream",
    "MultiStream": "MultiStream",
    "Server": "Server",
    "Offline": "Offline",
}


def loadgen_version() -> Optional[str]:
    """The installed LoadGen's version, or None when it cannot be imported here."""
    try:
        import mlperf_loadgen  # noqa: F401
    except ImportError:
        return None
    try:
        from importlib import metadata

        return metadata.version("mlcommons-loadgen")
    except Exception:
        return "unknown"


class LoadGenError(RuntimeError):
    """LoadGen refused the settings or stopped with errors."""


def run_loadgen_loop(
    user_conf: str,
    model_name: str,
    scenario: str,
    mode: str,
    engine: Engine,
    recorder: QueryRecorder,
    outdir: str,
    total_count: int,
    performance_count: int,
    audit_config: str = "audit.config",
    trace: bool = False,
) -> Dict[str, object]:
    """Run LoadGen once in `outdir` (a clean cwd) and return its detail-log keys."""
    import mlperf_loadgen as lg

    settings = lg.TestSettings()
    settings.scenario = getattr(lg.TestScenario, _SCENARIO_ATTR[scenario])
    settings.mode = lg.TestMode.AccuracyOnly if mode == "accuracy" else lg.TestMode.PerformanceOnly
    if settings.FromConfig(user_conf, model_name, scenario) != 0:
        raise LoadGenError(f"LoadGen rejected {user_conf}; see mlperf_log_detail.txt")

    output = lg.LogOutputSettings()
    output.outdir = outdir
    output.copy_summary_to_stdout = False
    log_settings = lg.LogSettings()
    log_settings.log_output = output
    log_settings.enable_trace = trace

    infer = engine.infer
    record = recorder.record
    now = time.monotonic_ns
    complete = lg.QuerySamplesComplete
    response = lg.QuerySampleResponse(0, engine.output_address, engine.output_nbytes)
    responses = [response]

    def issue(ids, indices) -> None:
        if len(ids) == 1:  # SingleStream and Server: one sample per call, no loop set-up
            index = indices[0]
            started = now()
            infer(index)
            response.id = ids[0]
            finished = now()
            complete(responses)
            record(index, started, finished)
            return
        for query_id, index in zip(ids, indices):
            started = now()
            infer(index)
            response.id = query_id
            finished = now()
            complete(responses)
            record(index, started, finished)

    def flush() -> None:
        pass

    def load(indices) -> None:
        pass

    sut = lg.ConstructFastSUT(issue, flush)
    qsl = lg.ConstructQSL(total_count, performance_count, load, load)
    failure = []

    def start() -> None:
        try:
            lg.StartTestWithLogSettings(sut, qsl, settings, log_settings, audit_config)
        except BaseException as error:  # surfaced in the main thread below
            failure.append(error)

    previous = os.getcwd()
    os.chdir(outdir)
    try:
        worker = threading.Thread(target=start, name="loadgen", daemon=True)
        worker.start()
        while worker.is_alive():
            worker.join(0.2)
    finally:
        os.chdir(previous)
    lg.DestroyQSL(qsl)
    lg.DestroyFastSUT(sut)
    if failure:
        raise LoadGenError(f"LoadGen stopped: {failure[0]}")
    check_logs(outdir)
    return read_detail_log(os.path.join(outdir, "mlperf_log_detail.txt"))


def check_logs(outdir: str) -> None:
    """LoadGen ignores failed writes: a log that is empty or stops mid-line was cut short (a
    full disk, in practice), so the run fails instead of passing on partial logs."""
    for name in LOG_FILES:
        path = os.path.join(outdir, name)
        try:
            with open(path, "rb") as handle:
                handle.seek(-1, os.SEEK_END)  # an empty file raises here too
                complete = handle.read() == b"\n"
        except OSError:
            complete = False
        if not complete:
            raise OSError(errno.ENOSPC, "LoadGen's log is cut short", path)


# Bulky provenance entries that stay in the log itself rather than in record.json.
_BULKY_KEYS = ("loadgen_file_sha1", "loaded_qsl_set", "loadgen_git_log_message")


def read_detail_log(path: str) -> Dict[str, object]:
    """Detail-log entries by key (first value wins, as MLPerf's checker reads them)."""
    import json

    values: Dict[str, object] = {}
    errors = []
    with open(path) as handle:
        for line in handle:
            marker = line.find(":::MLLOG")
            if marker < 0:
                continue
            entry = json.loads(line[marker + len(":::MLLOG") :])
            if entry["key"] not in _BULKY_KEYS and not entry["key"].startswith("logger_"):
                values.setdefault(entry["key"], entry.get("value"))
            if entry.get("metadata", {}).get("is_error"):
                errors.append(f"{entry['key']}: {entry.get('value')}")
    values["loadgen_errors"] = errors
    return values

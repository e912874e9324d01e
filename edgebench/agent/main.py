"""One run on the device: read the plan, calibrate, write the run's user.conf, run the loop.

Every device (the host itself, an SSH board) runs this same entry point in a fresh process:
LoadGen's FromConfig may be called once per process, and a fresh process also keeps one
run's interpreter state out of the next. Everything goes into the output directory as it
happens; record.json is rewritten at each phase so an interrupted run still says how far it
got.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import sys
import time
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional

import numpy as np

from . import AGENT_VERSION
from .audit import AUDIT_FILE, apply_audit, check_audit, render_audit_config
from .clock import clock_from_env
from .loadgen_loop import loadgen_version, run_loadgen_loop
from .monitor import Monitor
from .progress import ProgressReporter, emit
from .recorder import QUERY_FILES, QueryRecorder, SpaceReserve, out_of_space
from .runtime import Engine
from .settings import effective_settings, render_user_conf
from .test_faults import apply_fault

RECORD_SCHEMA = "edgebench.runrecord/1"
NATIVE_LOOP = "none (edgebench native loop)"
CALIBRATION_SECONDS = 0.3
# Hints are biased so LoadGen generates enough queries (latency hint a little below the
# measured value; LoadGen itself generates 2x the expected count) and Offline's single query
# outlasts min_duration (QPS hint above it). LoadGen holds every generated query in memory, so
# a latency hint far below the truth costs gigabytes on microsecond models.
LATENCY_HINT_FACTOR = 0.8
OFFLINE_QPS_FACTOR = 1.25
SERVER_LOAD = 0.3
# LoadGen's Server scheduler and the Python callback cost on the order of 10 us per query on a
# desktop core; without it in the hint, tiny models are offered more load than they can serve.
SERVER_QUERY_OVERHEAD_NS = 30000


class PlanError(ValueError):
    """The plan handed to the agent is incomplete or inconsistent."""


def load_samples(path: Optional[str], engine: Engine, seed: int = 0) -> List[np.ndarray]:
    """Arrays `x` (one input) or `x0`, `x1`, ... (several); random data when none is given."""
    if path:
        with np.load(path) as data:
            if "x" in data:
                return [data["x"]]
            keys = sorted(
                (k for k in data.files if k[:1] == "x" and k[1:].isdigit()),
                key=lambda k: int(k[1:]),
            )
            if not keys:
                raise PlanError(f"{path}: no array 'x' (or x0, x1, ...) with the input samples")
            return [data[k] for k in keys]
    rng = np.random.default_rng(seed)
    arrays = []
    for spec in engine.describe()["inputs"]:
        shape = [64] + list(spec["shape"][1:])
        dtype = np.dtype(spec["dtype"])
        if dtype.kind in "iu":
            info = np.iinfo(dtype)
            arrays.append(rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True))
        else:
            arrays.append(rng.standard_normal(shape).astype(dtype))
    return arrays


def calibrate(engine: Engine, seconds: float = CALIBRATION_SECONDS) -> int:
    """Median single-inference latency (ns) over a short warm loop."""
    timings = []
    deadline = time.monotonic() + seconds
    index = 0
    while len(timings) < 20 or time.monotonic() < deadline:
        started = time.monotonic_ns()
        engine.infer(index % engine.sample_count)
        timings.append(time.monotonic_ns() - started)
        index += 1
    return int(np.median(timings))


def hinted_settings(values: Dict[str, object], scenario: str, latency_ns: int) -> Dict[str, object]:
    """Add LoadGen's expected-latency / QPS hints the user did not set, from calibration."""
    merged = dict(values)
    latency_ms = max(latency_ns, 1000) / 1e6
    if scenario == "SingleStream":
        merged.setdefault("target_latency", round(latency_ms * LATENCY_HINT_FACTOR, 6))
    elif scenario == "MultiStream":
        per_query = int(merged.get("samples_per_query", 8))
        merged.setdefault("target_latency", round(latency_ms * per_query * LATENCY_HINT_FACTOR, 6))
    elif scenario == "Server":
        per_query_ms = latency_ms + SERVER_QUERY_OVERHEAD_NS / 1e6
        merged.setdefault("target_qps", round(SERVER_LOAD * 1e3 / per_query_ms, 3))
    else:
        merged.setdefault("target_qps", round(OFFLINE_QPS_FACTOR * 1e3 / latency_ms, 3))
    return merged


class RunRecordWriter:
    """record.json, rewritten whole (via a temp file) at every phase change."""

    def __init__(self, outdir: str, plan: Dict[str, object]) -> None:
        self.path = os.path.join(outdir, "record.json")
        self.reserve = SpaceReserve(self.path + ".reserve")
        self.data: Dict[str, object] = {
            "schema": RECORD_SCHEMA,
            "agent_version": AGENT_VERSION,
            "status": "starting",
            "plan": plan,
            "python": platform.python_version(),
            "clock": "CLOCK_MONOTONIC",
            "queries": {"files": list(QUERY_FILES), "dtype": "<i8", "directory": "queries"},
        }
        self.write()

    def update(self, **fields: object) -> None:
        self.data.update(fields)
        self.write()

    def write(self) -> None:
        try:
            self._write()
        except OSError:
            if not self.reserve.release():  # a full disk: the reserve makes room once
                raise
            self._write()

    def _write(self) -> None:
        temporary = self.path + ".tmp"
        with open(temporary, "w") as handle:
            json.dump(self.data, handle, indent=2, default=str)
        os.replace(temporary, self.path)


def choose_loop(requested: str) -> str:
    available = loadgen_version() is not None
    if requested == "loadgen" and not available:
        raise PlanError(
            "loop 'loadgen' requested but mlperf_loadgen is not importable here; "
            "install it with: pip install mlcommons-loadgen (or use --loop native)"
        )
    if requested == "native" or not available:
        return "native"
    return "loadgen"


class Prepared:
    """Everything measured or decided before the timed loop starts."""

    def __init__(self, plan: Dict[str, object], outdir: str, writer: RunRecordWriter) -> None:
        self.scenario, self.mode = str(plan["scenario"]), str(plan["mode"])
        self.name = str(plan.get("benchmark") or "model")
        affinity = plan.get("affinity")
        if affinity:
            os.sched_setaffinity(0, [int(c) for c in affinity])  # type: ignore[union-attr]
        self.engine = Engine(
            str(plan["model"]),
            runtime=str(plan.get("runtime", "auto")),
            delegate=str(plan.get("delegate", "xnnpack")),
            threads=int(plan.get("threads", 1)),  # type: ignore[arg-type]
        )
        self.engine.set_samples(load_samples(plan.get("samples"), self.engine))  # type: ignore[arg-type]
        fault = apply_fault(self.engine, self.mode)
        if fault:
            writer.update(test_sut_fault=fault)
        self.loop = choose_loop(str(plan.get("loop", "auto")))
        writer.update(
            status="calibrating",
            engine=self.engine.describe(),
            loop=self.loop,
            loadgen=loadgen_version() if self.loop == "loadgen" else NATIVE_LOOP,
        )
        emit("phase", phase="calibrating")
        self.latency_ns = calibrate(self.engine)
        values = dict(plan.get("settings") or {})  # type: ignore[call-overload]
        if self.mode == "performance":
            values = hinted_settings(values, self.scenario, self.latency_ns)
        conf_text = render_user_conf(self.name, self.scenario, values)
        self.conf_path = os.path.join(outdir, "user.conf")
        with open(self.conf_path, "w") as handle:
            handle.write(conf_text)
        self.total = self.engine.sample_count
        wanted = int(plan.get("performance_sample_count") or self.total)  # type: ignore[arg-type]
        self.settings = effective_settings(
            conf_text, self.name, self.scenario, self.mode, self.total, min(wanted, self.total)
        )
        audit = check_audit(plan.get("audit"))
        self.settings = apply_audit(self.settings, audit)
        if audit:  # LoadGen reads it from its cwd (outdir), over user.conf, as in MLPerf
            with open(os.path.join(outdir, AUDIT_FILE), "w") as handle:
                handle.write(render_audit_config(audit))


#: TEST-ONLY: a virtual bench's activity file (edgebench/lab/activity.py format) to which the
#: timed run appends "active" before and "idle" after, so a meter emulator knows when to draw
#: active power. Never set for a real measurement.
ACTIVITY_ENV = "EDGEBENCH_TEST_ACTIVITY_FILE"


@contextmanager
def _activity_marked() -> Iterator[None]:
    """Mark the timed run busy in the test activity file, in the host's true CLOCK_MONOTONIC
    (not the injected test clock: the emulators' physics runs on the host's time)."""
    path = os.environ.get(ACTIVITY_ENV)

    def mark(state: str) -> None:
        if path:
            with open(path, "a") as handle:
                handle.write(json.dumps({"t_ns": time.monotonic_ns(), "state": state}) + "\n")

    mark("active")
    try:
        yield
    finally:
        mark("idle")


def measure(
    prepared: Prepared, plan: Dict[str, object], outdir: str, recorder: QueryRecorder
) -> Dict[str, object]:
    settings = prepared.settings
    expected_s = settings.min_duration_ms / 1e3 if prepared.mode == "performance" else 0.0
    expected_q = prepared.total if prepared.mode == "accuracy" else 0
    emit("phase", phase="running", expected_s=expected_s, expected_queries=expected_q)
    progress = ProgressReporter("running", lambda: recorder.count, expected_s, expected_q)
    with Monitor(outdir, clock=recorder.clock), progress, _activity_marked():
        if prepared.loop == "loadgen":
            return run_loadgen_loop(
                prepared.conf_path,
                prepared.name,
                prepared.scenario,
                prepared.mode,
                prepared.engine,
                recorder,
                outdir,
                prepared.total,
                settings.performance_sample_count,
                str(plan.get("audit_config") or "audit.config"),
                bool(plan.get("trace", False)),
            )
        from .native_loop import run_native_loop

        return run_native_loop(settings, prepared.engine, recorder, outdir, prepared.total)


def run(plan: Dict[str, object], outdir: str) -> Dict[str, object]:
    outdir = os.path.abspath(outdir)  # LoadGen runs with the output directory as its cwd
    os.makedirs(outdir, exist_ok=True)
    writer = RunRecordWriter(outdir, plan)
    recorder: Optional[QueryRecorder] = None
    clock = clock_from_env()
    if clock.injection():
        writer.update(clock_test_injection=clock.injection())
    try:
        prepared = Prepared(plan, outdir, writer)
        recorder = QueryRecorder(os.path.join(outdir, "queries"), clock=clock)
        writer.update(
            status="running",
            calibration_latency_ns=prepared.latency_ns,
            settings=prepared.settings.to_dict(),
            user_conf="user.conf",
            start_ns=clock.now_ns(),
        )
        results = measure(prepared, plan, outdir, recorder)
        count = recorder.close()
        if recorder.error is not None:  # the writer thread's, surfaced once the loop is over
            raise recorder.error
    except KeyboardInterrupt:
        _stop(writer, recorder, "interrupted", "interrupted")
        raise
    except BaseException as error:
        _stop(writer, recorder, "failed", out_of_space(error, outdir) or str(error))
        raise
    writer.update(status="complete", end_ns=clock.now_ns(), query_count=count, results=results)
    writer.reserve.release()
    emit("done", status="complete", queries=count)
    return writer.data


def _stop(
    writer: RunRecordWriter, recorder: Optional[QueryRecorder], status: str, error: str
) -> None:
    """Keep what was measured: flush the per-query files, then say why the run ended."""
    count = recorder.close() if recorder is not None else 0
    writer.update(status=status, error=error, end_ns=clock_from_env().now_ns(), query_count=count)
    writer.reserve.release()


def main(argv: Optional[List[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["--describe"]:
        from .sysinfo import describe

        sys.stdout.write(json.dumps(describe()) + "\n")
        return 0
    if args == ["--clock"]:
        from .clock import serve

        try:
            return serve(clock_from_env())
        except ValueError as error:
            sys.stderr.write("%s\n" % error)
            return 2
    if len(args) != 2:
        sys.stderr.write(
            "usage: python -m edgebench.agent PLAN.json OUTDIR | --describe | --clock\n"
        )
        return 2
    with open(args[0]) as handle:
        plan = json.load(handle)
    # The host stops a run with SIGTERM (SSH) or SIGINT (Ctrl-C); both end as KeyboardInterrupt
    # so the record is marked interrupted before the process exits.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        run(plan, args[1])
    except KeyboardInterrupt:
        emit("error", message="interrupted")
        # LoadGen's thread may still be inside C++; leave without waiting for it.
        sys.stderr.flush()
        os._exit(130)
    except Exception as error:
        message = out_of_space(error, os.path.abspath(args[1]))
        message = message or f"{type(error).__name__}: {error}"
        emit("error", message=message, kind=type(error).__name__)
        return 1
    return 0

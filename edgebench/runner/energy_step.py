"""energy.json and power.png: a meter recording around device.run, then energy from its trace.

The order follows MLPerf Power: a meter that needs it (PTDaemon) first records a ranging run of
the same workload into `ranging/`; then the testing recording starts, the device idles for the
idle window (its power is reported beside the result), the workload runs, the recording
stops. Energy is then computed from what was saved (`power/`, the run's per-query times,
clock.json, windows.jsonl), the same way `edgebench energy <run dir>` recomputes it later.

A meter that fails mid-run never loses the run: its trace is kept (status "stopped"), the
energy result says why it is invalid, and the performance result stands on its own.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ..devices.base import RunRecord
from ..meters.base import Meter, MeterError
from ..meters.profiles import DEFAULTS
from ..metrics.clock_mapping import ClockMapping
from ..metrics.energy import EnergyError, EnergyOptions, compute_energy
from ..metrics.energy_integrate import EnergyUsageError, Window
from ..metrics.energy_windows import (
    MeterClock,
    timestamp_marks,
    window_from_host,
    window_from_queries,
    windows_from_marks,
)
from ..metrics.power_trace import META, PowerTrace, TraceError
from .clock_step import CLOCK_FILE
from .energy_plot import PLOT_FILE, PlotUnavailable, plot_trace
from .results import ResultWriter

ENERGY_FILE = "energy.json"
POWER_DIR = "power"
RANGING_DIR = "ranging"
WINDOWS_FILE = "windows.jsonl"  # serial devices: one line per `infer N W` window
WINDOW_POLICIES = ("auto", "queries", "marks")
#: MLPerf Tiny: every energy window must last >= 10 s (enforced for submission-grade runs).
TINY_MIN_WINDOW_S = 10.0
R = TypeVar("R")
EventHandler = Callable[[dict], None]
#: Trimmed from each end of an idle window placed by host time on a meter-clock trace.
IDLE_GUARD_S = 0.1

#: Recording starts this many sample periods (at most MAX_MARGIN_S) before the idle window and
#: ends as long after the run, so the trace covers both windows whole (EEMBC's head/tail).
MARGIN_PERIODS = 2.0
MAX_MARGIN_S = 5.0


@dataclass
class EnergyInputs:
    """What the computation needs beyond the saved files; kept in energy.json to recompute."""

    idle_host_ns: list[int] | None = None
    meter_start_host_ns: int | None = None
    subtract_idle: bool = False
    clock_uncertainty_s: float | None = None
    submission_grade: bool = False
    meter_profile: str = ""
    notes: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EnergyInputs:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


class EnergyStep:
    """The meter's part of one run; the runner calls ranging(), testing() and finish()."""

    def __init__(
        self,
        meter: Meter,
        directory: Path,
        submission_grade: bool,
        on_event: EventHandler = lambda event: None,
    ) -> None:
        self.meter = meter
        self.on_event = on_event
        self.directory = directory
        profile = {**DEFAULTS, **meter.profile}
        self.idle_s = float(profile["submission_idle_s" if submission_grade else "idle_s"])
        self.inputs = EnergyInputs(
            subtract_idle=bool(profile["subtract_idle"]),
            clock_uncertainty_s=profile["clock_uncertainty_s"],
            submission_grade=submission_grade,
            meter_profile=meter.name,
        )
        self.ranging_run = bool(profile["ranging"])
        self.failure: str | None = None

    def ranging(self, run_once: Callable[[Path], Any]) -> None:
        """The workload once more before the real run, for meters that pick ranges from it."""
        if not self.meter.needs_ranging:
            return
        if not self.ranging_run:
            self.inputs.notes.append(
                "no ranging run (meter profile `ranging: false`): fixed ranges, as MLPerf "
                "Power's -A/-V, which it flags as not valid for a submission"
            )
            return
        out = self.directory / RANGING_DIR
        out.mkdir(parents=True, exist_ok=True)
        self.on_event({"event": "phase", "phase": f"{self.meter.name}: ranging run"})
        self.meter.start(out / POWER_DIR, "ranging")
        try:
            run_once(out)
        finally:
            self.meter.stop()

    @contextmanager
    def testing(self) -> Iterator[None]:
        """Record around the block, with the idle window first; a meter failure is kept."""
        rate = self.meter.describe().sample_rate_hz
        margin = min(MARGIN_PERIODS / rate, MAX_MARGIN_S) if rate > 0 else MAX_MARGIN_S
        self.inputs.meter_start_host_ns = time.monotonic_ns()
        self.meter.start(self.directory / POWER_DIR, "testing")
        try:
            time.sleep(margin)  # the first samples arrive one period after the start
            self.on_event({"event": "phase", "phase": f"{self.meter.name}: idle window"})
            began = time.monotonic_ns()
            time.sleep(self.idle_s)
            self.inputs.idle_host_ns = [began, time.monotonic_ns()]
            write_energy(
                self.directory,
                {
                    "status": "pending: computed once the run ends (`edgebench energy RUN` "
                    "computes it from the saved trace if the run did not get that far)",
                    "inputs": self.inputs.__dict__,
                },
            )
            yield
            time.sleep(margin)  # a tail, so the samples cover the run's last moment
        finally:
            try:
                self.meter.stop()
            except MeterError as error:
                self.failure = str(error)

    def finish(self) -> dict[str, Any]:
        """Compute, write energy.json and power.png; the summary result.json carries."""
        return compute_run_energy(self.directory, self.inputs, failure=self.failure)


def run_metered(
    meter: Meter | None,
    directory: Path,
    submission_grade: bool,
    run_once: Callable[[Path], R],
    on_event: EventHandler = lambda event: None,
) -> tuple[R, EnergyStep | None]:
    """run_once(directory) with the meter recording around it (and a ranging run first where
    the meter needs one); without a meter, just run_once. Call step.finish() once the run's
    own files (clock.json) are written."""
    if meter is None:
        return run_once(directory), None
    step = EnergyStep(meter, directory, submission_grade, on_event)
    step.ranging(run_once)
    with step.testing():
        record = run_once(directory)
    return record, step


def meter_for_mode(
    meter: Meter | None, mode: str, measured_mode: str, writer: ResultWriter, why: str
) -> Meter | None:
    """The meter when `mode` is the one energy is measured in; else None, and the result
    notes why the meter sat this run out."""
    if meter is None or mode == measured_mode:
        return meter
    notes = list(writer.data.get("notes") or [])
    writer.update(notes=[*notes, f"meter not used in {mode} mode: {why}"])
    return None


def attach(writer: ResultWriter, energy: dict[str, Any]) -> None:
    """Energy into result.json: its summary, and its reasons into the run's validity."""
    reasons = list(writer.data.get("reasons") or [])
    reasons += [f"energy: {r}" for r in energy.get("reasons") or []]
    writer.update(
        energy=summary(energy),
        valid=bool(writer.data.get("valid")) and bool(energy.get("valid")),
        reasons=reasons,
        files=sorted(p.name for p in writer.directory.iterdir() if not p.name.endswith(".tmp")),
    )


def energy_options(inputs: EnergyInputs, method: str, tier: str) -> EnergyOptions:
    """How a run's energy is computed, from what it recorded: the same for the run, for
    `edgebench energy` and for the checker's recomputation."""
    submission_tiny = inputs.submission_grade and tier == "meter-marks"
    return EnergyOptions(
        method=method,
        tier=tier,
        subtract_idle=inputs.subtract_idle,
        min_window_s=TINY_MIN_WINDOW_S if submission_tiny else 0.0,
    )


def compute_run_energy(
    directory: Path,
    inputs: EnergyInputs,
    method: str = "auto",
    window_policy: str = "auto",
    failure: str | None = None,
) -> dict[str, Any]:
    """Energy of a finished run directory; writes energy.json (+ power.png), returns it."""
    result: dict[str, Any]
    try:
        trace = PowerTrace.open(directory / POWER_DIR)
        clock = MeterClock.of(trace, inputs.clock_uncertainty_s)
        windows, tier = _windows(directory, trace, clock, window_policy)
        idle = _idle_window(trace, clock, inputs)
        options = energy_options(inputs, method, tier)
        options.notes += inputs.notes
        result = compute_energy(trace, windows, options, idle)
        if failure:
            result["reasons"].insert(0, failure)
            result["valid"] = False
    except EnergyUsageError:
        raise  # a wrong option: energy.json keeps what it said
    except (EnergyError, TraceError) as error:
        reasons = [failure] if failure else []
        result = {"valid": False, "reasons": [*reasons, str(error)], "energy_per_inference_j": None}
        trace = None
    result["status"] = "computed"
    result["inputs"] = inputs.__dict__
    if trace is not None and trace.sample_count:
        try:
            plot_trace(trace, result, directory / PLOT_FILE)
            result["plot"] = PLOT_FILE
        except PlotUnavailable as missing:
            result.setdefault("notes", []).append(str(missing))
    write_energy(directory, result)
    return result


def _idle_window(trace: PowerTrace, clock: MeterClock, inputs: EnergyInputs) -> Window | None:
    """The idle window in meter time. A meter keeping its own clock (LPM01A) is placed by the
    host time elapsed since it was started, counted from its first sample: good to a few ms,
    ample for an idle power that is reported, never part of the result."""
    if not inputs.idle_host_ns or not trace.sample_count:
        return None
    if clock.name != "meter":
        return window_from_host(*inputs.idle_host_ns, clock, "idle")
    if inputs.meter_start_host_ns is None:
        return None
    first = trace.span[0]
    begin, end = ((t - inputs.meter_start_host_ns) / 1e9 for t in inputs.idle_host_ns)
    # The placement is only as good as the meter's start-up latency (tens of ms on a loaded
    # host): keep clear of both edges, so the workload that follows never leaks in.
    guard = min(IDLE_GUARD_S, (end - begin) / 4)
    return Window(first + begin + guard, first + end - guard, label="idle")


def _windows(
    directory: Path, trace: PowerTrace, clock: MeterClock, policy: str
) -> tuple[list[Window], str]:
    if policy not in WINDOW_POLICIES:
        raise EnergyUsageError(f"window policy {policy!r}: use one of {', '.join(WINDOW_POLICIES)}")
    serial = _read_lines(directory / WINDOWS_FILE)
    if policy == "marks" or (policy == "auto" and serial):
        if not serial:
            raise EnergyUsageError(
                f"{directory} has no {WINDOWS_FILE}: mark windows need a serial energy-mode run"
            )
        counts = [int(w["iterations"]) for w in serial]
        spans = None
        if clock.name != "meter":
            margin = clock.uncertainty_s
            spans = [
                (
                    clock.from_host_ns(float(w["host_sent_mono"]) * 1e9) - margin,
                    clock.from_host_ns(float(w["host_done_mono"]) * 1e9) + margin,
                )
                for w in serial
            ]
        resolution = trace.meta.get("sample_period_s") or 1.0 / _rate(trace)
        return windows_from_marks(timestamp_marks(trace), counts, resolution, spans), "meter-marks"
    if not (directory / "queries").is_dir():
        raise EnergyError(
            f"{directory} has no per-query times (queries/): the run ended before timing began"
        )
    _, issue, complete = RunRecord.load(directory).queries()
    return [window_from_queries(issue, complete, _mapping(directory), clock)], clock.tier


def _mapping(directory: Path) -> ClockMapping:
    path = directory / CLOCK_FILE
    if not path.is_file():
        raise EnergyError(
            f"{directory} has no {CLOCK_FILE}, so the device's times cannot be put on the "
            "meter's timeline; this device needs timestamp marks recorded by the meter"
        )
    return ClockMapping.from_dict(json.loads(path.read_text()))


def _rate(trace: PowerTrace) -> float:
    rate = float((trace.meta.get("meter") or {}).get("sample_rate_hz") or 0.0)
    if rate <= 0:
        raise EnergyError(f"{trace.directory}: neither a sample period nor a sample rate stated")
    return rate


def _read_lines(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_energy(directory: Path, data: dict[str, Any]) -> Path:
    path = directory / ENERGY_FILE
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(data, indent=2, default=str) + "\n")
    temporary.replace(path)
    return path


def load_inputs(directory: Path) -> EnergyInputs:
    """The inputs a run recorded in energy.json (for `edgebench energy`)."""
    path = directory / ENERGY_FILE
    if not (directory / POWER_DIR / META).is_file():
        raise EnergyError(
            f"{directory} has no power trace ({POWER_DIR}/{META}); was it run with --meter?"
        )
    if not path.is_file():
        return EnergyInputs()
    return EnergyInputs.from_dict(json.loads(path.read_text()).get("inputs") or {})


def summary(energy: dict[str, Any]) -> dict[str, Any]:
    """The part of energy.json that result.json repeats."""
    keys = (
        "label",
        "method",
        "tier",
        "energy_per_inference_j",
        "energy_per_inference_uncertainty_j",
        "energy_per_inference_relative_uncertainty",
        "average_power_w",
        "idle_power_w",
        "idle_subtracted",
        "energy_per_inference_net_of_idle_j",
        "valid",
        "reasons",
    )
    return {"file": ENERGY_FILE, **{k: energy[k] for k in keys if k in energy}}

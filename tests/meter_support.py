"""What the meter tests share: the virtual device's activity file, its pin pulses, the truth
it implies, and the stand-ins for absent or mute hardware.

The meter emulators all measure one activity file (edgebench.lab.activity), so every driver
test drives the "device" the same way and checks the trace against the same exact energy.
Test modules import the `activity` fixture as `activity_fixture` (`# noqa: F401`), as with
ssh_fixtures.
"""

from __future__ import annotations

import os
import socket
import time
import tty
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from edgebench.lab.activity import ActivityWriter
from edgebench.lab.power_model import ActivityTimeline, PowerModel
from edgebench.meters.base import Meter, MeterError
from edgebench.metrics.power_trace import PowerTrace

REPO = Path(__file__).resolve().parents[1]
METER_PROFILES = REPO / "device_profiles" / "meters"
#: The small board the current-measuring emulators (LPM01A, PPK2, Otii) power in the tests.
VOLTS, IDLE_A, ACTIVE_A, NOISE_A = 1.8, 0.5e-3, 5e-3, 10e-6


class Activity(ActivityWriter):
    """The virtual device's side of the bench, plus the truth a test compares against."""

    def timeline(self, idle: float, active: float) -> ActivityTimeline:
        """What was written so far, as power `idle`/`active` (W, or A for a charge truth)."""
        timeline = ActivityTimeline(self.path, PowerModel(idle, active))
        timeline.refresh()
        return timeline

    def truth_j(self, first_ns: int, last_ns: int) -> float:
        """Exact energy between two instants of a board drawing IDLE_A/ACTIVE_A at VOLTS."""
        return self.timeline(IDLE_A * VOLTS, ACTIVE_A * VOLTS).energy(first_ns, last_ns)

    def pulse(self) -> int:
        """MLPerf Tiny's th_timestamp: pull the pin low briefly; returns the falling edge."""
        t_ns = time.monotonic_ns()
        self.pin(0, t_ns)
        self.pin(1, t_ns + 100_000)
        return t_ns

    def marked_burst(self, active_s: float, idle_s: float, after_s: float) -> tuple[int, int]:
        """A timed window as MLPerf Tiny's energy mode makes one: settle, pulse, compute for
        `active_s`, idle for `idle_s`, pulse, wait `after_s` for the meter to catch up.
        Returns the two falling edges (ns), the window the truth is taken over."""
        time.sleep(0.3)
        first = self.pulse()
        self.state("active")
        time.sleep(active_s)
        self.state("idle")
        time.sleep(idle_s)
        last = self.pulse()
        time.sleep(after_s)
        return first, last


@pytest.fixture(name="activity")
def activity_fixture(tmp_path: Path) -> Iterator[Activity]:
    with Activity(tmp_path / "activity.jsonl") as writer:
        yield writer


def current_emulator(activity: Activity, **overrides: object) -> dict[str, object]:
    """A current-measuring emulator's `emulator:` mapping for the test board."""
    options = {"activity": str(activity.path), "idle_a": IDLE_A, "active_a": ACTIVE_A}
    return {**options, "noise_a": NOISE_A, **overrides}


def samples(trace: PowerTrace) -> tuple[np.ndarray, np.ndarray]:
    """All of a trace's (times, values), for assertions over the whole recording."""
    parts = list(trace.chunks())
    return np.concatenate([t for t, _ in parts]), np.concatenate([v for _, v in parts])


def record(meter: Meter, directory: Path, seconds: float, phase: str = "testing") -> PowerTrace:
    """Open the meter, record `seconds` of whatever the bench does meanwhile, close it."""
    with meter:
        meter.start(directory, phase)
        time.sleep(seconds)
        return meter.stop()


def record_through_fault(
    meter: Meter,
    directory: Path,
    seconds: float,
    match: str,
    phase: str = "testing",
    fault: Callable[[Meter], object] | None = None,
) -> PowerTrace:
    """Record while a fault strikes (the emulator's own, or `fault(meter)` called half way):
    stop() must raise a MeterError matching `match` that says the run broke mid-way, and the
    trace so far must be kept, closed as stopped."""
    with meter:
        meter.start(directory, phase)
        if fault is not None:
            time.sleep(seconds / 2)
            fault(meter)
            seconds /= 2
        time.sleep(seconds)
        with pytest.raises(MeterError, match=match) as error:
            meter.stop()
    assert "mid-run" in str(error.value) and str(directory) in str(error.value)
    trace = PowerTrace.open(directory)
    assert trace.status.startswith("stopped: ")
    return trace


@contextmanager
def mute_port() -> Iterator[str]:
    """A serial port with nothing behind it that ever answers (a pty nobody reads)."""
    master, slave = os.openpty()
    tty.setraw(slave)
    try:
        yield os.ttyname(slave)
    finally:
        os.close(master)
        os.close(slave)


def free_port() -> int:
    """A loopback TCP port nobody listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]

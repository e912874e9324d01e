"""The LPM01A driver against the LPM01A emulator: a real process behind a real pty."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from edgebench.meters.base import MeterError
from edgebench.meters.lpm01a import Lpm01aMeter
from edgebench.meters.profiles import load_meter_profile
from edgebench.metrics.energy_integrate import Window, integrate

from .meter_support import (
    ACTIVE_A,
    IDLE_A,
    NOISE_A,
    VOLTS,
    Activity,
    activity_fixture,  # noqa: F401  (fixture)
    current_emulator,
    mute_port,
    record,
    record_through_fault,
    samples,
)

RATE = 1000


def virtual_meter(activity: Activity, output: str = "energy", **emulator: object) -> Lpm01aMeter:
    profile = {
        "name": "test-lpm01a",
        "driver": "lpm01a",
        "voltage": VOLTS,
        "freq": "1k",
        "output": output,
        "timeout_s": 1.0,
        "emulator": current_emulator(activity, **emulator),
    }
    return Lpm01aMeter(profile)


def test_describe(activity: Activity) -> None:
    with virtual_meter(activity) as meter:
        info = meter.describe()
    assert info.driver == "lpm01a" and info.model == "ST X-NUCLEO-LPM01A"
    assert info.serial == "EMULPM01A0001"
    assert info.sample_rate_hz == RATE
    assert info.records_marks is True and info.mlperf_power_valid is False
    assert "firmware 1.0.6" in info.notes


def test_energy_between_marks_matches_truth(activity: Activity, tmp_path: Path) -> None:
    with virtual_meter(activity) as meter:
        meter.start(tmp_path / "power")
        first, last = activity.marked_burst(1.2, 0.3, 0.3)
        trace = meter.stop()
    assert trace.status == "complete"
    assert trace.kind == "energy" and trace.clock == "meter"
    marks = trace.marks("timestamp")
    assert [m["edge"] for m in marks] == ["falling", "falling"]
    m0, m1 = marks[0]["t"], marks[1]["t"]
    # The meter places each edge after the samples that ended before it: at most one
    # period early, so the mark interval matches the edge interval within two periods.
    assert abs((m1 - m0) - (last - first) * 1e-9) <= 2.0 / RATE
    times, joules = samples(trace)
    inside = (times > m0 + 1e-9) & (times <= m1 + 1e-9)
    measured = float(joules[inside].sum())
    truth = activity.truth_j(first, last)
    # Bound: each window edge off by up to one period at active power, the 4-digit ascii_dec
    # resolution (5e-4 of each value at worst), and 5 sigma of the per-sample noise.
    noise_j = NOISE_A * VOLTS / RATE
    bound = 2 * ACTIVE_A * VOLTS / RATE + 5e-4 * measured + 5 * noise_j * np.sqrt(inside.sum())
    assert abs(measured - truth) <= bound, (measured, truth, bound)
    assert abs(measured - truth) / truth < 0.005
    assert not trace.events("gap")
    # The metrics' own integration of this trace (summing energy samples) agrees.
    sums, health = integrate(trace, [Window(m0, m1)], "sum")
    assert sums[0].energy_j == pytest.approx(measured, rel=1e-6)
    assert health.gap_count == 0


def test_current_output_records_amps_and_volts(activity: Activity, tmp_path: Path) -> None:
    trace = record(virtual_meter(activity, output="current"), tmp_path / "power", 0.5)
    assert trace.kind == "current_voltage"
    times, values = samples(trace)
    assert values.shape[1] == 2 and np.all(values[:, 1] == pytest.approx(VOLTS))
    assert float(values[:, 0].mean()) == pytest.approx(IDLE_A, rel=0.01)
    assert np.allclose(np.diff(times), 1.0 / RATE)


def test_missing_serial_port_names_it_and_the_fix() -> None:
    meter = Lpm01aMeter({"name": "gone", "port": "/dev/ttyACM-edgebench-missing"})
    with pytest.raises(MeterError) as error:
        meter.open()
    message = str(error.value)
    assert "/dev/ttyACM-edgebench-missing" in message and "dialout" in message
    assert "\n" not in message


def test_silent_device_is_not_an_lpm01a() -> None:
    with mute_port() as port:
        meter = Lpm01aMeter({"name": "mute", "port": port, "timeout_s": 0.5})
        with pytest.raises(MeterError, match="did not answer 'htc'"):
            meter.open()


def test_old_firmware_is_refused(activity: Activity) -> None:
    with pytest.raises(MeterError, match=r"firmware 1\.0\.5.*>= 1\.0\.6"):
        virtual_meter(activity, firmware="1.0.5").open()


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [("voltage", 5.0, "outside 1.8..3.3 V"), ("freq", "3k", "use one of"), ("output", "x", "")],
)
def test_bad_profile_values(key: str, value: object, expected: str) -> None:
    with pytest.raises(MeterError, match=f"{key} .*{expected}"):
        Lpm01aMeter({"name": "bad", "port": "/dev/null", key: value})


def test_meter_stopping_mid_run_keeps_the_trace(activity: Activity, tmp_path: Path) -> None:
    meter = virtual_meter(activity, stop_streaming_after=0.8)
    trace = record_through_fault(meter, tmp_path / "power", 2.5, "stopped streaming")
    assert trace.status.startswith("stopped: LPM01A at ")
    assert "stopped streaming" in trace.status
    assert trace.sample_count >= 500  # what streamed before the fault is kept
    assert trace.events("gap")


def test_garbage_lines_are_events_and_lost_samples(activity: Activity, tmp_path: Path) -> None:
    trace = record(virtual_meter(activity, garbage_every=100), tmp_path / "power", 1.3)
    assert trace.status == "complete"
    garbage = [e for e in trace.events("message") if "unparseable" in e["text"]]
    assert len(garbage) >= 10
    _, joules = samples(trace)
    assert np.all(joules < 2 * IDLE_A * VOLTS / RATE)  # no garbage became a reading
    # A garbled line is a lost sample: the next TimeStamp count says so, and time resyncs.
    gaps = trace.events("gap")
    assert gaps and "missing before the meter's 1.000 s stamp" in gaps[0]["text"]


def test_dropped_samples_are_a_gap_and_time_stays_true(activity: Activity, tmp_path: Path) -> None:
    trace = record(
        virtual_meter(activity, drop_samples_at=0.5, drop_count=100), tmp_path / "power", 1.4
    )
    gaps = trace.events("gap")
    assert len(gaps) == 1 and gaps[0]["text"].startswith("100 samples missing")
    times, _ = samples(trace)
    after = times[times > 1.0]
    assert after[0] == pytest.approx(1.001)  # the first sample after the 1 s stamp
    assert len(times) == round(times[-1] * RATE) - 100


def test_overload_is_reported(activity: Activity, tmp_path: Path) -> None:
    with virtual_meter(activity, active_a=20e-3) as meter:  # dyn range ends at 10 mA
        meter.start(tmp_path / "power")
        time.sleep(0.3)
        activity.state("active")
        time.sleep(0.3)
        activity.state("idle")
        time.sleep(0.3)
        trace = meter.stop()
    overloads = trace.events("overload")
    assert len(overloads) == 1 and "out of range" in overloads[0]["text"]
    assert 0.25 < overloads[0]["t"] < 0.45
    assert trace.status == "complete"


def test_meter_profiles_validate() -> None:
    for name in ("virtual-lpm01a", "lpm01a"):
        profile = load_meter_profile(name)
        assert Lpm01aMeter(profile).driver == "lpm01a"
    assert load_meter_profile("virtual-lpm01a")["emulator"]["active_a"] > 0

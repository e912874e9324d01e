"""The Otii driver against the Otii server emulator: a real process speaking the JSON protocol
on loopback TCP."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgebench.meters.base import MeterError
from edgebench.meters.otii import OtiiMeter
from edgebench.meters.profiles import load_meter_profile
from edgebench.metrics.energy_integrate import Window, integrate

from .meter_support import (
    ACTIVE_A,
    METER_PROFILES,
    NOISE_A,
    VOLTS,
    Activity,
    activity_fixture,  # noqa: F401  (fixture)
    current_emulator,
    free_port,
    record,
    record_through_fault,
    samples,
)

RATE = 4000


def virtual_meter(activity: Activity, profile: dict | None = None, **emulator: object) -> OtiiMeter:
    keys = {"name": "test-otii", "voltage": VOLTS, "timeout_s": 1.0, **(profile or {})}
    return OtiiMeter({**keys, "emulator": current_emulator(activity, **emulator)})


def test_energy_between_gpi_marks_matches_truth(
    activity: Activity, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_OTII_PASSWORD", "s3cret")
    login = {"username": "lab@example.com", "password_env": "TEST_OTII_PASSWORD"}
    with virtual_meter(activity, login, username="lab@example.com", password="s3cret") as meter:
        info = meter.describe()
        assert info.model == "Qoitech Otii Arc" and info.serial == "emulated-arc-0001"
        assert info.sample_rate_hz == RATE and info.records_marks
        meter.start(tmp_path / "power")
        first, last = activity.marked_burst(1.0, 0.2, 0.3)
        trace = meter.stop()
    assert trace.status == "complete" and trace.clock == "meter"
    assert trace.meta["meter"]["recording"]["recording_id"] == 1
    marks = trace.marks("timestamp")
    assert [m["edge"] for m in marks] == ["falling", "rising"] * 2
    m0, m1 = marks[0]["t"], marks[2]["t"]
    assert abs((m1 - m0) - (last - first) * 1e-9) < 1e-6  # GPI edges are timed exactly
    times, values = samples(trace)
    assert np.allclose(np.diff(times), 1 / RATE) and np.all(values[:, 1] == pytest.approx(VOLTS))
    sums, health = integrate(trace, [Window(m0, m1)], "trapezoid")
    expected = activity.truth_j(first, last)
    # Bound: a step inside one sample period is smeared over two by the trapezoid (one period
    # of active power per step, 2 steps), the 5 nA resolution, 5 sigma of the noise.
    n = sums[0].samples
    bound = VOLTS / RATE * (2 * ACTIVE_A + n * 2.5e-9 + 5 * NOISE_A * np.sqrt(n))
    assert abs(sums[0].energy_j - expected) <= bound, (sums[0].energy_j, expected, bound)
    assert health.gap_count == 0


def test_garbage_samples_are_dropped_and_reported(activity: Activity, tmp_path: Path) -> None:
    trace = record(virtual_meter(activity, garbage_every=3), tmp_path / "power", 1.0)
    messages = trace.events("message")
    assert messages and all("non-numeric sample" in m["text"] for m in messages)
    times, values = samples(trace)
    assert np.isfinite(values).all()
    assert len(times) < round(times[-1] * RATE) + 1  # the dropped ones are missing, time kept


def test_server_stops_answering_mid_run(activity: Activity, tmp_path: Path) -> None:
    meter = virtual_meter(activity, stop_answering_after=0.5)
    trace = record_through_fault(meter, tmp_path / "power", 2.0, "stopped answering")
    assert trace.sample_count > 0.2 * RATE


def test_unreachable_server_names_it_and_the_fix() -> None:
    port = free_port()
    meter = OtiiMeter({"name": "gone", "port": port, "timeout_s": 1.0})
    with pytest.raises(MeterError) as error:
        meter.open()
    message = str(error.value)
    assert f"127.0.0.1:{port}" in message and "TCP server" in message and "\n" not in message


def test_no_instrument_connected(activity: Activity) -> None:
    with pytest.raises(MeterError, match=r"has no Arc/Ace \(devices: none\)"):
        virtual_meter(activity, devices=0).open()


def test_wrong_password_and_missing_password(
    activity: Activity, monkeypatch: pytest.MonkeyPatch
) -> None:
    login = {"username": "lab@example.com", "password_env": "TEST_OTII_PASSWORD"}
    monkeypatch.delenv("TEST_OTII_PASSWORD", raising=False)
    with pytest.raises(MeterError, match=r"set the Otii password in \$TEST_OTII_PASSWORD"):
        virtual_meter(activity, login, username="lab@example.com", password="s3cret").open()
    monkeypatch.setenv("TEST_OTII_PASSWORD", "wrong")
    with pytest.raises(MeterError, match="refused otii_login: Login failed"):
        virtual_meter(activity, login, username="lab@example.com", password="s3cret").open()


def test_bundled_profiles_validate() -> None:
    for name in ("otii", "virtual-otii"):
        profile = load_meter_profile(str(METER_PROFILES / f"{name}.yaml"))
        assert profile["driver"] == "otii"

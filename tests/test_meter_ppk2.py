"""The PPK2 driver against the PPK2 emulator: a real process streaming sample words on a pty."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgebench.meters.base import MeterError
from edgebench.meters.ppk2 import PERIOD_S, Calibration, Ppk2Meter, decode, encode
from edgebench.meters.profiles import load_meter_profile
from edgebench.metrics.energy_integrate import Window, integrate

from .meter_support import (
    ACTIVE_A,
    IDLE_A,
    METER_PROFILES,
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


def virtual_meter(activity: Activity, **emulator: object) -> Ppk2Meter:
    emulated = current_emulator(activity, **emulator)
    return Ppk2Meter(
        {"name": "test-ppk2", "voltage": VOLTS, "timeout_s": 1.0, "emulator": emulated}
    )


def test_sample_words_round_trip() -> None:
    adc = np.array([0, 1, 0x3FFF, 1234])
    ranges = np.array([0, 4, 2, 3])
    counter = np.array([62, 63, 64, 65])
    logic = np.array([0x00, 0xFF, 0x01, 0x80])
    data = encode(adc, ranges, counter, logic)
    assert len(data) == 16 and data[:4] == (62 << 18).to_bytes(4, "little")
    got = decode(data)
    for a, b in zip(got, (adc, ranges, counter % 64, logic), strict=True):
        assert np.array_equal(a, b)


def test_calibration_needs_the_shunts() -> None:
    calibration = Calibration.parse("R0: 1000\nR1: 100\nR2: 10\nR3: 1\nR4: 0.05\nEND\n", "kit")
    # Neutral gains: 16384 counts in range 2 = 16384 x 1.8 / 163840 / 10 ohm = 18 mA.
    assert calibration.amps(np.array([16384]), np.array([2]), 3.3)[0] == pytest.approx(0.018)
    with pytest.raises(MeterError, match=r"without R3, R4.*not a PPK2"):
        Calibration.parse("R0: 1000\nR1: 100\nR2: 10\nEND\n", "kit")


def test_energy_between_marks_matches_truth(activity: Activity, tmp_path: Path) -> None:
    with virtual_meter(activity) as meter:
        assert meter.describe().records_marks and "hardware 9173" in meter.describe().notes
        meter.start(tmp_path / "power")
        first, last = activity.marked_burst(1.0, 0.2, 0.2)
        trace = meter.stop()
    assert trace.status == "complete" and trace.clock == "meter"
    assert trace.kind == "current_voltage" and not trace.events("gap")
    marks = trace.marks("timestamp")
    assert [m["edge"] for m in marks] == ["falling", "rising"] * 2
    m0, m1 = marks[0]["t"], marks[2]["t"]
    # Each edge lands at the boundary after the sample period holding it: one period each.
    assert abs((m1 - m0) - (last - first) * 1e-9) <= 2 * PERIOD_S + 1e-9
    times, values = samples(trace)
    assert np.allclose(np.diff(times), PERIOD_S) and np.all(values[:, 1] == pytest.approx(VOLTS))
    sums, health = integrate(trace, [Window(m0, m1)], "trapezoid")
    measured = sums[0].energy_j
    expected = activity.truth_j(first, last)
    # Bound: each window edge off by a period at active power; half an ADC count of the
    # active range (1.1 uA) per sample at worst; 5 sigma of the noise averaged over n samples.
    n = sums[0].samples
    lsb_a = 1.8 / 163840 / 10.15
    bound = VOLTS * PERIOD_S * (2 * ACTIVE_A + n * lsb_a / 2 + 5 * NOISE_A * np.sqrt(n))
    assert abs(measured - expected) <= bound, (measured, expected, bound)
    assert abs(measured - expected) / expected < 0.005
    assert health.gap_count == 0


def test_dropped_samples_become_gaps_and_keep_time(activity: Activity, tmp_path: Path) -> None:
    trace = record(
        virtual_meter(activity, drop_samples_at=0.2, drop_count=40), tmp_path / "power", 0.5
    )
    gaps = trace.events("gap")
    assert len(gaps) == 1 and "40 sample(s) lost" in gaps[0]["text"]
    assert gaps[0]["t"] == pytest.approx(0.2)
    times, _ = samples(trace)
    assert np.diff(times).max() == pytest.approx(41 * PERIOD_S) and times[-1] > 0.4
    _, health = integrate(trace, [Window(0.1, 0.35)], "trapezoid")
    assert health.gap_count == 1


def test_losses_the_counter_cannot_see_are_caught_by_host_time(
    activity: Activity, tmp_path: Path
) -> None:
    # 12840 = 200 x 64 + 40: the counter shows only 40 of them; host time shows the rest.
    trace = record(
        virtual_meter(activity, drop_samples_at=0.2, drop_count=12840), tmp_path / "power", 0.8
    )
    texts = [g["text"] for g in trace.events("gap")]
    assert len(texts) == 2 and "40 sample(s) lost" in texts[0]
    shortfall = int(texts[1].split()[0])
    assert "cannot show" in texts[1] and 12800 - 5000 < shortfall < 12800 + 5000


def test_corrupt_words_are_reported(activity: Activity, tmp_path: Path) -> None:
    trace = record(virtual_meter(activity, garbage_every=5000), tmp_path / "power", 0.4)
    messages = trace.events("message")
    assert messages and all("corrupt sample word" in m["text"] for m in messages)
    _, values = samples(trace)
    assert float(values[:, 0].mean()) == pytest.approx(IDLE_A, rel=0.01)


def test_stream_stopping_mid_run_keeps_the_trace(activity: Activity, tmp_path: Path) -> None:
    meter = virtual_meter(activity, stop_streaming_after=0.3)
    trace = record_through_fault(meter, tmp_path / "power", 1.6, r"stopped streaming.*mid-run")
    assert trace.sample_count > 10000


def test_missing_port_names_it_and_the_fix() -> None:
    with pytest.raises(MeterError) as error:
        Ppk2Meter({"name": "gone", "port": "/dev/ttyACM-edgebench-missing"}).open()
    assert "/dev/ttyACM-edgebench-missing" in str(error.value) and "dialout" in str(error.value)


def test_silent_device_is_not_a_ppk2() -> None:
    with mute_port() as port:
        meter = Ppk2Meter({"name": "mute", "port": port, "timeout_s": 0.3})
        with pytest.raises(MeterError, match="did not answer GET_META_DATA"):
            meter.open()


@pytest.mark.parametrize(
    ("keys", "problem"),
    [({"voltage": 6.0}, "outside 0.8..5 V"), ({"mode": "smu"}, "mode 'smu'"),
     ({"mark_input": 8}, "not a logic input")],
)  # fmt: skip
def test_bad_settings(keys: dict, problem: str) -> None:
    with pytest.raises(MeterError, match=problem):
        Ppk2Meter({"name": "bad", **keys})


def test_bundled_profiles_validate() -> None:
    for name in ("ppk2", "virtual-ppk2"):
        profile = load_meter_profile(str(METER_PROFILES / f"{name}.yaml"))
        assert profile["driver"] == "ppk2"

"""The hwmon driver against a fake sysfs tree the test rewrites as the "hardware", sampled by
the real sampler program (a subprocess here, an exec channel on the loopback sshd)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edgebench.meters.base import MeterError
from edgebench.meters.hwmon import HwmonMeter
from edgebench.meters.profiles import load_meter_profile
from edgebench.metrics.energy_integrate import Window, integrate

from .meter_support import METER_PROFILES, record_through_fault, samples
from .ssh_fixtures import sshd_fixture  # noqa: F401  (fixture)

BUS_MV = 5000
IDLE_MA, ACTIVE_MA = 400, 1000  # VDD_IN: 2 W idle, 5 W active
RATE_HZ = 200.0


class FakeHwmon:
    """/sys/class/hwmon with an INA3221 (3 labelled rails) and a thermal zone beside it.
    Values are swapped in atomically, as the kernel makes a fresh value per read."""

    def __init__(self, root: Path) -> None:
        self.root = root
        thermal = root / "hwmon0"
        thermal.mkdir(parents=True)
        (thermal / "name").write_text("cpu_thermal\n")
        (thermal / "temp1_input").write_text("45000\n")
        self.ina = root / "hwmon1"
        self.ina.mkdir()
        (self.ina / "name").write_text("ina3221\n")
        for n, label in enumerate(("VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"), start=1):
            (self.ina / f"in{n}_label").write_text(label + "\n")
            self.set(f"in{n}_input", BUS_MV)
            self.set(f"curr{n}_input", 100)
            self.set(f"in{n + 3}_input", 20)  # shunt voltages: not rails
        self.set("curr1_input", IDLE_MA)

    def set(self, name: str, value: object, folder: Path | None = None) -> None:
        target = (folder or self.ina) / name
        temporary = target.with_suffix(".new")
        temporary.write_text(f"{value}\n")
        os.replace(temporary, target)


@pytest.fixture
def fake(tmp_path: Path) -> FakeHwmon:
    return FakeHwmon(tmp_path / "hwmon")


def meter_for(fake: FakeHwmon, **keys: object) -> HwmonMeter:
    profile = {"name": "test-hwmon", "sysfs_root": str(fake.root), "rate_hz": RATE_HZ, **keys}
    return HwmonMeter(profile)


def drive(fake: FakeHwmon, pattern: list[tuple[int, float]]) -> list[tuple[float, float]]:
    """Set VDD_IN's current per (mA, seconds); returns (host s, W) at each change."""
    changes = []
    for milliamps, seconds in pattern:
        before = time.monotonic()
        fake.set("curr1_input", milliamps)
        changes.append(((before + time.monotonic()) / 2, milliamps * BUS_MV * 1e-6))
        time.sleep(seconds)
    return changes


def truth(changes: list[tuple[float, float]], start: float, end: float, first_w: float) -> float:
    total, level, at = 0.0, first_w, start
    for t, watts in changes:
        if t > at:
            total += level * (min(t, end) - at)
            at = min(t, end)
        level = watts
    return total + level * (end - at)


def test_describe_finds_the_ina3221_and_its_labelled_rails(fake: FakeHwmon) -> None:
    with meter_for(fake) as meter:
        info = meter.describe()
        assert [r.label for r in meter.rails] == ["VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"]
    assert info.model == "Linux hwmon ina3221" and info.serial == str(fake.ina)
    assert info.records_marks is False and info.sample_rate_hz == RATE_HZ
    with meter_for(fake, rails=["VDD_IN"]) as meter:
        assert [r.files for r in meter.rails] == [
            [f"{fake.ina}/curr1_input", f"{fake.ina}/in1_input"]
        ]


def test_recorded_energy_matches_the_hardware_truth(fake: FakeHwmon, tmp_path: Path) -> None:
    with meter_for(fake, chip="ina3221", rails=["VDD_IN"]) as meter:
        meter.start(tmp_path / "power")
        time.sleep(0.3)
        changes = drive(fake, [(ACTIVE_MA, 0.6), (IDLE_MA, 0.4), (ACTIVE_MA, 0.5), (IDLE_MA, 0.3)])
        trace = meter.stop()
    assert trace.status == "complete" and trace.clock == "monotonic" and trace.kind == "power"
    times, watts = samples(trace)
    assert len(times) > 0.5 * RATE_HZ * 2.1  # a loaded machine may miss ticks, not most
    assert set(np.round(watts, 6)) == {2.0, 5.0}
    start, end = changes[0][0] - 0.2, changes[-1][0] + 0.2
    sums, _ = integrate(trace, [Window(start, end)], "trapezoid")
    expected = truth(changes, start, end, IDLE_MA * BUS_MV * 1e-6)
    # Each of the 4 steps lands inside one sampling interval, which the trapezoid splits:
    # at most 3 W x that interval off per step (intervals measured, not assumed).
    widest = float(np.max(np.diff(times)))
    bound = 4 * 3.0 * (widest + trace.meta["clock_uncertainty_s"])
    assert abs(sums[0].energy_j - expected) <= bound, (sums[0].energy_j, expected, bound)


def test_power_files_are_used_where_the_chip_has_them(fake: FakeHwmon, tmp_path: Path) -> None:
    ina226 = fake.root / "hwmon2"
    ina226.mkdir()
    fake.set("name", "ina226", ina226)
    for name, value in (("in0_input", 2), ("in1_input", 12000), ("curr1_input", 250)):
        fake.set(name, value, ina226)
    fake.set("power1_input", 3_000_000, ina226)  # 3 W, deliberately not 12 V x 250 mA
    with meter_for(fake, chip="ina226") as meter:
        assert [r.label for r in meter.rails] == ["channel 1"] and meter.rails[0].power
        meter.start(tmp_path / "power")
        time.sleep(0.2)
        trace = meter.stop()
    _, watts = samples(trace)
    assert np.all(watts == pytest.approx(3.0))


def test_sensor_removed_mid_run_keeps_the_trace(fake: FakeHwmon, tmp_path: Path) -> None:
    def unplug(_: object) -> None:
        (fake.ina / "curr1_input").unlink()  # the I2C device went away

    meter = meter_for(fake, rails=["VDD_IN"])
    match = r"sensor read failed.*curr1_input"
    trace = record_through_fault(meter, tmp_path / "power", 0.6, match, fault=unplug)
    assert trace.sample_count > 10 and trace.events("gap")


def test_garbage_readings_are_reported_not_recorded(fake: FakeHwmon, tmp_path: Path) -> None:
    with meter_for(fake, rails=["VDD_IN"]) as meter:
        meter.start(tmp_path / "power")
        time.sleep(0.2)
        fake.set("curr1_input", "not a number")
        time.sleep(0.2)
        fake.set("curr1_input", IDLE_MA)
        time.sleep(0.2)
        trace = meter.stop()
    messages = [e["text"] for e in trace.events("message")]
    assert messages and all("garbage from sampler" in m for m in messages)
    _, watts = samples(trace)
    assert np.all(watts == pytest.approx(2.0))


def test_sampler_killed_mid_run(fake: FakeHwmon, tmp_path: Path) -> None:
    def kill(meter: object) -> None:
        meter._link.process.kill()  # type: ignore[attr-defined]  (the process this test made)

    meter = meter_for(fake, rails=["VDD_IN"])
    record_through_fault(meter, tmp_path / "power", 0.4, "ended", fault=kill)


@pytest.mark.parametrize(
    ("keys", "problem"),
    [
        ({"chip": "ina219"}, r"no hwmon chip named 'ina219'.*found: cpu_thermal, ina3221"),
        ({"rails": ["VDD_GPU"]}, r"no rail 'VDD_GPU' \(rails: 1=VDD_IN, 2=VDD_CPU_GPU_CV"),
        ({"chip": "cpu_thermal"}, r"no curr\*/power\* readings"),
        ({"sysfs_root": "/nonexistent/hwmon"}, r"cannot list /nonexistent/hwmon"),
        ({"device": "/nonexistent/jetson.yaml"}, r"profile file .*jetson.yaml does not exist"),
        ({"python": "/nonexistent/python3"}, r"did not start"),
    ],
)
def test_refusals_are_one_line(fake: FakeHwmon, keys: dict, problem: str) -> None:
    with pytest.raises(MeterError, match=problem) as error:
        meter_for(fake, **keys).open()
    assert "\n" not in str(error.value)


def test_bundled_jetson_profile_validates() -> None:
    profile = load_meter_profile(str(METER_PROFILES / "jetson-ina3221.yaml"))
    assert profile["driver"] == "hwmon" and profile["device"] == "jetson-orin-nano"


def test_over_ssh_maps_the_device_clock(
    fake: FakeHwmon,
    tmp_path: Path,
    sshd: object,
) -> None:
    device = sshd.write_profile(tmp_path / "device.yaml", python=sys.executable)  # type: ignore[attr-defined]
    with meter_for(fake, device=str(device), rails=["VDD_IN"]) as meter:
        assert "on device" in meter.describe().notes
        meter.start(tmp_path / "power")
        time.sleep(0.3)
        changes = drive(fake, [(ACTIVE_MA, 0.5), (IDLE_MA, 0.3)])
        trace = meter.stop()
    assert trace.status == "complete"
    clock = trace.meta["device_clock"]
    assert len(clock["anchors"]) == 2 and trace.meta["clock_uncertainty_s"] < 0.05
    times, _ = samples(trace)
    start, end = changes[0][0] - 0.2, changes[-1][0] + 0.2
    sums, _ = integrate(trace, [Window(start, end)], "trapezoid")
    expected = truth(changes, start, end, IDLE_MA * BUS_MV * 1e-6)
    bound = 2 * 3.0 * (float(np.max(np.diff(times))) + trace.meta["clock_uncertainty_s"])
    assert abs(sums[0].energy_j - expected) <= bound


def test_ssh_connection_dropped_mid_run(
    fake: FakeHwmon,
    tmp_path: Path,
    sshd: object,
) -> None:
    device = sshd.write_profile(tmp_path / "device.yaml", python=sys.executable)  # type: ignore[attr-defined]

    def drop(_: object) -> None:
        assert sshd.drop_sessions() >= 1  # type: ignore[attr-defined]

    meter = meter_for(fake, device=str(device), rails=["VDD_IN"])
    match = r"on .*127\.0\.0\.1"
    trace = record_through_fault(meter, tmp_path / "power", 0.6, match, fault=drop)
    assert trace.sample_count > 10

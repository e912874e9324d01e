"""Energy from synthetic traces whose true energy is known analytically.

Every trace here goes through the real on-disk PowerTrace (small chunks, so windows straddle
chunk boundaries); the truths are closed-form integrals, never the code's own output.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from edgebench.meters.base import MeterInfo
from edgebench.metrics.clock_mapping import ClockAnchor, ClockMapping
from edgebench.metrics.energy import EnergyError, EnergyOptions, Window, compute_energy
from edgebench.metrics.energy_windows import (
    MeterClock,
    timestamp_marks,
    window_from_queries,
    windows_from_marks,
)
from edgebench.metrics.power_trace import PowerTrace, PowerTraceWriter
from edgebench.runner.energy_plot import envelope, plot_trace

ACCURACY = {"reading_pct": 0.1, "floor_w": 1e-6}


def meter(rate: float = 1000.0, **accuracy: float) -> dict:
    return MeterInfo("synthetic", "test", None, rate, accuracy=accuracy or ACCURACY).to_dict()


def sine_power(t: np.ndarray) -> np.ndarray:
    return 2.0 + 0.5 * np.sin(2 * np.pi * 0.37 * t) + 0.2 * np.cos(2 * np.pi * 3.1 * t)


def sine_energy(a: float, b: float) -> float:
    def primitive(t: float) -> float:
        return (
            2.0 * t
            - 0.5 * np.cos(2 * np.pi * 0.37 * t) / (2 * np.pi * 0.37)
            + 0.2 * np.sin(2 * np.pi * 3.1 * t) / (2 * np.pi * 3.1)
        )

    return primitive(b) - primitive(a)


def uniform_trace(
    directory: Path, values: np.ndarray, start: float, period: float, kind: str = "power", **kw
) -> PowerTrace:
    writer = PowerTraceWriter(
        directory, kind, kw.pop("meter", meter(1 / period)), sample_period_s=period,
        chunk_samples=kw.pop("chunk_samples", 4096),
    )  # fmt: skip
    for k, part in enumerate(np.array_split(values, 7)):  # several appends, as a meter would
        writer.append(part, start=start if k == 0 else None)
    return writer.close(kw.pop("status", "complete"))


def energy(trace: PowerTrace, windows: list[Window], **options) -> dict:
    return compute_energy(trace, windows, EnergyOptions(**options))


def test_trapezoid_within_half_a_percent_for_long_windows(tmp_path: Path) -> None:
    period, start = 1e-3, 100.0
    t = start + np.arange(40_000) * period
    trace = uniform_trace(tmp_path, sine_power(t), start, period)
    rng = np.random.default_rng(3)
    for _ in range(5):
        a = start + rng.uniform(0.1, 9.0)
        b = a + rng.uniform(10.0, 29.0)
        result = energy(trace, [Window(a, b, 100)])
        truth = sine_energy(a, b)
        got = result["windows"][0]["energy_j"]
        assert got == pytest.approx(truth, rel=5e-3)
        assert abs(got - truth) <= result["windows"][0]["uncertainty"]["total_j"]
        assert result["energy_per_inference_j"] == pytest.approx(got / 100)
        assert result["average_power_w"] == pytest.approx(got / (b - a))
        assert result["valid"], result["reasons"]


@pytest.mark.parametrize("explicit", [False, True])
def test_edges_inside_intervals_are_exact_for_piecewise_linear_power(
    tmp_path: Path, explicit: bool
) -> None:
    """Trapezoid is exact for a linear signal, so any error would be in the edge handling."""
    rng = np.random.default_rng(7)
    if explicit:
        t = 5.0 + np.cumsum(rng.uniform(0.5e-3, 1.5e-3, 10_000))
        writer = PowerTraceWriter(tmp_path, "power", meter(), chunk_samples=999)
        for idx in np.array_split(np.arange(len(t)), 5):
            writer.append(3.0 + 0.25 * t[idx], times=t[idx])
        trace = writer.close()
    else:
        t = 5.0 + np.arange(10_000) * 1e-3
        trace = uniform_trace(tmp_path, 3.0 + 0.25 * t, 5.0, 1e-3, chunk_samples=999)
    for _ in range(20):
        a = rng.uniform(t[0], t[-1])
        b = rng.uniform(a, t[-1])
        truth = 3.0 * (b - a) + 0.125 * (b * b - a * a)
        got = energy(trace, [Window(a, b)])["windows"][0]["energy_j"]
        assert got == pytest.approx(truth, rel=1e-5, abs=1e-9)


def test_current_voltage_multiplies_per_sample(tmp_path: Path) -> None:
    period = 1e-4
    t = np.arange(200_000) * period
    current = 0.01 + 0.002 * t  # linear A, constant V: power linear, trapezoid exact
    writer = PowerTraceWriter(
        tmp_path, "current_voltage", meter(1e4), sample_period_s=period, chunk_samples=30_000
    )
    writer.append(np.column_stack([current, np.full_like(t, 3.3)]), start=0.0)
    trace = writer.close()
    a, b = 1.23456, 18.7654
    truth = 3.3 * (0.01 * (b - a) + 0.001 * (b * b - a * a))
    result = energy(trace, [Window(a, b, 10)])
    assert result["windows"][0]["energy_j"] == pytest.approx(truth, rel=1e-5)
    assert result["method"] == "trapezoid"


@pytest.mark.parametrize("explicit", [False, True])
def test_energy_samples_are_summed_with_partial_periods_pro_rata(
    tmp_path: Path, explicit: bool
) -> None:
    """LPM01A-style `output energy`: each sample is the energy of the period ending at it."""
    period = 1e-3
    ends = 2.0 + np.arange(1, 30_001) * period  # sample k covers (ends[k] - period, ends[k]]
    per_sample = np.array([sine_energy(e - period, e) for e in ends[:5]])  # spot check below
    joules = sine_energy(0, 1) * 0 + np.diff(
        [sine_energy(0, x) for x in np.concatenate(([ends[0] - period], ends))]
    )
    np.testing.assert_allclose(joules[:5], per_sample)
    if explicit:
        writer = PowerTraceWriter(tmp_path, "energy", meter(), chunk_samples=7000)
        writer.append(joules, times=ends)
        trace = writer.close()
    else:
        trace = uniform_trace(tmp_path, joules, ends[0], period, kind="energy", chunk_samples=7000)
    for a, b in ((2.0, 32.0), (3.00025, 15.5007), (10.1, 10.1004)):
        got = energy(trace, [Window(a, b, 1)])["windows"][0]["energy_j"]
        # whole periods are exact; a cut period assumes flat power inside it (<= 1 sample)
        assert got == pytest.approx(sine_energy(a, b), rel=1e-6, abs=2.8 * period * 1e-3)
    with pytest.raises(EnergyError, match="needs power samples"):
        energy(trace, [Window(3.0, 4.0)], method="trapezoid")


def test_mlperf_power_method_is_mean_of_positive_watts_times_duration(tmp_path: Path) -> None:
    """MLPerf Power's checker: avg of spl.txt Watts with begin < t < end and W > 0."""
    t = np.arange(0.0, 700.0, 1.0)  # PTDaemon: one sample per second
    watts = 20.0 + np.sin(t)
    watts[[100, 200, 300]] = [-1.0, 0.0, -5.0]  # dropped by the rule
    trace = uniform_trace(tmp_path, watts, 0.0, 1.0, meter=meter(1.0))
    begin, end = 50.0, 650.0  # sample times equal to begin/end are excluded (strict)
    inside = watts[(t > begin) & (t < end)]
    truth = inside[inside > 0].mean() * (end - begin)
    result = energy(trace, [Window(begin, end, 1200)], method="mlperf-power")
    assert result["windows"][0]["energy_j"] == pytest.approx(truth, rel=1e-9)
    assert result["method"] == "mlperf-power"


def square_wave(t: np.ndarray, idle: float, active: float, edges: np.ndarray) -> np.ndarray:
    """Power that is `active` between edges[2k] and edges[2k+1], averaged over each sample's
    period (what a meter integrating internally reports as mean power per sample)."""
    on = np.zeros_like(t)
    for a, b in edges.reshape(-1, 2):
        on += np.clip(np.minimum(t, b) - np.maximum(t - 1e-3, a), 0, 1e-3) / 1e-3
    return idle + (active - idle) * on


def test_short_windows_true_error_inside_reported_uncertainty(tmp_path: Path) -> None:
    """Inference bursts with sharp power steps, windows of 20 ms to 2 s with a clock bound."""
    rng = np.random.default_rng(11)
    bursts = np.sort(rng.uniform(1.0, 29.0, 400))
    t = np.arange(1, 30_001) * 1e-3
    noise = rng.normal(0, 0.002, len(t))
    trace = uniform_trace(tmp_path, square_wave(t, 0.5, 1.5, bursts) + noise, t[0], 1e-3)

    def truth(a: float, b: float) -> float:
        active = sum(max(0.0, min(b, y) - max(a, x)) for x, y in bursts.reshape(-1, 2))
        return 0.5 * (b - a) + 1.0 * active

    for _ in range(40):
        length = rng.uniform(0.02, 2.0)
        true_a = rng.uniform(2.0, 27.0 - length)
        bound = 5e-4
        seen_a = true_a + rng.uniform(-bound, bound)  # where the mapping put the edges
        seen_b = true_a + length + rng.uniform(-bound, bound)
        result = energy(trace, [Window(seen_a, seen_b, 1, bound, bound)])
        row = result["windows"][0]
        assert (
            abs(row["energy_j"] - truth(true_a, true_a + length)) <= row["uncertainty"]["total_j"]
        )


def test_tiny_windows_from_last_two_marks_and_median(tmp_path: Path) -> None:
    """Five windows; a spurious boot pulse and an extra edge early in one command are ignored."""
    period = 1e-3
    t = np.arange(1, 80_001) * period
    power = np.where((t > 5) & (t < 75), 0.03, 0.01)
    writer = PowerTraceWriter(tmp_path, "power", meter(), sample_period_s=period)
    writer.append(power, start=t[0])
    writer.mark(0.5, "timestamp", "falling")  # th_timestamp_initialize's pulse at boot
    spans, counts, starts = [], [70, 70, 71, 70, 69], [6.0, 20.0, 34.0, 48.0, 62.0]
    for k, s in enumerate(starts):
        if k == 2:
            writer.mark(s - 0.5, "timestamp", "falling")  # earlier edge in the same command
        writer.mark(s - 0.0005, "timestamp", "rising")  # edges of the other polarity: ignored
        writer.mark(s, "timestamp", "falling")
        writer.mark(s + 10.0 + k * 0.1, "timestamp", "falling")
        spans.append((s - 1.0, s + 12.0))
    trace = writer.close()
    marks = timestamp_marks(trace)
    # Without command spans only the last 2N marks pair up: right when the one spurious edge
    # is the boot pulse, so the extra edge inside command 3 is left out for that case.
    for use_spans, use_marks in ((spans, marks), (None, [m for m in marks if m != 33.5])):
        windows = windows_from_marks(use_marks, counts, period, use_spans)
        assert [w.start for w in windows] == starts
        result = energy(trace, windows, tier="meter-marks", min_window_s=10.0)
        per = sorted(0.03 * (10.0 + k * 0.1) / n for k, n in enumerate(counts))
        assert result["energy_per_inference_j"] == pytest.approx(per[2], rel=1e-4)
        assert result["aggregate"] == "median of 5 windows"
        assert result["valid"], result["reasons"]
    with pytest.raises(EnergyError, match="need 12 for 6 window"):
        windows_from_marks(marks[:5], [1] * 6, period)
    with pytest.raises(EnergyError, match="window 1: 1 timestamp mark"):
        windows_from_marks(marks, [1], period, [(5.9, 6.1)])


def test_clock_mapping_with_injected_offset_places_the_window(tmp_path: Path) -> None:
    """Device clock = host + 3.7 s (+20 ppm); the mapping's bound becomes the edge error."""
    offset, ppm = 3.7e9, 20.0
    host0 = 1_000_000_000_000

    def device(host_ns: float) -> float:
        return host_ns + offset + ppm * 1e-6 * (host_ns - host0)

    before = ClockAnchor(host0, device(host0) - host0, 50_000.0, rounds=10)
    after_host = host0 + 60_000_000_000
    after = ClockAnchor(after_host, device(after_host) - after_host, 50_000.0, rounds=10)
    mapping = ClockMapping.from_anchors(before, after)
    issue = np.array([device(host0 + 5e9), device(host0 + 6e9)])
    complete = np.array([device(host0 + 5.5e9), device(host0 + 35e9)])
    t = np.arange(0, 40.0, 1e-3) + host0 / 1e9
    trace = uniform_trace(tmp_path, sine_power(t), t[0], 1e-3)
    window = window_from_queries(issue, complete, mapping, MeterClock.of(trace))
    assert window.start == pytest.approx(host0 / 1e9 + 5.0, abs=1e-4)
    assert window.end == pytest.approx(host0 / 1e9 + 35.0, abs=1e-4)
    assert 5e-5 <= window.start_uncertainty_s < 1e-3
    result = energy(trace, [window], tier="clock-mapping")
    assert result["windows"][0]["energy_j"] == pytest.approx(
        sine_energy(host0 / 1e9 + 5, host0 / 1e9 + 35), rel=5e-3
    )
    assert result["windows"][0]["inferences"] == 2


def test_idle_is_reported_and_subtracted_only_when_asked(tmp_path: Path) -> None:
    t = np.arange(0, 30.0, 1e-3)
    trace = uniform_trace(tmp_path, np.where(t < 10, 0.2, 1.0), 0.0, 1e-3)
    idle = Window(1.0, 9.0, label="idle")
    gross = energy(trace, [Window(12.0, 22.0, 100)])
    result = compute_energy(trace, [Window(12.0, 22.0, 100)], EnergyOptions(), idle)
    assert result["idle_power_w"] == pytest.approx(0.2, rel=1e-6)
    assert result["energy_per_inference_j"] == gross["energy_per_inference_j"]
    assert not result["idle_subtracted"]
    net = compute_energy(trace, [Window(12.0, 22.0, 100)], EnergyOptions(subtract_idle=True), idle)
    assert net["energy_per_inference_net_of_idle_j"] == pytest.approx(0.08, rel=1e-6)
    assert net["idle_subtracted"]


# -- faults: each a one-line error or a validity reason --------------------------------------


def test_gap_inside_window_invalidates(tmp_path: Path) -> None:
    writer = PowerTraceWriter(tmp_path, "power", meter(), sample_period_s=1e-3)
    writer.append(np.ones(5000), start=0.0)
    writer.append(np.ones(5000), start=5.2)  # 0.2 s of samples lost
    trace = writer.close()
    result = energy(trace, [Window(1.0, 9.0, 1)])
    assert not result["valid"]
    assert "gap(s) in the power samples inside window" in result["reasons"][0]
    assert energy(trace, [Window(5.3, 9.0, 1)])["valid"]  # a gap elsewhere does not matter


def test_non_monotonic_time_is_an_error(tmp_path: Path) -> None:
    writer = PowerTraceWriter(tmp_path, "power", meter())
    writer.append(np.ones(4), times=np.array([0.0, 0.1, 0.05, 0.2]))
    with pytest.raises(EnergyError, match="does not increase at chunk 0 sample 2"):
        energy(writer.close(), [Window(0.0, 0.2)])
    writer = PowerTraceWriter(tmp_path / "b", "power", meter(), sample_period_s=0.1)
    writer.append(np.ones(4), start=10.0)
    writer.append(np.ones(4), start=5.0)
    with pytest.raises(EnergyError, match="goes backwards between chunks 0 and 1"):
        energy(writer.close(), [Window(5.0, 6.0)])


def test_overload_event_in_window_invalidates(tmp_path: Path) -> None:
    writer = PowerTraceWriter(tmp_path, "power", meter(), sample_period_s=1e-3)
    writer.append(np.ones(10_000), start=0.0)
    writer.event(4.0, "overload", "current above 50 mA range")
    trace = writer.close()
    (reason,) = energy(trace, [Window(1.0, 9.0, 1)])["reasons"]
    assert reason.startswith("range overload reported by the meter at 4.000 s")
    assert energy(trace, [Window(5.0, 9.0, 1)])["valid"]


@pytest.mark.parametrize(
    ("kind", "expected"),
    [("gap", "the meter reported lost samples at 4.000 s"),
     ("uncertain", "the meter flagged its reading as uncertain at 4.000 s")],
)  # fmt: skip
def test_meter_reported_gap_or_uncertainty_in_window_invalidates(
    tmp_path: Path, kind: str, expected: str
) -> None:
    """Events the driver knows of though the sample times look whole (a lost-sample count)."""
    writer = PowerTraceWriter(tmp_path, "energy", meter(), sample_period_s=1e-3)
    writer.append(np.full(10_000, 1e-3), start=1e-3)
    writer.event(4.0, kind, "TimeStamp count 990 of 1000")
    (reason,) = energy(writer.close(), [Window(1.0, 9.0, 1)])["reasons"]
    assert reason.startswith(expected)


def test_trace_not_covering_the_window_invalidates(tmp_path: Path) -> None:
    trace = uniform_trace(tmp_path, np.ones(5000), 10.0, 1e-3)
    (reason,) = energy(trace, [Window(9.0, 14.0, 1)])["reasons"]
    assert "covers 10.000..14.999 s but window needs 9.000..14.000 s" in reason


def test_clock_too_uncertain_for_the_window_invalidates(tmp_path: Path) -> None:
    trace = uniform_trace(tmp_path, np.ones(20_000), 0.0, 1e-3)
    (reason,) = energy(trace, [Window(1.0, 3.0, 1, 0.015, 0.015)])["reasons"]
    assert "uncertain by 30 ms at its edges, more than 1% of its 2 s" in reason
    assert energy(trace, [Window(1.0, 19.0, 1, 0.015, 0.015)])["valid"]


def test_meter_stopped_mid_run_keeps_trace_and_invalidates(tmp_path: Path) -> None:
    trace = uniform_trace(tmp_path, np.ones(3000), 0.0, 1e-3, status="stopped: no reply for 5 s")
    result = energy(trace, [Window(1.0, 6.0, 1)])
    assert not result["valid"]
    assert result["reasons"][0] == (
        "the meter stopped mid-run (stopped: no reply for 5 s); the trace so far is kept"
    )
    assert "covers" in result["reasons"][1]
    assert result["windows"][0]["energy_j"] == pytest.approx(2.0 - 0.001, rel=1e-6)


def test_wall_clock_tier_needs_minutes(tmp_path: Path) -> None:
    writer = PowerTraceWriter(tmp_path, "power", meter(1.0), sample_period_s=1.0, clock="utc")
    writer.append(np.full(900, 30.0), start=1.7e9)
    trace = writer.close()
    clock = MeterClock.of(trace)
    assert clock.tier == "wall-clock" and clock.uncertainty_s == 0.4
    short = energy(trace, [Window(1.7e9 + 10, 1.7e9 + 40, 1, 0.4, 0.4)], tier="wall-clock")
    assert not short["valid"]
    long = energy(trace, [Window(1.7e9 + 10, 1.7e9 + 700, 1, 0.4, 0.4)], tier="wall-clock")
    assert long["valid"] and long["windows"][0]["energy_j"] == pytest.approx(30.0 * 690)
    assert long["label"].startswith("lab measurement")


def test_meter_own_clock_needs_marks(tmp_path: Path) -> None:
    writer = PowerTraceWriter(tmp_path, "power", meter(), sample_period_s=1.0, clock="meter")
    writer.append(np.ones(3), start=0.0)
    with pytest.raises(EnergyError, match="record the device's timestamp marks"):
        MeterClock.of(writer.close()).from_host_ns(1e9)


def test_uncertainty_uses_stated_accuracy(tmp_path: Path) -> None:
    stated = meter(reading_pct=0.5, range_pct=0.1, range_w=10.0, floor_w=0.001)
    trace = uniform_trace(tmp_path, np.full(20_000, 2.0), 0.0, 1e-3, meter=stated)
    row = energy(trace, [Window(2.0, 12.0, 1)])["windows"][0]
    assert row["uncertainty"]["meter_j"] == pytest.approx(
        20.0 * 0.005 + (0.001 * 10.0 + 0.001) * 10.0
    )
    assert row["uncertainty"]["timing_j"] == pytest.approx(2 * 2.0 * 1e-3)
    assert math.isclose(row["energy_j"], 20.0, rel_tol=1e-9)


def test_bad_method_and_empty_inputs(tmp_path: Path) -> None:
    trace = uniform_trace(tmp_path, np.ones(100), 0.0, 1e-3)
    with pytest.raises(EnergyError, match="unknown energy method 'simpson'"):
        energy(trace, [Window(0.0, 0.05)], method="simpson")
    with pytest.raises(EnergyError, match="no timed window"):
        energy(trace, [])
    with pytest.raises(EnergyError, match="method 'sum' is for energy-per-period"):
        energy(trace, [Window(0.0, 0.05)], method="sum")


def test_plot_envelope_keeps_spikes_and_draws(tmp_path: Path) -> None:
    values = np.full(100_000, 1.0)
    values[54_321] = 9.0  # one sample: decimation must not hide it
    trace = uniform_trace(tmp_path / "t", values, 0.0, 1e-4, chunk_samples=30_000)
    centres, low, high, mean = envelope(trace, bins=100)
    assert len(centres) == 100 and np.nanmax(high) == 9.0 and np.nanmin(low) == 1.0
    assert int(np.argmax(high)) == 54
    assert mean[54] == pytest.approx(1.0 + 8.0 / 1000, rel=1e-3)  # 1000 samples per bin
    pytest.importorskip("matplotlib", reason="power.png needs matplotlib (optional)")
    result = energy(trace, [Window(2.0, 8.0, 10)])
    path = plot_trace(trace, result, tmp_path / "power.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

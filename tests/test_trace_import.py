"""CSV / NPZ import from other instruments: units, layouts, and the refusals of bad files."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from edgebench.meters.profiles import load_meter_profile, open_meter
from edgebench.meters.trace_import import TraceFormat, TraceImportError, import_trace
from edgebench.metrics.energy_integrate import Window, integrate
from edgebench.metrics.power_trace import PowerTrace

from .meter_support import METER_PROFILES

RATE = 1000.0
SECONDS = 10.0


def sine_power(rate: float = RATE, seconds: float = SECONDS) -> tuple[np.ndarray, np.ndarray]:
    """2 W + 1 W sine at 1 Hz: exactly 2 J per second over whole periods."""
    t = np.arange(int(rate * seconds) + 1) / rate
    return t, 2.0 + np.sin(2 * np.pi * t)


def write_csv(path: Path, header: list[str], rows: list[list[object]], preamble: str = "") -> Path:
    with open(path, "w", newline="") as handle:
        handle.write(preamble)
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def energy(trace: PowerTrace, start: float, end: float, method: str = "trapezoid") -> float:
    sums, _ = integrate(trace, [Window(start, end)], method)
    return sums[0].energy_j


def test_power_in_mw_with_ms_times_integrates_to_truth(tmp_path: Path) -> None:
    t, watts = sine_power()
    # The instrument logs ms since its start and mW at 0.001 mW resolution, extra columns too.
    rows = [[f"{x * 1e3:.3f}", "ok", f"{w * 1e3:.3f}"] for x, w in zip(t, watts, strict=True)]
    source = write_csv(tmp_path / "log.csv", ["t_ms", "status", "P_mW"], rows)
    fmt = TraceFormat(time="t_ms", time_unit="ms", power="P_mW", power_unit="mW", clock="meter")
    report = import_trace(source, tmp_path / "power", fmt)
    trace = report.trace
    assert (report.rows, report.gaps) == (len(t), 0)
    assert trace.kind == "power" and trace.clock == "meter" and trace.status == "complete"
    assert trace.span == pytest.approx((0.0, SECONDS))
    # Truth 20 J; bound: trapezoid error of a 1 Hz sine at 1 kHz (~1e-5 relative) plus the
    # 0.5 uW rounding over 10 s.
    assert energy(trace, 0.0, SECONDS) == pytest.approx(2.0 * SECONDS, abs=1e-4)


def test_current_and_voltage_columns_in_any_order(tmp_path: Path) -> None:
    t = np.arange(2001) / 200.0
    amps = np.where(t < 5.0, 0.010, 0.030)  # 10 mA, then 30 mA from 5 s
    rows = [["3300.0", f"{x:.3f}", f"{a * 1e3:.3f}"] for x, a in zip(t, amps, strict=True)]
    source = write_csv(tmp_path / "iv.csv", ["Vbus mV", "time", "I mA"], rows)
    fmt = TraceFormat(current="I mA", current_unit="mA", voltage="Vbus mV", voltage_unit="mV")
    trace = import_trace(source, tmp_path / "power", fmt).trace
    assert trace.kind == "current_voltage" and trace.clock == "utc"
    _, values = next(trace.chunks())
    assert values[0] == pytest.approx([0.010, 3.3])
    # Truth: 3.3 V x (10 mA x 5 s + 30 mA x 5 s); the step lies inside one 5 ms interval,
    # which the trapezoid splits evenly: at most 3.3 V x 20 mA x 5 ms / 2 off.
    truth = 3.3 * (0.010 * 5 + 0.030 * 5)
    assert energy(trace, 0.0, 10.0) == pytest.approx(truth, abs=3.3 * 0.020 * 0.005 / 2 + 1e-6)


def test_fixed_supply_voltage(tmp_path: Path) -> None:
    rows = [[i * 0.01, 0.5] for i in range(101)]
    source = write_csv(tmp_path / "i.csv", ["time", "current"], rows)
    fmt = TraceFormat(current="current", voltage_v=1.8, clock="monotonic")
    trace = import_trace(source, tmp_path / "power", fmt).trace
    assert energy(trace, 0.0, 1.0) == pytest.approx(0.9)


def test_energy_per_period_is_summed(tmp_path: Path) -> None:
    # 1 kHz energy samples in uJ, as an LPM01A-like logger writes them: 1.8 mW steady.
    t = (np.arange(5000) + 1) / 1000.0
    rows = [[f"{x:.3f}", "1.8"] for x in t]
    source = write_csv(tmp_path / "e.csv", ["time", "E"], rows)
    fmt = TraceFormat(energy="E", energy_unit="uJ", clock="meter")
    trace = import_trace(source, tmp_path / "power", fmt).trace
    assert trace.kind == "energy"
    assert energy(trace, 1.0, 4.0, "sum") == pytest.approx(1.8e-3 * 3.0, rel=1e-6)


def test_npz_import_in_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("edgebench.meters.trace_import.BATCH_ROWS", 1000)
    t, watts = sine_power()
    np.savez(tmp_path / "trace.npz", ts=t * 1e6, p=watts * 1e6)
    fmt = TraceFormat(time="ts", time_unit="us", power="p", power_unit="uW", clock="meter")
    report = import_trace(tmp_path / "trace.npz", tmp_path / "power", fmt)
    assert report.rows == len(t) and report.gaps == 0
    assert energy(report.trace, 0.0, SECONDS) == pytest.approx(2.0 * SECONDS, abs=1e-4)


def test_gaps_are_recorded_and_counted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("edgebench.meters.trace_import.BATCH_ROWS", 64)  # gap across batches
    t = np.arange(1000) / 100.0
    t = np.concatenate([t[:300], t[400:700], t[720:]])  # 1 s and 0.2 s missing
    rows = [[f"{x:.2f}", 1.0] for x in t]
    source = write_csv(tmp_path / "g.csv", ["time", "W"], rows)
    report = import_trace(source, tmp_path / "power", TraceFormat(power="W", clock="meter"))
    assert report.gaps == 2
    gaps = report.trace.events("gap")
    assert [g["t"] for g in gaps] == pytest.approx([2.99, 6.99])
    assert "1 s" in gaps[0]["text"] and "row 302" in gaps[0]["text"]
    _, health = integrate(report.trace, [Window(0.0, 9.99)], "trapezoid")
    assert health.gap_count == 2


def test_missing_column_lists_what_is_there(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "m.csv", ["time", "I"], [[0, 1]])
    with pytest.raises(TraceImportError) as error:
        import_trace(source, tmp_path / "power", TraceFormat(power="P"))
    message = str(error.value)
    assert "no column 'P'" in message and "columns: time, I" in message and "\n" not in message


def test_non_monotonic_time_names_the_row_and_keeps_the_partial_trace(tmp_path: Path) -> None:
    rows = [[0.0, 1], [0.1, 1], [0.2, 1], [0.15, 1], [0.3, 1]]
    source = write_csv(tmp_path / "n.csv", ["time", "W"], rows, preamble="# DMM log\n")
    fmt = TraceFormat(power="W", skip_rows=1)
    with pytest.raises(TraceImportError, match=r"row 6: time 0\.15 s does not increase"):
        import_trace(source, tmp_path / "power", fmt)
    assert PowerTrace.open(tmp_path / "power").status.startswith("stopped: ")


def test_garbage_value_names_row_and_column(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "b.csv", ["time", "W"], [[0, 1], [1, "OVL"]])
    with pytest.raises(TraceImportError, match=r"row 3, column 'W': 'OVL' is not a number"):
        import_trace(source, tmp_path / "power", TraceFormat(power="W"))


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({}, "exactly one of power:"),
        ({"power": "P", "energy": "E"}, "exactly one of power:"),
        ({"current": "I"}, "either voltage:"),
        ({"power": "P", "power_unit": "kW"}, "power_unit 'kW' is not known"),
        ({"power": "P", "clock": "gps"}, "clock 'gps'"),
    ],
)
def test_bad_format_declarations(fields: dict[str, str], problem: str) -> None:
    with pytest.raises(TraceImportError, match=problem):
        TraceFormat(**fields)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TraceImportError, match="does not exist"):
        import_trace(tmp_path / "nope.csv", tmp_path / "power", TraceFormat(power="W"))


def test_trace_file_meter_imports_what_the_logger_wrote(tmp_path: Path) -> None:
    source = tmp_path / "logger" / "run.csv"
    source.parent.mkdir()
    profile = tmp_path / "dmm.yaml"
    profile.write_text(
        f"driver: trace-file\npath: {source}\npower: P_mW\npower_unit: mW\nrate_hz: 10\n"
        "clock: monotonic\naccuracy: {reading_pct: 0.5}\n"
    )
    meter = open_meter(str(profile))
    with meter:
        assert meter.describe().sample_rate_hz == 10 and meter.describe().accuracy
        meter.start(tmp_path / "power")
        write_csv(source, ["time", "P_mW"], [[i / 10, 500] for i in range(11)])
        trace = meter.stop()
    assert trace.meta["meter"]["driver"] == "trace-file"
    assert energy(trace, 0.0, 1.0) == pytest.approx(0.5)
    with pytest.raises(TraceImportError, match="does not exist"):
        source.unlink()
        meter.start(tmp_path / "power2")
        meter.stop()


def test_profile_with_wrong_type_and_bundled_example(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("driver: trace-file\npath: x.csv\npower: P\nskip_rows: two\n")
    with pytest.raises(Exception, match="'skip_rows' must be int"):
        load_meter_profile(str(bad))
    example = load_meter_profile(str(METER_PROFILES / "csv-example.yaml"))
    assert TraceFormat.from_profile(example).kind == "power"

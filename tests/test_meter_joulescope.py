"""Joulescope: synthetic .jls recordings (written with pyjls) through the stream handler the
live driver uses, both as a file import and replayed as pyjoulescope_driver messages."""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edgebench.meters.base import MeterError
from edgebench.meters.joulescope import JoulescopeMeter, JoulescopeStream, LiveFeed
from edgebench.meters.profiles import load_meter_profile
from edgebench.metrics.energy_integrate import Window, integrate
from edgebench.metrics.power_trace import PowerTrace, PowerTraceWriter

from .meter_support import METER_PROFILES

pyjls = pytest.importorskip("pyjls", reason="pyjls (optional extra) writes the test recordings")

RATE = 100_000
SECONDS = 3
VOLTS, IDLE_A, ACTIVE_A = 3.3, 1e-3, 10e-3
ACTIVE = (100_000, 200_000)  # samples [1 s, 2 s) draw the active current
PULSES = (90_000, 210_000)  # GPI0 pulled low for 50 samples at these


def signals() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = RATE * SECONDS
    amps = np.full(n, IDLE_A, dtype=np.float32)
    amps[ACTIVE[0] : ACTIVE[1]] = ACTIVE_A
    volts = np.full(n, VOLTS, dtype=np.float32)
    gpi = np.ones(n, dtype=np.uint8)
    for at in PULSES:
        gpi[at : at + 50] = 0
    return amps, volts, gpi


def write_jls(path: Path, skip: tuple[int, int] | None = None, power_only: bool = False) -> Path:
    """A recording as the Joulescope UI writes one: current, voltage, power, gpi[0]; `skip`
    (start, count) leaves a hole, which JLS reads back as NaN."""
    amps, volts, gpi = signals()
    f32, u1 = pyjls.DataType.F32, pyjls.DataType.U1
    with pyjls.Writer(str(path)) as writer:
        writer.source_def(1, name="JS220", vendor="Jetperch", model="JS220", version="1.0",
                          serial_number="000415")  # fmt: skip
        layout = [(3, "power", "W", f32)] if power_only else [
            (1, "current", "A", f32), (2, "voltage", "V", f32), (4, "gpi[0]", "", u1)]  # fmt: skip
        fsr = pyjls.SignalType.FSR
        for signal_id, name, units, data_type in layout:
            writer.signal_def(signal_id, 1, signal_type=fsr, data_type=data_type,
                              sample_rate=RATE, name=name, units=units)  # fmt: skip
        data = {1: amps, 2: volts, 3: amps * volts, 4: gpi}
        for signal_id, _, _, data_type in layout:
            values = data[signal_id]
            pieces = [(0, values)]
            if skip is not None and data_type == f32:
                a, count = skip
                pieces = [(0, values[:a]), (a + count, values[a + count :])]
            for first, piece in pieces:
                if data_type == u1:
                    piece = np.packbits(piece, bitorder="little")
                writer.fsr(signal_id, first, piece)
        first_signal = layout[0][0]
        writer.annotation(first_signal, 150_000, float("nan"), pyjls.AnnotationType.TEXT, 0,
                          "firmware says hello")  # fmt: skip
        writer.annotation(first_signal, 120_000, float("nan"), pyjls.AnnotationType.VMARKER, 0,
                          "A")  # fmt: skip
        writer.utc(first_signal, 0, pyjls.utc_to_jls(1_700_000_000.0))
    return path


def truth_between_pulses() -> float:
    """Energy from the first falling edge to the second: 0.1 s idle, 1 s active, 0.1 s idle."""
    start, end = PULSES[0] / RATE, PULSES[1] / RATE
    active = (ACTIVE[1] - ACTIVE[0]) / RATE
    return VOLTS * (ACTIVE_A * active + IDLE_A * ((end - start) - active))


def energy(trace: PowerTrace, start: float, end: float) -> float:
    sums, _ = integrate(trace, [Window(start, end)], "trapezoid")
    return sums[0].energy_j


def check_recording(trace: PowerTrace) -> None:
    falling = [m["t"] for m in trace.marks("timestamp") if m["edge"] == "falling"]
    assert falling == pytest.approx([at / RATE for at in PULSES])
    # The trapezoid smears each current step over one period: 2 steps x 9 mA x 3.3 V x 5 us,
    # half of it each; float32 storage adds ~1e-7 relative.
    bound = 2 * (ACTIVE_A - IDLE_A) * VOLTS / RATE / 2 + 1e-6
    assert energy(trace, *falling) == pytest.approx(truth_between_pulses(), abs=bound)


def test_jls_import_energy_marks_annotations(tmp_path: Path) -> None:
    from edgebench.meters.jls_import import import_jls

    trace = import_jls(write_jls(tmp_path / "rec.jls"), tmp_path / "power")
    assert trace.status == "complete" and trace.kind == "current_voltage"
    assert trace.clock == "meter" and trace.sample_count == RATE * SECONDS
    assert trace.meta["meter"]["model"] == "Joulescope JS220"
    assert trace.meta["utc_anchor"] == {"sample": 0, "utc_s": 1_700_000_000.0}
    check_recording(trace)
    assert [m["t"] for m in trace.marks("marker")] == [1.2]
    assert [e["text"] for e in trace.events("message")] == ["firmware says hello"]
    assert not trace.events("gap")


def test_live_feed_replay_matches_the_import(tmp_path: Path) -> None:
    """The recording replayed as pyjoulescope_driver delivers it: base rate 2x with
    decimate_factor 2, GPI packed 1-bit, signals interleaved in blocks, one block resent."""
    amps, volts, gpi = signals()
    writer = PowerTraceWriter(tmp_path / "power", "current_voltage", {"driver": "joulescope"},
                              sample_period_s=1 / RATE, clock="meter")  # fmt: skip
    feed = LiveFeed(JoulescopeStream(writer, mark_input=0))
    base_offset = 7_000_000  # the instrument's sample_id does not start at 0
    block = 25_000
    for start in range(0, len(amps), block):
        common = {"sample_id": base_offset + 2 * start, "sample_rate": 2 * RATE,
                  "decimate_factor": 2, "utc": 1234}  # fmt: skip
        end = start + block
        feed("u/js220/000415/s/i/!data", {**common, "data": amps[start:end]})
        feed("u/js220/000415/s/gpi/0/!data", {**common, "element_size_bits": 1,
             "data": np.packbits(gpi[start:end], bitorder="little")})  # fmt: skip
        if start == 50_000:  # a resent block: already taken, must not be stored twice
            feed("u/js220/000415/s/i/!data", {**common, "data": amps[start:end]})
        feed("u/js220/000415/s/v/!data", {**common, "data": volts[start:end]})
        feed("u/js220/000415/s/i/range/!data", {**common, "data": np.zeros(block)})
    trace = feed.stream.finish()
    assert trace.sample_count == RATE * SECONDS and trace.meta["first_utc_jls"] == 1234
    times, _ = next(trace.chunks())
    assert times[0] == 0.0
    check_recording(trace)


def test_holes_become_gaps(tmp_path: Path) -> None:
    from edgebench.meters.jls_import import import_jls

    trace = import_jls(write_jls(tmp_path / "rec.jls", skip=(150_000, 500)), tmp_path / "power")
    gaps = trace.events("gap")
    assert len(gaps) == 1 and gaps[0]["t"] == pytest.approx(1.5)
    assert "500 sample(s) missing" in gaps[0]["text"]
    assert trace.sample_count == RATE * SECONDS - 500
    _, health = integrate(trace, [Window(1.0, 2.0)], "trapezoid")
    assert health.gap_count == 1


def test_power_only_recording(tmp_path: Path) -> None:
    from edgebench.meters.jls_import import import_jls

    trace = import_jls(write_jls(tmp_path / "p.jls", power_only=True), tmp_path / "power")
    assert trace.kind == "power" and not trace.marks("timestamp")
    active = (ACTIVE[1] - ACTIVE[0]) / RATE
    expected = VOLTS * (ACTIVE_A * active + IDLE_A * (SECONDS - 1 / RATE - active))
    assert energy(trace, 0.0, SECONDS - 1 / RATE) == pytest.approx(expected, rel=1e-4)


def test_bad_recordings(tmp_path: Path) -> None:
    from edgebench.meters.jls_import import import_jls

    with pytest.raises(MeterError, match="does not exist"):
        import_jls(tmp_path / "none.jls", tmp_path / "a")
    junk = tmp_path / "junk.jls"
    junk.write_bytes(b"not a jls file" * 100)
    with pytest.raises(MeterError, match="not a readable JLS file"):
        import_jls(junk, tmp_path / "b")
    with pyjls.Writer(str(tmp_path / "t.jls")) as writer:
        writer.source_def(1, name="JS220", vendor="Jetperch", model="JS220", version="1",
                          serial_number="1")  # fmt: skip
        writer.signal_def(1, 1, signal_type=pyjls.SignalType.FSR, data_type=pyjls.DataType.F32,
                          sample_rate=RATE, name="temperature", units="C")  # fmt: skip
        writer.fsr(1, 0, np.zeros(10, dtype=np.float32))
    with pytest.raises(MeterError, match=r"no current \+ voltage or power.*temperature"):
        import_jls(tmp_path / "t.jls", tmp_path / "c")


def test_stream_that_stops_keeps_what_came(tmp_path: Path) -> None:
    amps, volts, _ = signals()
    writer = PowerTraceWriter(tmp_path / "power", "current_voltage", {"driver": "joulescope"},
                              sample_period_s=1 / RATE, clock="meter")  # fmt: skip
    stream = JoulescopeStream(writer, mark_input=None)
    stream.take("current", 0, RATE, amps[:20_000])
    stream.take("voltage", 0, RATE, volts[:20_000])
    assert stream.check_alive(timeout_s=5.0)
    time.sleep(0.3)
    assert not stream.check_alive(timeout_s=0.2)
    with pytest.raises(MeterError, match=r"stopped streaming.*mid-run.*status stopped"):
        stream.finish()
    trace = PowerTrace.open(tmp_path / "power")
    assert trace.status.startswith("stopped: ") and trace.sample_count == 20_000


def test_mixed_rates_are_refused(tmp_path: Path) -> None:
    writer = PowerTraceWriter(tmp_path / "power", "current_voltage", {}, sample_period_s=1e-5)
    stream = JoulescopeStream(writer)
    stream.take("current", 0, RATE, np.ones(10))
    with pytest.raises(MeterError, match="record every signal at one rate"):
        stream.take("voltage", 0, RATE / 2, np.ones(10))


@pytest.mark.skipif(
    importlib.util.find_spec("pyjoulescope_driver") is not None,
    reason="pyjoulescope_driver is installed here: the missing-extra path cannot be shown",
)
def test_live_meter_without_the_driver_says_how_to_install() -> None:
    with pytest.raises(MeterError, match="pip install pyjoulescope_driver") as error:
        JoulescopeMeter({"name": "js220"}).open()
    assert "\n" not in str(error.value)


def test_bundled_profile_validates() -> None:
    profile = load_meter_profile(str(METER_PROFILES / "joulescope-js220.yaml"))
    assert profile["driver"] == "joulescope" and profile["mark_input"] == 0


def test_missing_pyjls_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edgebench.meters.jls_import import import_jls

    monkeypatch.setitem(sys.modules, "pyjls", None)  # as if the extra were not installed
    with pytest.raises(MeterError, match="needs pyjls: pip install pyjls"):
        import_jls(tmp_path / "rec.jls", tmp_path / "power")

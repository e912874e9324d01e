"""The PTDaemon driver against the PTDaemon emulator: a real process on loopback TCP."""

from __future__ import annotations

import re
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from edgebench.meters import mlcommons_power
from edgebench.meters.base import MeterError
from edgebench.meters.profiles import load_meter_profile
from edgebench.meters.ptd import PtdMeter, parse_sample, spl_line

from .meter_support import (
    Activity,
    activity_fixture,  # noqa: F401  (fixture)
    free_port,
    record,
    record_through_fault,
    samples,
)

IDLE_W, ACTIVE_W, NOISE_W, RESOLUTION_W = 2.0, 5.0, 0.01, 0.001
INTERVAL_S = 0.1
#: A sample line as PTDaemon's RL sends it: it ends at PF.
RL_LINE = "Time,11-29-2026 08:53:18.645,Watts,2.000000,Volts,230.000000,Amps,0.009662,PF,0.900000"
#: MLPerf's session id form; the driver's Go mark is `<session>_<phase>`.
SESSION = r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_edgebench"


def virtual_meter(activity: Activity, **emulator: object) -> PtdMeter:
    options = {
        "activity": str(activity.path),
        "idle_w": IDLE_W,
        "active_w": ACTIVE_W,
        "noise_w": NOISE_W,
        "resolution_w": RESOLUTION_W,
        **emulator,
    }
    profile = {
        "name": "test-ptd",
        "driver": "ptd",
        "interval_ms": int(INTERVAL_S * 1000),
        "settle_s": 0,
        "timeout_s": 1.0,
        "emulator": options,
    }
    return PtdMeter(profile)


def spl_mark(spl: Path) -> str:
    """The Go mark of an spl.txt, whose every line carries exactly one Mark, all the same."""
    lines = spl.read_text().splitlines()
    assert lines and all(line.count(",Mark,") == 1 for line in lines)
    (mark,) = {line.split(",Mark,")[1] for line in lines}
    return mark


def utc_to_monotonic_ns(times: np.ndarray) -> np.ndarray:
    """The emulator's PTD clock is this host's wall clock; map it back to physical time."""
    offset = time.time() - time.monotonic()
    return ((times - offset) * 1e9).astype(np.int64)


def test_describe_says_lab_measurement(activity: Activity) -> None:
    with virtual_meter(activity) as meter:
        info = meter.describe()
    assert info.driver == "ptd"
    assert info.model == "EmulatedWT310"
    assert info.mlperf_power_valid is False
    assert info.sample_rate_hz == pytest.approx(1 / INTERVAL_S)
    assert "not MLPerf-Power-valid" in info.notes
    client = mlcommons_power.find_client()
    assert ("client found" in info.notes) == client.found


def test_recorded_energy_matches_truth(activity: Activity, tmp_path: Path) -> None:
    with virtual_meter(activity) as meter:
        meter.start(tmp_path / "power", "ranging")
        time.sleep(0.6)
        activity.state("active")
        time.sleep(1.0)
        activity.state("idle")
        time.sleep(0.7)
        trace = meter.stop()
    assert trace.status == "complete"
    assert trace.clock == "utc"
    times, watts = samples(trace)
    assert len(times) >= 15
    assert np.all(np.diff(times) > 0)
    # Each reading is the mean power over the interval ending at its time (a wattmeter's
    # update interval), so the samples' sum x interval is the energy from one interval
    # before the first sample to the last one.
    measured = float(np.sum(watts)) * INTERVAL_S
    edges = utc_to_monotonic_ns(np.array([times[0] - INTERVAL_S, times[-1]]))
    truth = activity.timeline(IDLE_W, ACTIVE_W).energy(int(edges[0]), int(edges[1]))
    # Bound: 5 sigma of the noise, half a resolution step per sample, and the 1 ms
    # resolution of PTD's time stamps at both ends.
    bound = (
        5 * NOISE_W * np.sqrt(len(watts)) * INTERVAL_S
        + len(watts) * RESOLUTION_W / 2 * INTERVAL_S
        + 2 * 1e-3 * ACTIVE_W
    )
    assert abs(measured - truth) <= bound, (measured, truth, bound)
    assert watts.max() == pytest.approx(ACTIVE_W, abs=0.05)
    # The raw log beside the trace is MLPerf's spl.txt, one line per sample, each with the
    # one Mark of its Go (the emulator's RL lines, like PTDaemon's, carry none).
    lines = (tmp_path / "power" / "spl.txt").read_text().splitlines()
    assert len(lines) == len(watts)
    assert re.fullmatch(SESSION + "_ranging", spl_mark(tmp_path / "power" / "spl.txt"))
    assert parse_sample(lines[0])[1] == pytest.approx(float(watts[0]), abs=1e-6)


def test_sample_lines_with_and_without_mark() -> None:
    t, watts, volts, amps = parse_sample(RL_LINE)
    assert t == pytest.approx(1795942398.645)  # 2026-11-29 08:53:18.645 UTC
    assert (watts, volts, amps) == (2.0, 230.0, 0.009662)
    marked = spl_line(RL_LINE + "\r\n", "s_ranging")
    assert marked == RL_LINE + ",Mark,s_ranging"
    assert parse_sample(marked) == parse_sample(RL_LINE)
    assert spl_line(marked, "other_testing") == marked  # never a second Mark
    for bad in ("Last 3 samples", RL_LINE.replace("Amps", "Ohms"), RL_LINE.rsplit(",", 2)[0]):
        with pytest.raises(ValueError, match="not a PTDaemon sample line"):
            parse_sample(bad)


def test_testing_phase_uses_ranging_maxima(activity: Activity, tmp_path: Path) -> None:
    with virtual_meter(activity) as meter:
        with pytest.raises(MeterError, match="run the ranging phase first"):
            meter.start(tmp_path / "early", "testing")
        meter.start(tmp_path / "ranging", "ranging")
        activity.state("active")
        time.sleep(0.6)
        meter.stop()
        assert meter.describe().ranges == ["V Auto", "A Auto"]
        max_amps = max(
            parse_sample(line)[3]
            for line in (tmp_path / "ranging" / "spl.txt").read_text().splitlines()
        )
        meter.start(tmp_path / "testing", "testing")
        time.sleep(0.4)
        trace = meter.stop()
        volts, amps = meter.describe().ranges
    assert meter.describe().ranges == ["V Auto", "A Auto"]  # initial ranges restored
    assert volts == "V 230"
    assert float(amps.split()[1]) == pytest.approx(1.1 * max_amps, rel=1e-4)
    assert trace.sample_count >= 2
    assert re.fullmatch(SESSION + "_testing", spl_mark(tmp_path / "testing" / "spl.txt"))
    summary = (tmp_path / "testing" / "ptd_out.txt").read_text().splitlines()
    assert summary[0].startswith("Watts,") and summary[1].startswith("Uncertainty,")


def test_unreachable_meter_names_host_port_and_fix() -> None:
    port = free_port()
    meter = PtdMeter({"name": "gone", "host": "127.0.0.1", "port": port, "timeout_s": 2})
    with pytest.raises(MeterError) as error:
        meter.open()
    message = str(error.value)
    assert f"127.0.0.1:{port}" in message and "start ptd" in message
    assert "\n" not in message


def test_not_ptdaemon_is_refused(tmp_path: Path) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        meter = PtdMeter({"name": "imposter", "host": "127.0.0.1", "port": port, "timeout_s": 2})

        def answer() -> None:
            conn, _ = server.accept()
            with conn:
                conn.recv(100)
                conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")

        thread = threading.Thread(target=answer)
        thread.start()
        with pytest.raises(MeterError, match="not PTDaemon"):
            meter.open()
        thread.join()


@pytest.mark.parametrize("fault", ["stop_answering_after", "drop_after"])
def test_meter_stopping_mid_run_keeps_the_trace(
    activity: Activity, tmp_path: Path, fault: str
) -> None:
    meter = virtual_meter(activity, **{fault: 0.8})
    trace = record_through_fault(meter, tmp_path / "power", 2.5, "PTDaemon at", "ranging")
    assert trace.status.startswith("stopped: PTDaemon at 127.0.0.1:")
    assert trace.sample_count >= 3  # what arrived before the fault is kept
    assert trace.events("gap")


def test_garbage_lines_are_events_not_samples(activity: Activity, tmp_path: Path) -> None:
    trace = record(virtual_meter(activity, garbage_every=3), tmp_path / "power", 1.2, "ranging")
    assert trace.status == "complete"
    garbage = trace.events("message")
    assert len(garbage) >= 3
    assert all("unparseable" in event["text"] for event in garbage)
    _, watts = samples(trace)
    assert np.all(np.abs(watts - IDLE_W) < 0.1)  # no garbage became a reading
    total = trace.sample_count + len(garbage)
    assert len(garbage) == total // 3


def test_overload_is_reported(activity: Activity, tmp_path: Path) -> None:
    # A 12 V load ranged while idle (0.17 A -> 0.5 A range) then drawing 2.5 A: over range.
    with virtual_meter(activity, volts=12, pf=1.0, active_w=30.0) as meter:
        meter.start(tmp_path / "ranging", "ranging")
        time.sleep(0.5)
        meter.stop()
        meter.start(tmp_path / "testing", "testing")
        time.sleep(0.3)
        activity.state("active")
        time.sleep(0.6)
        trace = meter.stop()
    overloads = trace.events("overload")
    assert len(overloads) >= 3
    assert "over range" in overloads[0]["text"]
    _, watts = samples(trace)
    assert watts.max() < 30.0  # overloaded readings are not in the trace
    assert trace.status == "complete"


def test_meter_profiles_validate() -> None:
    for name in ("virtual-ptd", "ptd-wt310"):
        profile = load_meter_profile(name)
        meter = PtdMeter(profile)
        assert meter.driver == "ptd" and PtdMeter.needs_ranging
    assert load_meter_profile("virtual-ptd")["emulator"]["idle_w"] > 0


def test_mlcommons_session_laid_out_unchanged(tmp_path: Path) -> None:
    session = tmp_path / "client-out" / "2026-01-02_03-04-05_edgebench"
    for folder, names in mlcommons_power.REQUIRED.items():
        (session / folder).mkdir(parents=True)
        for name in names:
            (session / folder / name).write_bytes(f"{folder}/{name}\r\n".encode())
    assert mlcommons_power.latest_session(tmp_path / "client-out") == session
    performance = tmp_path / "results" / "sys" / "resnet" / "Offline" / "performance"
    written = mlcommons_power.lay_out(session, performance)
    assert len(written) == sum(len(names) for names in mlcommons_power.REQUIRED.values())
    for path in written:
        relative = path.relative_to(performance)
        assert path.read_bytes() == (session / relative).read_bytes()
    (session / "run_1" / "spl.txt").unlink()
    with pytest.raises(MeterError, match=r"lacks run_1/spl\.txt"):
        mlcommons_power.lay_out(session, tmp_path / "other")
    assert not (tmp_path / "other").exists()

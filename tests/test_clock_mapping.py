"""Clock mapping: the estimator on synthetic links, then against the agent's real `--clock`
server with a known injected offset and drift, then through a whole `edgebench run`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from edgebench.agent.clock import DRIFT_ENV, HELLO, OFFSET_ENV, DeviceClock
from edgebench.agent.recorder import QueryRecorder, read_queries
from edgebench.devices.local import LocalDevice, agent_environment
from edgebench.metrics.clock_mapping import (
    ClockAnchor,
    ClockChannel,
    ClockError,
    ClockMapping,
    anchor_from_rounds,
    estimate_offset,
    measure_subprocess,
)

from .support import REPO, run_json

SERVER = [sys.executable, "-m", "edgebench.agent", "--clock"]
OFFSET_NS = 123_456_000  # +123.456 ms
DRIFT_PPM = 50.0


class SimulatedLink:
    """A device whose clock is host + offset + drift, behind delays drawn per direction."""

    def __init__(
        self,
        offset_ns: float,
        drift_ppm: float,
        forward: Callable[[], float],
        backward: Callable[[], float],
        host_ns: int = 10**12,
    ) -> None:
        self.offset_ns, self.drift_ppm = offset_ns, drift_ppm
        self.forward, self.backward = forward, backward
        self.host_ns = host_ns

    def true_offset(self, host_ns: float) -> float:
        return self.offset_ns + self.drift_ppm * 1e-6 * host_ns

    def exchange(self) -> tuple[int, int, int]:
        send = self.host_ns
        at_device = send + self.forward()
        device = round(at_device + self.true_offset(at_device))
        receive = round(at_device + self.backward())
        self.host_ns = receive + 2000
        return send, device, receive

    def advance(self, seconds: float) -> None:
        self.host_ns += int(seconds * 1e9)


def uniform(rng: np.random.Generator, low_us: float, high_us: float) -> Callable[[], float]:
    return lambda: float(rng.uniform(low_us, high_us) * 1e3)


def test_symmetric_delays_give_the_offset_within_half_the_best_round_trip() -> None:
    rng = np.random.default_rng(1)
    link = SimulatedLink(5e6, 0.0, uniform(rng, 20, 200), uniform(rng, 20, 200))
    anchor = estimate_offset(link.exchange, rounds=200)
    assert anchor.rounds == 200
    assert abs(anchor.offset_ns - link.true_offset(anchor.host_ns)) <= anchor.bound_ns
    assert anchor.bound_ns <= anchor.best_round_trip_ns / 2 + 10


def test_asymmetric_delays_bias_the_midpoint_but_stay_inside_the_bound() -> None:
    """100 us out, 10 us back, always: the midpoint is 45 us off, and the bound says so."""
    link = SimulatedLink(-3e9, 0.0, lambda: 100e3, lambda: 10e3)
    anchor = estimate_offset(link.exchange, rounds=50)
    error = anchor.offset_ns - link.true_offset(anchor.host_ns)
    assert error == pytest.approx(45e3, abs=5)
    assert abs(error) <= anchor.bound_ns
    assert anchor.bound_ns == pytest.approx(55e3, abs=10)


def test_random_asymmetry_never_escapes_the_bound() -> None:
    rng = np.random.default_rng(7)
    for trial in range(50):
        link = SimulatedLink(
            float(rng.uniform(-1e9, 1e9)),
            float(rng.uniform(-100, 100)),
            uniform(rng, 5, 400),
            uniform(rng, 1, 30),
            host_ns=int(rng.uniform(1e12, 1e15)),
        )
        anchor = estimate_offset(link.exchange, rounds=100)
        error = anchor.offset_ns - link.true_offset(anchor.host_ns)
        assert abs(error) <= anchor.bound_ns, (trial, error, anchor)


def test_rounds_with_opposite_asymmetry_intersect_to_a_tighter_bound() -> None:
    """One round fast out, one fast back: together they pin the offset to ~1 us."""
    delays = iter([(1e3, 50e3), (50e3, 1e3)] * 10)
    pair = [0.0, 0.0]

    def forward() -> float:
        pair[:] = next(delays)
        return pair[0]

    link = SimulatedLink(7e6, 0.0, forward, lambda: pair[1])
    anchor = estimate_offset(link.exchange, rounds=20, keep=1.0)
    assert anchor.best_round_trip_ns == 51_000
    assert anchor.bound_ns < 5_000  # half the best round trip would be 25.5 us
    assert abs(anchor.offset_ns - link.true_offset(anchor.host_ns)) <= anchor.bound_ns


def test_disagreeing_rounds_fall_back_to_the_best_one() -> None:
    rounds = [(0, 1_000_000, 10_000), (20_000, 5_000_000, 50_000)]  # a 4 ms clock step
    anchor = anchor_from_rounds(rounds, keep=1.0)
    assert "disagree" in anchor.note
    assert anchor.offset_ns == 1_000_000 - 5_000
    assert anchor.bound_ns >= 5_000


def test_a_host_clock_running_backwards_is_refused() -> None:
    with pytest.raises(ClockError, match="backwards"):
        anchor_from_rounds([(100, 5, 50)])


def test_two_anchors_give_drift_and_a_mapping_whose_error_stays_inside_its_bound() -> None:
    rng = np.random.default_rng(3)
    link = SimulatedLink(2.5e8, 50.0, uniform(rng, 50, 500), uniform(rng, 50, 500))
    before = estimate_offset(link.exchange)
    link.advance(30)
    after = estimate_offset(link.exchange)
    mapping = ClockMapping.from_anchors(before, after, channel="simulated")
    assert mapping.tier == "round-trip"
    assert abs(mapping.drift_ppm - 50.0) <= mapping.drift_uncertainty_ppm
    assert abs(mapping.offset_ns - link.true_offset(before.host_ns)) <= before.bound_ns
    for host in np.linspace(before.host_ns - 60e9, after.host_ns + 60e9, 25):
        device = host + link.true_offset(host)
        error = abs(mapping.to_host_ns(device) - host)
        assert error <= mapping.uncertainty_at(device), (host, error)
    middle = (before.host_ns + after.host_ns) / 2
    assert mapping.uncertainty_at_host(middle) <= mapping.uncertainty_ns
    # Far from the anchors the bound keeps growing: extrapolation is known less well.
    assert mapping.uncertainty_at_host(after.host_ns + 600e9) > mapping.uncertainty_at_host(
        after.host_ns + 60e9
    )


def test_one_anchor_alone_assumes_the_worst_drift() -> None:
    anchor = ClockAnchor(host_ns=10**12, offset_ns=1e6, bound_ns=100.0, rounds=10)
    mapping = ClockMapping.from_anchors(anchor, None)
    assert mapping.drift_ppm == 0.0
    assert "before the run only" in mapping.method
    ten_seconds_later = 10**12 + 10e9
    assert mapping.uncertainty_at_host(ten_seconds_later) == pytest.approx(100 + 500e-6 * 10e9)


def test_same_clock_identity() -> None:
    mapping = ClockMapping.identity()
    assert mapping.tier == "same-clock"
    assert (mapping.offset_ns, mapping.drift_ppm, mapping.uncertainty_ns) == (0.0, 0.0, 0.0)
    times = np.array([5, 10**13], dtype=np.int64)
    assert np.array_equal(mapping.to_host_ns(times), times)
    assert float(mapping.uncertainty_at(10**13)) == 0.0


def test_mapping_round_trips_through_json() -> None:
    before = ClockAnchor(10**12, 4.5e6, 3000.0, 200, 6000)
    after = ClockAnchor(10**12 + 10**10, 4.5e6 + 500, 3100.0, 200, 6100)
    mapping = ClockMapping.from_anchors(before, after, channel="ssh")
    data = json.loads(json.dumps(mapping.to_dict()))
    for key in ("tier", "offset_ns", "drift_ppm", "uncertainty_ns", "rounds"):
        assert key in data
    assert data["best_round_trip_ns"] == 6000 and "method" in data
    assert ClockMapping.from_dict(data) == mapping
    with pytest.raises(ValueError, match="tier"):
        ClockMapping.from_dict(dict(data, tier="guessed"))


# --- the agent's clock server -------------------------------------------------------------


def server_env(offset_ns: int | None = None, drift_ppm: float | None = None) -> dict[str, str]:
    env = agent_environment()
    env.pop(OFFSET_ENV, None)
    env.pop(DRIFT_ENV, None)
    if offset_ns is not None:
        env[OFFSET_ENV] = str(offset_ns)
    if drift_ppm is not None:
        env[DRIFT_ENV] = str(drift_ppm)
    return env


def test_clock_server_greets_answers_each_line_and_exits_at_eof() -> None:
    with subprocess.Popen(
        SERVER, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=server_env()
    ) as process:
        assert process.stdout.readline().decode().startswith(HELLO)
        answers = []
        for _ in range(3):
            process.stdin.write(b"\n")
            process.stdin.flush()
            answers.append(int(process.stdout.readline()))
        process.stdin.close()
        assert process.wait(10) == 0
    assert answers == sorted(answers)
    assert abs(answers[-1] - time.monotonic_ns()) < 10e9  # the real CLOCK_MONOTONIC


def test_injected_offset_and_drift_are_recovered_within_the_stated_uncertainty() -> None:
    env = server_env(OFFSET_NS, DRIFT_PPM)
    before = measure_subprocess(SERVER, env)
    time.sleep(2.0)
    after = measure_subprocess(SERVER, env)
    mapping = ClockMapping.from_anchors(before, after, channel="pipes")
    clock = DeviceClock(OFFSET_NS, DRIFT_PPM)
    for anchor in (before, after):
        truth = clock.transform(anchor.host_ns) - anchor.host_ns
        assert abs(anchor.offset_ns - truth) <= anchor.bound_ns, (anchor, truth)
    assert abs(mapping.drift_ppm - DRIFT_PPM) <= mapping.drift_uncertainty_ppm
    assert mapping.drift_uncertainty_ppm < 20  # a useful estimate, not only an honest one
    # Any instant between the anchors maps back to the host time that produced it.
    for host in np.linspace(before.host_ns, after.host_ns, 9):
        device = clock.transform(int(host))
        assert abs(mapping.to_host_ns(device) - host) <= mapping.uncertainty_at(device)
    print(
        f"\npipes: best round trip {mapping.best_round_trip_ns} ns; offset error "
        f"{before.offset_ns - (clock.transform(before.host_ns) - before.host_ns):+.0f} ns "
        f"(bound {before.bound_ns:.0f}); drift {mapping.drift_ppm:.3f} ppm "
        f"(+-{mapping.drift_uncertainty_ppm:.3f}); uncertainty {mapping.uncertainty_ns:.0f} ns"
    )


def test_unshifted_server_measures_zero_offset() -> None:
    anchor = measure_subprocess(SERVER, server_env())
    assert abs(anchor.offset_ns) <= anchor.bound_ns
    assert anchor.bound_ns < 1e6


def test_text_mode_file_objects_speak_the_same_protocol() -> None:
    with subprocess.Popen(
        SERVER, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=server_env(), text=True
    ) as process:
        channel = ClockChannel(process.stdin, process.stdout)
        anchor = channel.measure(rounds=20)
        process.stdin.close()
        process.wait(10)
    assert abs(anchor.offset_ns) <= anchor.bound_ns


def test_noise_before_the_greeting_is_skipped_and_a_dead_server_is_a_clear_error() -> None:
    noisy = [
        sys.executable,
        "-c",
        "import sys; print('motd: welcome'); sys.stdout.flush(); "
        "from edgebench.agent.clock import serve; serve()",
    ]
    assert measure_subprocess(noisy, server_env(), rounds=10).rounds == 10
    dead = [sys.executable, "-c", "import sys; sys.stderr.write('no runtime here\\n')"]
    with pytest.raises(ClockError, match=r"closed before greeting.*no runtime here"):
        measure_subprocess(dead, server_env())


def test_local_device_is_same_clock_unless_a_test_shifts_the_agent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(OFFSET_ENV, raising=False)
    monkeypatch.delenv(DRIFT_ENV, raising=False)
    with LocalDevice({"name": "local"}) as device:
        assert device.measure_clock().same_clock
        monkeypatch.setenv(OFFSET_ENV, str(OFFSET_NS))
        anchor = device.measure_clock()
    assert not anchor.same_clock
    assert abs(anchor.offset_ns - OFFSET_NS) <= anchor.bound_ns + 1  # no drift injected


# --- the recorder writes the device clock --------------------------------------------------


def test_recorder_maps_each_chunk_into_the_device_clock(tmp_path: Path) -> None:
    clock = DeviceClock(OFFSET_NS, DRIFT_PPM)
    recorder = QueryRecorder(str(tmp_path / "q"), chunk=4, clock=clock)
    raw = [time.monotonic_ns() + 1000 * i for i in range(10)]
    for i, t in enumerate(raw):
        recorder.record(i, t, t + 500)
    assert recorder.close() == 10
    index, issue, complete = read_queries(str(tmp_path / "q"))
    assert index.tolist() == list(range(10))
    assert issue.tolist() == [clock.transform(t) for t in raw]
    assert complete.tolist() == [clock.transform(t + 500) for t in raw]


def _run(model: Path, cwd: Path, env: dict[str, str]) -> tuple[dict, Path, int, int]:
    cwd.mkdir()
    start = time.monotonic_ns()
    [result] = run_json(
        "--model", str(model), "-s", "SingleStream", "--duration", "1", "--results", "res",
        cwd=cwd, env=env,
    )  # fmt: skip
    end = time.monotonic_ns()
    assert result["status"] == "complete", result
    return result, cwd / "res" / result["run_id"], start, end


def test_per_query_times_and_clock_json_follow_the_injected_clock(
    ad_model: Path, tmp_path: Path
) -> None:
    """Same model twice, with and without a shifted agent clock (+1000 s, so unmistakable)."""
    offset = 1000 * 10**9
    clean = {OFFSET_ENV: "", DRIFT_ENV: ""}
    plain, plain_dir, start0, end0 = _run(ad_model, tmp_path / "plain", clean)
    shifted_env = {OFFSET_ENV: str(offset), DRIFT_ENV: str(DRIFT_PPM)}
    shifted, shifted_dir, start1, end1 = _run(ad_model, tmp_path / "shifted", shifted_env)
    clock = DeviceClock(offset, DRIFT_PPM)

    _, issue0, complete0 = read_queries(str(plain_dir / "queries"))
    assert start0 <= issue0.min() and complete0.max() <= end0
    _, issue1, complete1 = read_queries(str(shifted_dir / "queries"))
    assert issue1.min() > end1  # nowhere near the host's clock
    assert clock.transform(start1) <= issue1.min() and complete1.max() <= clock.transform(end1)
    for name, directory in (("plain", plain_dir), ("shifted", shifted_dir)):
        record = json.loads((directory / "record.json").read_text())
        queries = read_queries(str(directory / "queries"))
        assert record["start_ns"] <= queries[1].min() <= queries[2].max() <= record["end_ns"], name
    record = json.loads((shifted_dir / "record.json").read_text())
    assert record["clock_test_injection"] == {"offset_ns": offset, "drift_ppm": DRIFT_PPM}
    # Latencies are differences: the shift cancels, 50 ppm of a few us is below a ns.
    assert abs(np.median(complete1 - issue1) - np.median(complete0 - issue0)) < 2000

    plain_clock = ClockMapping.from_dict(json.loads((plain_dir / "clock.json").read_text()))
    assert plain_clock.tier == "same-clock"
    mapping = ClockMapping.from_dict(json.loads((shifted_dir / "clock.json").read_text()))
    assert mapping.tier == "round-trip" and len(mapping.anchors) == 2
    host = mapping.to_host_ns(issue1)
    bound = mapping.uncertainty_at(issue1)
    assert np.all(host >= start1 - bound) and np.all(host <= end1 + bound)
    assert abs(mapping.drift_ppm - DRIFT_PPM) <= mapping.drift_uncertainty_ppm
    assert "clock.json" in shifted["files"] and "clock.json" in plain["files"]


def test_bad_injection_values_are_named() -> None:
    env = server_env()
    env[OFFSET_ENV] = "12ms"
    done = subprocess.run(SERVER, input=b"", capture_output=True, env=env, check=False)
    assert done.returncode != 0
    assert OFFSET_ENV.encode() in done.stderr


def test_agent_package_stays_importable_alone() -> None:
    """clock.py and monitor.py must not reach into the rest of edgebench."""
    code = (
        "import sys\n"
        "for name in ('edgebench.metrics', 'edgebench.devices', 'edgebench.runner'):\n"
        "    sys.modules[name] = None\n"
        "import edgebench.agent.clock, edgebench.agent.monitor, edgebench.agent.recorder\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=str(REPO)), check=False
    )
    assert done.returncode == 0

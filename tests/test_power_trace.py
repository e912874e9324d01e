"""PowerTrace on disk: chunking, both time layouts, marks/events, crash-left partial traces."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from edgebench.meters.base import MeterInfo
from edgebench.metrics.power_trace import PowerTrace, PowerTraceWriter, TraceError

from .support import REPO

METER = MeterInfo("test", "synthetic", None, 1000.0, accuracy={"reading_pct": 0.1}).to_dict()


def collect(trace: PowerTrace) -> tuple[np.ndarray, np.ndarray]:
    pieces = list(trace.chunks())
    return np.concatenate([t for t, _ in pieces]), np.concatenate([v for _, v in pieces])


def test_uniform_samples_round_trip_across_chunks(tmp_path: Path) -> None:
    writer = PowerTraceWriter(tmp_path, "power", METER, sample_period_s=1e-3, chunk_samples=700)
    rng = np.random.default_rng(1)
    values = rng.uniform(0.5, 2.0, 2500).astype(np.float32)
    writer.append(values[:1000], start=10.0)
    writer.append(values[1000:1800])  # continues where the last append ended
    writer.append(values[1800:])
    trace = writer.close()
    assert trace.status == "complete"
    assert trace.sample_count == 2500
    assert [c["count"] for c in trace.chunk_entries] == [700, 700, 700, 400]
    times, read = collect(trace)
    np.testing.assert_array_equal(read, values)
    np.testing.assert_allclose(times, 10.0 + np.arange(2500) * 1e-3, rtol=0, atol=1e-9)
    assert trace.span == pytest.approx((10.0, 10.0 + 2499e-3))
    assert all(c.period == 1e-3 and c.stored_times is None for c in trace.iter_chunks())


def test_restart_of_uniform_stream_starts_a_new_chunk(tmp_path: Path) -> None:
    writer = PowerTraceWriter(tmp_path, "energy", METER, sample_period_s=1e-3)
    writer.append(np.ones(100), start=0.0)
    writer.append(np.ones(100), start=0.5)  # 0.4 s of samples missing: not the same chunk
    trace = writer.close()
    starts = [c["start"] for c in trace.chunk_entries]
    assert starts == [0.0, 0.5]
    assert trace.chunk_entries[0]["end"] == pytest.approx(0.099)


def test_explicit_times_and_current_voltage(tmp_path: Path) -> None:
    writer = PowerTraceWriter(tmp_path, "current_voltage", METER, chunk_samples=64)
    times = np.cumsum(np.full(150, 0.01)) + 1e5  # large monotonic-clock values need float64
    data = np.column_stack([np.linspace(0.1, 0.2, 150), np.full(150, 5.0)])
    writer.append(data[:100], times=times[:100])
    writer.append(data[100:], times=times[100:])
    trace = writer.close()
    read_times, read = collect(trace)
    np.testing.assert_array_equal(read_times, times)
    np.testing.assert_allclose(read, data, rtol=1e-7)
    assert trace.meta["units"] == ["A", "V"]


def test_switching_between_layouts_keeps_order(tmp_path: Path) -> None:
    writer = PowerTraceWriter(tmp_path, "power", METER, sample_period_s=0.1)
    writer.append(np.array([1.0, 2.0]), start=0.0)
    writer.append(np.array([3.0]), times=np.array([0.25]))
    writer.append(np.array([4.0, 5.0]), start=0.3)
    times, values = collect(writer.close())
    np.testing.assert_allclose(times, [0.0, 0.1, 0.25, 0.3, 0.4])
    np.testing.assert_array_equal(values, [1, 2, 3, 4, 5])


def test_marks_and_events(tmp_path: Path) -> None:
    writer = PowerTraceWriter(tmp_path, "power", METER, sample_period_s=1e-3)
    writer.append(np.ones(10), start=0.0)
    writer.mark(0.002, "timestamp", "falling")
    writer.mark(0.004, "trigger")
    writer.event(0.005, "overload", "current above 10 mA range")
    trace = writer.close()
    assert [m["t"] for m in trace.marks("timestamp")] == [0.002]
    assert trace.marks()[1] == {"t": 0.004, "kind": "trigger", "edge": None}
    assert trace.events("overload")[0]["text"] == "current above 10 mA range"
    assert trace.events("gap") == []


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda w: w.append(np.ones(3)), "needs start="),
        (lambda w: w.append(np.ones((3, 2)), start=0.0), "must be 1-D"),
        (lambda w: w.append(np.ones(3), times=np.ones(2)), "3 values but 2 times"),
    ],
)
def test_bad_appends_are_one_line_errors(tmp_path: Path, call, message: str) -> None:
    writer = PowerTraceWriter(tmp_path, "power", METER, sample_period_s=1e-3)
    with pytest.raises(TraceError, match=message):
        call(writer)


def test_bad_construction_and_open(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="trace kind 'watts'"):
        PowerTraceWriter(tmp_path / "a", "watts", METER)
    PowerTraceWriter(tmp_path / "b", "power", METER, sample_period_s=1.0).close()
    with pytest.raises(TraceError, match="already holds a trace"):
        PowerTraceWriter(tmp_path / "b", "power", METER)
    with pytest.raises(TraceError, match=r"meta\.json missing"):
        PowerTrace.open(tmp_path / "nothing")
    with pytest.raises(TraceError, match="holds no samples"):
        _ = PowerTrace.open(tmp_path / "b").span
    writer = PowerTraceWriter(tmp_path / "c", "power", METER, sample_period_s=1.0)
    writer.append(np.ones(4), start=0.0)
    writer.close()
    (tmp_path / "c" / "chunk_000000.npz").write_bytes(b"garbage")
    with pytest.raises(TraceError, match="unreadable chunk"):
        list(PowerTrace.open(tmp_path / "c").chunks())


def test_killed_writer_leaves_a_readable_partial_trace(tmp_path: Path) -> None:
    """A process that dies mid-recording: flushed chunks and every mark survive."""
    script = textwrap.dedent(
        f"""
        import os, numpy as np
        from pathlib import Path
        from edgebench.metrics.power_trace import PowerTraceWriter
        w = PowerTraceWriter(Path({str(tmp_path)!r}), "power", {{}}, sample_period_s=1e-3,
                             chunk_samples=1000)
        w.append(np.full(2500, 3.0), start=0.0)   # two full chunks reach disk, 500 pending
        w.mark(1.5, "timestamp", "falling")
        os._exit(9)                                # no close(): a crash
        """
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, timeout=60, check=False)
    assert done.returncode == 9
    trace = PowerTrace.open(tmp_path)
    assert trace.status == "recording"
    assert trace.sample_count == 2000
    assert trace.marks() == [{"t": 1.5, "kind": "timestamp", "edge": "falling"}]
    assert json.loads((tmp_path / "meta.json").read_text())["span"] == [0.0, 1.999]


def test_slow_stream_is_flushed_by_time(tmp_path: Path) -> None:
    writer = PowerTraceWriter(tmp_path, "power", METER, sample_period_s=1.0, flush_interval_s=0)
    writer.append(np.array([5.0]), start=0.0)
    assert PowerTrace.open(tmp_path).sample_count == 1  # on disk before close
    writer.append(np.array([6.0]))
    assert writer.close().chunk_entries[1]["start"] == 1.0


def test_stopped_status_is_kept(tmp_path: Path) -> None:
    writer = PowerTraceWriter(tmp_path, "power", METER, sample_period_s=1.0)
    writer.append(np.ones(3), start=0.0)
    writer.event(2.5, "message", "meter stopped answering")
    trace = writer.close("stopped: no data for 5 s")
    assert PowerTrace.open(tmp_path).status == "stopped: no data for 5 s"
    assert trace.sample_count == 3
    with pytest.raises(TraceError, match="after close"):
        writer.append(np.ones(1))

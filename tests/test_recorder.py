"""The agent's files on a disk that fills up: every failed write is reported, none is silent.

Each test writes to a real tmpfs of a few dozen KiB (root only, as in CI), so the errors are
the kernel's own ENOSPC, not an imitation of it.
"""

from __future__ import annotations

import errno
import json
from pathlib import Path

import numpy as np
import pytest

from edgebench.agent.loadgen_loop import LOG_FILES, check_logs
from edgebench.agent.main import RunRecordWriter
from edgebench.agent.recorder import QUERY_FILES, QueryRecorder, out_of_space, read_queries

from .ssh_fixtures import fill, tmpfs

CHUNK = 1024  # 8 KiB per file and chunk: a 64 KiB disk holds two chunks of the three files


def test_the_writer_threads_error_is_kept_and_the_files_stay_aligned(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "disk", 64 << 10) as disk:
        recorder = QueryRecorder(str(disk / "queries"), chunk=CHUNK)
        for index in range(20 * CHUNK):
            recorder.record(index, 10 * index, 10 * index + 5)
        written = recorder.close()
        assert recorder.close() == written  # a second close only reports
        sizes = {(disk / "queries" / name).stat().st_size for name in QUERY_FILES}
        indices, issues, completions = read_queries(str(disk / "queries"))
        reason = out_of_space(recorder.error, str(disk))  # type: ignore[arg-type]
    assert isinstance(recorder.error, OSError) and recorder.error.errno == errno.ENOSPC
    assert 0 < written < 20 * CHUNK and written % CHUNK == 0
    assert sizes == {8 * written}
    assert np.array_equal(indices, np.arange(written))
    assert np.array_equal(completions - issues, np.full(written, 5))
    assert reason is not None and reason.startswith(f"writing the run's files in {disk} failed")
    assert "No space left on device" in reason and "free space on the device" in reason


def test_out_of_space_leaves_other_errors_alone() -> None:
    assert out_of_space(OSError(errno.EACCES, "Permission denied"), "/") is None
    assert out_of_space(ValueError("bad plan"), "/") is None


def test_the_reserve_lets_the_final_record_be_written_on_a_full_disk(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "disk", 256 << 10) as disk:
        writer = RunRecordWriter(str(disk), {"scenario": "SingleStream"})
        fill(disk)
        with pytest.raises(OSError):
            (disk / "more").write_bytes(b"x" * 4096)  # the disk really is full
        writer.update(status="failed", error="disk full", padding="x" * 8000)
        record = json.loads((disk / "record.json").read_text())
        left = sorted(p.name for p in disk.iterdir())
    assert record["status"] == "failed" and record["error"] == "disk full"
    assert "record.json.reserve" not in left  # spent on that last write


def test_loadgen_logs_cut_short_fail_the_run(tmp_path: Path) -> None:
    for name in LOG_FILES:
        (tmp_path / name).write_text('{"complete": true}\n')
    check_logs(str(tmp_path))
    (tmp_path / "mlperf_log_detail.txt").write_text(':::MLLOG {"key": "result_valid')
    with pytest.raises(OSError) as caught:
        check_logs(str(tmp_path))
    assert caught.value.errno == errno.ENOSPC
    reason = out_of_space(caught.value, str(tmp_path))
    assert reason is not None and "LoadGen's log is cut short: mlperf_log_detail.txt" in reason
    (tmp_path / "mlperf_log_summary.txt").write_text("")
    with pytest.raises(OSError):
        check_logs(str(tmp_path))

"""Per-query times, streamed to disk in chunks so a 1e8-query run stays bounded in memory.

Three flat little-endian int64 files (sample index, issue ns, completion ns, all in the
device's CLOCK_MONOTONIC) grow by one chunk at a time; a crash loses at most the chunk in
flight, and `np.fromfile` reads them back without any parser. The hot path only appends to
`array.array` buffers; the full buffer is handed to a writer thread so the query that fills
it pays for a buffer swap, not for disk I/O.

A full disk must not pass for a short run: the writer thread keeps the first write error
(and trims the three files back to the last sample all of them hold), `close()` reports what
is really on disk, and the agent fails the run with `out_of_space()`'s reason. A small
`SpaceReserve` keeps room for that last record.json when nothing else fits.

The loops read raw CLOCK_MONOTONIC; the writer thread maps each chunk into the device clock
(see clock.py) with one vectorised step, so the files agree with what the `--clock` server
answers, and the per-query path stays the same whether a test shifts the clock or not.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import queue
import threading
from array import array
from typing import List, Optional, Tuple

from .clock import DeviceClock, clock_from_env

QUERY_FILES = ("index.i64", "issue_ns.i64", "complete_ns.i64")
CHUNK_QUERIES = 1 << 16
# Errors that mean "the files no longer fit". EFBIG: past a file-size limit (ulimit -f);
# CPython ignores SIGXFSZ, so such a write fails like a full disk instead of killing the agent.
NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
RESERVE_BYTES = 64 << 10  # record.json is ~6 KB; the rest is margin for a grown record


class QueryRecorder:
    """Appends (sample index, issue ns, completion ns) per completed sample."""

    def __init__(
        self, directory: str, chunk: int = CHUNK_QUERIES, clock: Optional[DeviceClock] = None
    ) -> None:
        os.makedirs(directory, exist_ok=True)
        self.directory = directory
        self.chunk = chunk
        self.clock = clock if clock is not None else clock_from_env()
        self.count = 0
        self.written = 0
        self.error: Optional[OSError] = None
        self._files = [open(os.path.join(directory, name), "wb") for name in QUERY_FILES]
        self._pending: "queue.Queue[Optional[Tuple[array, array, array]]]" = queue.Queue()
        self._writer = threading.Thread(target=self._write_loop, name="query-writer", daemon=True)
        self._writer.start()
        self._new_buffers()

    def _new_buffers(self) -> None:
        self.indices = array("q")
        self.issues = array("q")
        self.completions = array("q")
        self._flushed = self.count

    def record(self, index: int, issue_ns: int, complete_ns: int) -> None:
        self.indices.append(index)
        self.issues.append(issue_ns)
        self.completions.append(complete_ns)
        self.count += 1
        if self.count - self._flushed >= self.chunk:
            self.flush()

    def flush(self) -> None:
        if self.count != self._flushed:
            self._pending.put((self.indices, self.issues, self.completions))
            self._new_buffers()

    def _write_loop(self) -> None:
        while True:
            item = self._pending.get()
            if item is None:
                return
            if self.error is not None:
                continue  # nothing more fits; keep draining so the loop never blocks on us
            try:
                self._write(*item)
            except OSError as error:  # name the directory: a failed flush names no file
                self.error = OSError(error.errno, error.strerror, self.directory)
                self._trim()

    def _write(self, indices: array, issues: array, completions: array) -> None:
        if not self.clock.identity:
            issues = self.clock.transform_array(issues)
            completions = self.clock.transform_array(completions)
        for handle, values in zip(self._files, (indices, issues, completions)):
            values.tofile(handle)
            handle.flush()
        self.written += len(indices)

    def _trim(self) -> None:
        """After a failed write: drop the unwritten buffers and cut every file to `written`
        samples (truncating needs no free space), so the three files stay aligned."""
        for handle in self._files:
            with contextlib.suppress(OSError):
                handle.close()  # closes the descriptor even when the final flush fails
        for name in QUERY_FILES:
            with contextlib.suppress(OSError):
                os.truncate(os.path.join(self.directory, name), 8 * self.written)

    def close(self) -> int:
        """Write what is buffered; returns the number of samples on disk (see `error`).

        A LoadGen thread still running after an interrupt may go on appending; those late
        samples are not written, and the returned count says exactly what was. Safe to call
        twice (the second call only returns the count).
        """
        if self._writer.is_alive():
            self.flush()
            self._pending.put(None)
            self._writer.join()
        for handle in self._files:
            handle.close()
        return self.written


def out_of_space(error: BaseException, directory: str) -> Optional[str]:
    """The one-line reason for a run whose files stopped fitting, or None for other errors."""
    if not isinstance(error, OSError) or error.errno not in NO_SPACE_ERRNOS:
        return None
    try:
        info = os.statvfs(directory)
        free = "%.0f KiB free" % (info.f_bavail * info.f_frsize / 1024)
    except OSError:
        free = "free space unknown"
    what = error.strerror or os.strerror(error.errno)
    if error.filename:
        what += ": " + os.path.basename(str(error.filename))
    return (
        "writing the run's files in %s failed (%s; %s there): free space on the device "
        "(or move the output to a larger filesystem) and run again" % (directory, what, free)
    )


class SpaceReserve:
    """A file holding RESERVE_BYTES so the run's final record.json fits on a full disk.

    Without it a full disk leaves record.json saying "running" forever: the very write that
    would report the failure finds no space. The writer releases it and retries once.
    """

    def __init__(self, path: str, size: int = RESERVE_BYTES) -> None:
        self.path = path
        try:
            with open(path, "wb") as handle:
                handle.write(bytes(size))  # real blocks: a sparse file would reserve nothing
        except OSError as error:  # raised by the final flush, which does not name the file
            raise OSError(error.errno, error.strerror, path) from None

    def release(self) -> bool:
        """Free the room (to retry a failed write, or when the run is over); False if gone."""
        try:
            os.remove(self.path)
        except FileNotFoundError:
            return False
        return True


class AccuracyLog:
    """The JSON-array accuracy log in LoadGen's layout (uppercase hex), written incrementally.

    The native loop uses it under its own file name, so it never passes for LoadGen's.
    """

    def __init__(self, path: str) -> None:
        self._handle = open(path, "w")
        self._handle.write("[\n")
        self._first = True
        self.entries = 0

    def add(self, seq_id: int, qsl_idx: int, data: bytes) -> None:
        separator = "" if self._first else ",\n"
        self._first = False
        entry = {"seq_id": seq_id, "qsl_idx": qsl_idx, "data": data.hex().upper()}
        self._handle.write(separator + json.dumps(entry))
        self.entries += 1

    def close(self) -> None:
        self._handle.write("\n]\n")
        self._handle.close()


def read_queries(directory: str) -> List["object"]:
    """Load the three per-query arrays (numpy int64) written by QueryRecorder."""
    import numpy as np

    arrays = [np.fromfile(os.path.join(directory, name), dtype="<i8") for name in QUERY_FILES]
    length = min(len(a) for a in arrays)
    return [a[:length] for a in arrays]

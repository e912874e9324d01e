"""Progress events on stdout, one JSON object per line, read by the host's progress bar.

A side thread samples the recorder's counter twice a second, so the per-query path does no
extra work for progress. Every event line starts with a marker so the host can tell events
from anything else a runtime prints.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Callable, Optional

EVENT_PREFIX = "@edgebench "


def emit(event: str, **fields: object) -> None:
    fields["event"] = event
    sys.stdout.write(EVENT_PREFIX + json.dumps(fields) + "\n")
    sys.stdout.flush()


class ProgressReporter:
    """Reports `count()` every `interval` seconds between start() and stop()."""

    def __init__(
        self,
        phase: str,
        count: Callable[[], int],
        expected_seconds: float,
        expected_queries: int = 0,
        interval: float = 0.5,
    ) -> None:
        self.phase = phase
        self.count = count
        self.expected_seconds = expected_seconds
        self.expected_queries = expected_queries
        self.interval = interval
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._started = 0.0

    def start(self) -> "ProgressReporter":
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._loop, name="progress", daemon=True)
        self._thread.start()
        return self

    def _report(self) -> None:
        emit(
            "progress",
            phase=self.phase,
            queries=self.count(),
            elapsed_s=round(time.monotonic() - self._started, 3),
            expected_s=self.expected_seconds,
            expected_queries=self.expected_queries,
        )

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._report()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._report()

    def __enter__(self) -> "ProgressReporter":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

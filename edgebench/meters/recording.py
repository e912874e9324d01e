"""One recording's way into its PowerTrace, as every driver needs it.

Whatever the instrument, a recording ends one of two ways: stop() closes the trace
"complete", or the first failure (a silent meter, a dead link, close() mid-run) records a
"gap" event and closes it "stopped: <why>", keeping every sample written before. Reader
threads, watchdogs and the caller may all end a recording at once, so both ways take one
lock and a second failure changes nothing. Drivers subclass Recording for their stream
decoding; the lifecycle and the wording of "stopped mid-run" stay here.
"""

from __future__ import annotations

import threading
from typing import ClassVar

from ..metrics.power_trace import PowerTrace, PowerTraceWriter
from .base import MeterError


class Recording:
    """A trace being written, its optional reader thread, and how it ended.

    `fix` ends the "stopped mid-run" error: what to check before rerunning (the USB link,
    the daemon, ...). A driver that reads in a thread overrides `_run`, or `poll` to have
    the default reader call it every `poll_s` until halted.
    """

    reader_name: ClassVar[str] = "meter-reader"
    poll_s: ClassVar[float] = 0.2

    def __init__(self, writer: PowerTraceWriter, fix: str) -> None:
        self.writer = writer
        self.fix = fix
        self.failure: str | None = None
        self._lock = threading.RLock()
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None

    # -- reader thread ---------------------------------------------------------------------
    def begin(self) -> None:
        """Start the reader thread."""
        self._thread = threading.Thread(target=self._run, name=self.reader_name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        """poll() every poll_s until halted; a MeterError ends the recording as stopped."""
        while not self._halt.wait(self.poll_s):
            try:
                self.poll()
            except MeterError as error:
                self.fail(str(error))
                return

    def poll(self) -> None:
        """Take what the meter holds beyond what was taken (polling drivers implement it)."""
        raise NotImplementedError(f"{type(self).__name__} reads in its own _run")

    def halt(self, timeout_s: float | None = None) -> bool:
        """Ask the reader to end, and wait for it; True once it has (or never started)."""
        self._halt.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            return not self._thread.is_alive()
        return True

    # -- the end ---------------------------------------------------------------------------
    def _flush(self) -> None:
        """Hand samples still held back to the writer (drivers that batch override it)."""

    def _failure_time(self) -> float:
        """Trace time the failure is recorded at: the last sample's."""
        return self.writer.last_time or 0.0

    def fail(self, why: str) -> None:
        """End the recording as stopped, keeping what was written; only the first counts."""
        with self._lock:
            if self.failure is not None:
                return
            self._flush()
            self.failure = why
            if not self.writer.closed:
                self.writer.event(self._failure_time(), "gap", why)
                self.writer.close(f"stopped: {why}")

    def finish(self) -> PowerTrace:
        """The complete trace; MeterError saying where the partial one is if it failed."""
        with self._lock:
            if self.failure is not None:
                raise MeterError(
                    f"{self.failure} mid-run; the samples so far are kept in "
                    f"{self.writer.directory} (status stopped); {self.fix}"
                )
            self._flush()
            return self.writer.close("complete")

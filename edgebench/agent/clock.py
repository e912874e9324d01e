"""The device clock as the agent reports it, and the `--clock` echo server the host times.

Every time the agent writes (per-query times, record.json's start and end, monitor samples)
and every time the clock server answers must come from one and the same clock, or the host's
offset estimate would not apply to the recorded data. That clock is CLOCK_MONOTONIC, unless a
test injects a known offset and drift through two TEST-ONLY environment variables:

    EDGEBENCH_TEST_CLOCK_OFFSET_NS   integer ns added to every reading
    EDGEBENCH_TEST_CLOCK_DRIFT_PPM   the clock runs this many ppm fast (float)

    device_ns = raw_ns + offset_ns + round(raw_ns * drift_ppm * 1e-6)

with raw_ns = CLOCK_MONOTONIC. Drift is counted from raw 0 (boot), so every process on the
machine (the agent run, the clock server, a later clock server) applies the same transform.
On loopback the true offset is zero; the injection is how tests show that the host's
estimator recovers a real device's offset and drift. Never set these for a measurement.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Callable, Dict, Mapping, Optional

OFFSET_ENV = "EDGEBENCH_TEST_CLOCK_OFFSET_NS"
DRIFT_ENV = "EDGEBENCH_TEST_CLOCK_DRIFT_PPM"
#: First line the clock server writes; the host skips anything before it (shell rc noise).
HELLO = "edgebench-clock/1"


class DeviceClock:
    """CLOCK_MONOTONIC with an optional injected offset and drift (test-only)."""

    def __init__(self, offset_ns: int = 0, drift_ppm: float = 0.0) -> None:
        self.offset_ns = int(offset_ns)
        self.drift_ppm = float(drift_ppm)
        self._factor = self.drift_ppm * 1e-6
        self.identity = self.offset_ns == 0 and self.drift_ppm == 0.0
        self.now_ns: Callable[[], int] = time.monotonic_ns if self.identity else self._shifted_now

    def _shifted_now(self) -> int:
        raw = time.monotonic_ns()
        return raw + self.offset_ns + round(raw * self._factor)

    def transform(self, raw_ns: int) -> int:
        """One raw CLOCK_MONOTONIC reading in the device clock."""
        if self.identity:
            return raw_ns
        return raw_ns + self.offset_ns + round(raw_ns * self._factor)

    def transform_array(self, raw_ns: "object") -> "object":
        """A whole chunk at once (numpy int64), bit-identical to transform() per element.

        np.rint and round() both round half to even, and the float64 product is the same
        IEEE operation, so a recorded time and a clock-server answer never disagree by 1 ns.
        """
        import numpy as np

        raw = np.asarray(raw_ns, dtype=np.int64)
        if self.identity:
            return raw
        return raw + self.offset_ns + np.rint(raw * self._factor).astype(np.int64)

    def injection(self) -> Optional[Dict[str, float]]:
        """What the test injected, for the record; None for the real clock."""
        if self.identity:
            return None
        return {"offset_ns": self.offset_ns, "drift_ppm": self.drift_ppm}

    def resolution_ns(self) -> int:
        try:
            return max(1, round(time.clock_getres(time.CLOCK_MONOTONIC) * 1e9))
        except (AttributeError, OSError):
            return 1


def clock_from_env(environ: Optional[Mapping[str, str]] = None) -> DeviceClock:
    """The device clock the environment asks for (identity when the test variables are unset)."""
    env = os.environ if environ is None else environ
    offset, drift = env.get(OFFSET_ENV, "").strip(), env.get(DRIFT_ENV, "").strip()
    try:
        return DeviceClock(int(offset or 0), float(drift or 0.0))
    except ValueError:
        raise ValueError(
            f"{OFFSET_ENV}={offset!r} / {DRIFT_ENV}={drift!r}: expected an integer ns and a "
            "float ppm (test-only settings; unset them for real measurements)"
        ) from None


def serve(clock: Optional[DeviceClock] = None) -> int:
    """Answer each line on stdin with the device time in ns, until EOF.

    The time is read after the request arrived and before the answer leaves, so it lies
    inside the host's send/receive window. Per request: one buffered readline, one clock
    read, one unbuffered os.write (no flush to forget, no Python-level buffering).
    """
    clock = clock or clock_from_env()
    now = clock.now_ns
    out = sys.stdout.fileno()
    sys.stdout.flush()
    os.write(out, ("%s resolution_ns=%d\n" % (HELLO, clock.resolution_ns())).encode())
    read = sys.stdin.buffer.readline
    write = os.write
    try:
        while read():
            write(out, b"%d\n" % now())
    except (BrokenPipeError, KeyboardInterrupt):
        pass
    return 0

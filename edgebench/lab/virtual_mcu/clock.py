"""The virtual MCU's microsecond timer, tied to the shared physical clock of the bench.

Physical time is time.monotonic_ns() (what meter emulators and the activity file use). The
MCU counts microseconds since its last boot at (1 + drift) times the physical rate, as a
real board's crystal runs a little fast or slow: tests inject drift to check that the host
maps the device's timestamps onto the meter's clock instead of assuming they agree.
"""

from __future__ import annotations

import time


class McuClock:
    def __init__(self, drift_ppm: float = 0.0) -> None:
        self.rate = 1.0 + drift_ppm * 1e-6
        self.boot_ns = time.monotonic_ns()

    def reboot(self) -> None:
        """A reset restarts the timer at zero (a host sees lap times jump back)."""
        self.boot_ns = time.monotonic_ns()

    def us(self, physical_ns: int | None = None) -> int:
        """The timer reading (whole microseconds) at a physical moment, default now."""
        at = time.monotonic_ns() if physical_ns is None else physical_ns
        # +1 ns absorbs physical_ns()'s rounding, so us(physical_ns(u)) == u exactly
        return int(((at - self.boot_ns) * self.rate + 1) // 1000)

    def physical_ns(self, mcu_us: float) -> int:
        """The physical moment the timer reads `mcu_us`."""
        return self.boot_ns + round(mcu_us * 1000 / self.rate)

    def duration_ns(self, mcu_us: float) -> int:
        """Physical length of a span the MCU times as `mcu_us`."""
        return round(mcu_us * 1000 / self.rate)


def sleep_until(physical_ns: int) -> None:
    remaining = physical_ns - time.monotonic_ns()
    if remaining > 0:
        time.sleep(remaining / 1e9)

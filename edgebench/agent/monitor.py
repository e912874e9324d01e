"""Temperatures and CPU frequencies at ~1 Hz during the timed loop, so throttling is visible.

A side thread that sleeps between samples: at 1 Hz it reads a few dozen sysfs files (file
reads release the GIL) and writes one line, well under a millisecond of work per second, so
the per-query path does not see it. The sysfs paths are found once at start, not globbed on
every tick. Each line of `monitor.jsonl` is one sample, flushed as written so an interrupted
run keeps its samples:

    {"t_ns": <device clock>, "temperatures_c": {...}, "cpu_frequencies_khz": {...}}

`t_ns` is in the same device clock as the per-query times (clock.py). A machine without
thermal zones or cpufreq (many VMs) gives empty dicts: the absence is the answer, not an error.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import threading
from typing import Dict, List, Optional, Tuple

from .clock import DeviceClock, clock_from_env

MONITOR_FILE = "monitor.jsonl"
INTERVAL_S = 1.0


def _read(path: str) -> Optional[str]:
    try:
        with open(path) as handle:
            return handle.read().strip()
    except OSError:
        return None


def thermal_sources() -> List[Tuple[str, str]]:
    """(name, temp file) per thermal zone; the name is the zone type, made unique if repeated."""
    found: List[Tuple[str, str]] = []
    seen = set()
    for zone in sorted(glob.glob("/sys/class/thermal/thermal_zone*")):
        name = _read(os.path.join(zone, "type")) or os.path.basename(zone)
        if name in seen:
            name = "%s:%s" % (name, os.path.basename(zone))
        seen.add(name)
        found.append((name, os.path.join(zone, "temp")))
    return found


def cpufreq_sources() -> List[Tuple[str, str]]:
    """(cpuN, scaling_cur_freq file) per CPU that exposes cpufreq."""
    paths = glob.glob("/sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_cur_freq")
    paths.sort(key=lambda p: int(p.split("/")[5][3:]))
    return [(p.split("/")[5], p) for p in paths]


class Monitor:
    """Writes one sample at start, then every `interval` seconds, and a last one at stop()."""

    def __init__(
        self,
        outdir: str,
        interval: float = INTERVAL_S,
        clock: Optional[DeviceClock] = None,
        thermal: Optional[List[Tuple[str, str]]] = None,
        cpufreq: Optional[List[Tuple[str, str]]] = None,
    ) -> None:
        self.path = os.path.join(outdir, MONITOR_FILE)
        self.interval = interval
        self.clock = clock if clock is not None else clock_from_env()
        self.thermal = thermal_sources() if thermal is None else thermal
        self.cpufreq = cpufreq_sources() if cpufreq is None else cpufreq
        self.samples = 0
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._handle = None

    def sample(self) -> Dict[str, object]:
        temperatures: Dict[str, float] = {}
        for name, path in self.thermal:
            value = _read(path)
            if value and value.lstrip("-").isdigit():
                temperatures[name] = int(value) / 1000.0
        frequencies: Dict[str, int] = {}
        for name, path in self.cpufreq:
            value = _read(path)
            if value and value.isdigit():
                frequencies[name] = int(value)
        return {
            "t_ns": self.clock.now_ns(),
            "temperatures_c": temperatures,
            "cpu_frequencies_khz": frequencies,
        }

    def _write(self) -> None:
        self._handle.write(json.dumps(self.sample()) + "\n")
        self._handle.flush()
        self.samples += 1

    def _loop(self) -> None:
        # A fixed schedule (start + k * interval) so the rate does not drift by the work done.
        # A late tick (a slow sensor) skips ahead rather than bursting to catch up.
        period_ns = self.interval * 1e9
        started = self.clock.now_ns()
        due = started + period_ns
        while not self._stop.wait(max(0.0, (due - self.clock.now_ns()) / 1e9)):
            try:
                self._write()
            except (OSError, ValueError):
                return  # the disk filled or the file was closed: stop sampling, never the run
            due = started + (int((self.clock.now_ns() - started) // period_ns) + 1) * period_ns

    def start(self) -> "Monitor":
        self._handle = open(self.path, "a")
        self._write()
        self._thread = threading.Thread(target=self._loop, name="monitor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = None
        with contextlib.suppress(OSError, ValueError):
            self._write()
        self._handle.close()

    def __enter__(self) -> "Monitor":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

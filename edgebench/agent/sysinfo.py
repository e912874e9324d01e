"""What the device is: CPU, OS, Python, runtimes, clocks, temperatures, memory.

Gathered on the device itself by the agent (`python -m edgebench.agent --describe`), so the
host and an SSH board answer the same way. Everything is best effort: a field that cannot be
read on this kernel is left out rather than guessed.
"""

from __future__ import annotations

import glob
import os
import platform
from typing import Dict, List, Optional


def _read(path: str) -> Optional[str]:
    try:
        with open(path) as handle:
            return handle.read().strip()
    except OSError:
        return None


def _cpu_model() -> str:
    text = _read("/proc/cpuinfo") or ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model", "Hardware", "cpu model"):
            return value.strip()
    return platform.processor() or platform.machine()


def _os_release() -> str:
    text = _read("/etc/os-release") or ""
    for line in text.splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"')
    return platform.platform()


def cpu_frequencies_khz() -> Dict[str, int]:
    """Current frequency per CPU, where cpufreq is exposed."""
    found = {}
    for path in sorted(glob.glob("/sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_cur_freq")):
        value = _read(path)
        if value and value.isdigit():
            found[path.split("/")[5]] = int(value)
    return found


def temperatures_c() -> Dict[str, float]:
    """Thermal zones in degrees C, keyed by zone type."""
    found = {}
    for zone in sorted(glob.glob("/sys/class/thermal/thermal_zone*")):
        kind = _read(os.path.join(zone, "type")) or os.path.basename(zone)
        value = _read(os.path.join(zone, "temp"))
        if value and value.lstrip("-").isdigit():
            found[kind] = int(value) / 1000.0
    return found


def _runtimes() -> List[Dict[str, str]]:
    from importlib import metadata

    found = []
    for dist in ("ai-edge-litert", "tflite-runtime", "mlcommons-loadgen", "numpy"):
        try:
            found.append({"name": dist, "version": metadata.version(dist)})
        except metadata.PackageNotFoundError:
            continue
    return found


def _memory_kib() -> Optional[int]:
    for line in (_read("/proc/meminfo") or "").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1])
    return None


def describe() -> Dict[str, object]:
    governor = _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    return {
        "hostname": platform.node(),
        "cpu_model": _cpu_model(),
        "cpu_cores": os.cpu_count() or 0,
        "machine": platform.machine(),
        "kernel": platform.release(),
        "os": _os_release(),
        "python": platform.python_version(),
        "packages": _runtimes(),
        "cpu_governor": governor,
        "cpu_frequencies_khz": cpu_frequencies_khz(),
        "temperatures_c": temperatures_c(),
        "memory_kib": _memory_kib(),
    }

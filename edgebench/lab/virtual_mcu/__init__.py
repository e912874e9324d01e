"""A virtual microcontroller speaking MLPerf Tiny's serial command set on a pty.

It stands in for a board flashed with MLPerf Tiny reference firmware, so the serial
transport, the run modes and their fault handling are tested against the real wire
protocol with no hardware: the pty carries the exact bytes, byte times follow the chosen
baud rate, the device keeps its own microsecond clock, and inference runs in TFLM (the
reference runtime of MLPerf Tiny) in a worker process that may die without taking the
device down. Start it with `python -m edgebench.lab.virtual_mcu` or `VirtualMcu.start`
(edgebench.lab.virtual_mcu.launcher). This package file stays import-light because the
TFLM worker is started as one of its submodules.
"""

from __future__ import annotations

from typing import Any

__all__ = ["VirtualMcu", "VirtualMcuError", "benchmark_model"]


def __getattr__(name: str) -> Any:
    """Load the launcher on first use only (keeps the worker's start-up import small)."""
    if name in __all__:
        from . import launcher

        return getattr(launcher, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

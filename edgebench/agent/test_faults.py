"""Deliberately dishonest systems under test, so the compliance tests can be shown to catch
them. Test-only: set through EDGEBENCH_TEST_SUT_FAULT, and recorded in record.json whenever
active, so a faulty run can never pass for a genuine one.

* ``cache``: a small result cache keyed by sample index (the last CACHE_SIZE samples). It
  barely helps when samples are drawn at random from a large loaded set, as in a normal
  performance run, but answers a repeated sample without running the model: what MLPerf's
  TEST04 exists to catch.
* ``corrupt-performance``: in performance mode the output is altered after each inference,
  so what the timed run returns is not what the accuracy run scored (TEST01's target).
"""

from __future__ import annotations

import ctypes
import os
from collections import OrderedDict
from typing import Callable, Optional

FAULT_ENV = "EDGEBENCH_TEST_SUT_FAULT"
FAULTS = ("cache", "corrupt-performance")
CACHE_SIZE = 16


class FaultError(ValueError):
    """An unknown fault name in the environment."""


def apply_fault(engine: object, mode: str) -> Optional[str]:
    """Wrap engine.infer with the fault named in the environment; returns its name or None."""
    fault = os.environ.get(FAULT_ENV, "")
    if not fault:
        return None
    if fault not in FAULTS:
        raise FaultError(f"{FAULT_ENV}={fault!r} is unknown; use one of {', '.join(FAULTS)}")
    address, nbytes = engine.output_address, engine.output_nbytes  # type: ignore[attr-defined]
    infer: Callable[[int], None] = engine.infer  # type: ignore[attr-defined]
    if fault == "cache":
        engine.infer = _cached(infer, address, nbytes)  # type: ignore[attr-defined]
    elif mode == "performance":
        engine.infer = _corrupted(infer, address, nbytes)  # type: ignore[attr-defined]
    return fault


def _cached(infer: Callable[[int], None], address: int, nbytes: int) -> Callable[[int], None]:
    cache: "OrderedDict[int, bytes]" = OrderedDict()

    def infer_cached(index: int) -> None:
        hit = cache.get(index)
        if hit is not None:
            ctypes.memmove(address, hit, nbytes)
            return
        infer(index)
        cache[index] = ctypes.string_at(address, nbytes)
        if len(cache) > CACHE_SIZE:
            cache.popitem(last=False)

    return infer_cached


def _corrupted(infer: Callable[[int], None], address: int, nbytes: int) -> Callable[[int], None]:
    def infer_corrupted(index: int) -> None:
        infer(index)
        data = ctypes.string_at(address, nbytes)
        # Rotate by one and flip a bit: never equal to the original, whatever the values.
        altered = bytes([data[-1] ^ 0x01]) + data[:-1]
        ctypes.memmove(address, altered, nbytes)

    return infer_corrupted

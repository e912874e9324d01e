"""clock.json: the device-to-host clock mapping, measured before and after the device runs.

The device's own times (per-query, monitor samples) stay in its clock; this file is what lets
the energy work put them on the host's timeline. A device without `measure_clock()` (serial
DUTs, whose windows come from meter marks) gets no file here. If the device cannot be
measured after the run (the connection dropped), the mapping keeps the anchor from before,
with a bound that grows at the worst plausible drift; the run's own error is never masked.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..metrics.clock_mapping import ClockAnchor, ClockError, ClockMapping

CLOCK_FILE = "clock.json"


@contextmanager
def clock_mapped(device: Any, directory: Path) -> Iterator[None]:
    """Anchor before the block, anchor after it (also on failure), write clock.json."""
    measure = getattr(device, "measure_clock", None)
    if measure is None:
        yield
        return
    before: ClockAnchor = measure()
    try:
        yield
    finally:
        after: ClockAnchor | None = None
        problem = ""
        try:
            after = measure()
        except (ClockError, OSError, RuntimeError) as error:
            problem = f"; no anchor after the run ({error})"
        mapping = ClockMapping.from_anchors(before, after, channel=device.transport)
        mapping.method += problem
        write_clock(directory, mapping)


def write_clock(directory: Path, mapping: ClockMapping) -> Path:
    path = directory / CLOCK_FILE
    path.write_text(json.dumps(mapping.to_dict(), indent=2) + "\n")
    return path

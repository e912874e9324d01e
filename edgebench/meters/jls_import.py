"""Joulescope .jls recordings (JLS v2, written by the Joulescope UI or pyjoulescope_driver's
recorder) imported into a PowerTrace, through the same stream handler the live driver uses.

A JLS file holds fixed-rate signals by name: "current" (A) and "voltage" (V) as float32,
often "power" (W), and the 1-bit "gpi[0]".."gpi[3]" inputs; samples the instrument could not
measure, and holes in the recording, read back as NaN. Reading goes block by block so memory
stays bounded whatever the recording's length; each block of every wanted signal is handed
to JoulescopeStream, which pairs current with voltage, turns NaN runs into "gap" events and
the mark input's level changes into "timestamp" marks. Vertical-marker annotations become
"marker" marks and text annotations "message" events at their sample's time; the first UTC
anchor (sample id, UTC) is kept in meta so the recording can be placed in wall-clock time.

pyjls is an optional dependency (`pip install pyjls`), imported when a file is imported.
Signal names are matched as pyjoulescope_driver's recorder writes them (inferred from its
recordings: lower-case "current", "voltage", "power", "gpi[N]").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..metrics.power_trace import PowerTrace, PowerTraceWriter
from .base import MeterError
from .joulescope import JoulescopeStream

BLOCK_SAMPLES = 1 << 20


def _pyjls() -> Any:
    try:
        import pyjls
    except ImportError:
        raise MeterError(
            "reading .jls files needs pyjls: pip install pyjls  (or: pip install "
            "'edgebench[joulescope]')"
        ) from None
    return pyjls


def import_jls(source: Path, directory: Path, mark_input: int | None = 0) -> PowerTrace:
    """Import `source` into a new trace at `directory`; GPI `mark_input` edges become marks."""
    pyjls = _pyjls()
    source = Path(source)
    if not source.is_file():
        raise MeterError(f"recording {source} does not exist; check the path")
    try:
        reader = pyjls.Reader(str(source))
    except Exception as error:  # pyjls raises RuntimeError/ValueError for a damaged file
        raise MeterError(f"{source} is not a readable JLS file ({error})") from None
    try:
        return _import(pyjls, reader, source, Path(directory), mark_input)
    finally:
        reader.close()


def _import(
    pyjls: Any, reader: Any, source: Path, directory: Path, mark_input: int | None
) -> PowerTrace:
    signals = {
        s.name.lower(): s for s in reader.signals.values() if s.signal_type == pyjls.SignalType.FSR
    }
    if "current" in signals and "voltage" in signals:
        kind, analog = "current_voltage", ["current", "voltage"]
    elif "power" in signals:
        kind, analog = "power", ["power"]
    else:
        raise MeterError(
            f"{source} has no current + voltage or power signal (signals: "
            f"{', '.join(sorted(signals)) or 'none'}); record them in the Joulescope UI"
        )
    mark = f"gpi[{mark_input}]" if mark_input is not None else None
    wanted = analog + ([mark] if mark in signals else [])
    rates = {float(signals[name].sample_rate) for name in wanted}
    if len(rates) != 1:
        raise MeterError(f"{source}: signals at different rates ({sorted(rates)}); not supported")
    rate = rates.pop()
    source_def = reader.sources.get(signals[analog[0]].source_id)
    meter = {
        "driver": "joulescope",
        "model": f"Joulescope {getattr(source_def, 'model', '?')}",
        "serial": getattr(source_def, "serial_number", None),
        "sample_rate_hz": rate,
        "records_marks": mark in signals,
        "source": str(source),
    }
    writer = PowerTraceWriter(directory, kind, meter, sample_period_s=1.0 / rate, clock="meter")
    stream = JoulescopeStream(writer, mark_input if mark in signals else None)
    length = min(int(signals[name].length) for name in analog)
    for start in range(0, length, BLOCK_SAMPLES):
        count = min(BLOCK_SAMPLES, length - start)
        for name in wanted:
            data = reader.fsr(signals[name].signal_id, start, count)
            if name == mark:
                data = np.unpackbits(data, bitorder="little")[:count]
            stream.take(name, start, rate, data)
    _annotations(reader, signals[analog[0]], writer, rate)
    _utc_anchor(reader, signals[analog[0]], writer)
    return stream.finish()


def _annotations(reader: Any, signal: Any, writer: PowerTraceWriter, rate: float) -> None:
    def take(timestamp: int, y: Any, annotation_type: int, group_id: int, data: Any) -> bool:
        t = float(timestamp) / rate
        if annotation_type == int(_pyjls().AnnotationType.VMARKER):
            writer.mark(t, "marker")
        elif annotation_type == int(_pyjls().AnnotationType.TEXT):
            writer.event(t, "message", str(data))
        return False

    reader.annotations(signal.signal_id, 0, take)


def _utc_anchor(reader: Any, signal: Any, writer: PowerTraceWriter) -> None:
    anchors: list[list[int]] = []

    def take(entries: np.ndarray) -> bool:
        anchors.extend(entries.tolist())
        return True  # the first batch is enough

    reader.utc(signal.signal_id, 0, take)
    if anchors:
        sample_id, utc = anchors[0]
        writer.meta["utc_anchor"] = {"sample": sample_id, "utc_s": _pyjls().jls_to_utc(utc)}

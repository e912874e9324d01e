"""Score a serial run again from its raw DUT log alone (dut_log.txt).

The log holds every line the DUT sent, as received, and the host's notes on which sample
each window ran. Re-reading it with the same parser rebuilds the windows, so a result can
be checked (or re-scored after a parser fix) without trusting windows.jsonl or result.json.
"""

from __future__ import annotations

import codecs
import json
import re
from pathlib import Path
from typing import Any

from ..devices.serial import LOG_FILE
from ..protocol import tiny_replies as rp
from ..suite.benchmarks import Benchmark
from . import tiny_score

_WINDOW_NOTE = re.compile(r"window (\d+) sample (\d+)")
_INFER = re.compile(r"(?:dut )?infer (\d+) (\d+)%")


def windows_from_log(path: Path) -> list[dict[str, Any]]:
    """Windows as device.run recorded them, rebuilt from the raw lines of the log."""
    windows: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for line in path.read_text(encoding="ascii").splitlines():
        parts = line.split(" ", 3)
        if len(parts) < 3:
            continue
        direction, text = parts[2], parts[3] if len(parts) > 3 else ""
        if direction == "#":
            current = _open_window(text)
            if current is not None:
                windows.append(current)
        elif current is not None and direction == ">":
            match = _INFER.fullmatch(text)
            if match:
                current["iterations"], current["warmups"] = map(int, match.groups())
        elif current is not None and direction == "<":
            raw = codecs.escape_decode(text.encode("ascii"))[0]
            for reply in rp.classify_line(raw):
                if reply.kind == rp.LAP:
                    current["laps_us"].append(reply.value)
                elif reply.kind == rp.RESULTS:
                    current["results"] = list(reply.value)
    for window in windows:
        laps = window.pop("laps_us")
        window["elapsed_us"] = (laps[-1] - laps[-2]) % (1 << 32) if len(laps) >= 2 else None
    latest = {w["window"]: w for w in windows if "iterations" in w}  # a re-measured window
    return [latest[number] for number in sorted(latest)]


def _open_window(note: str) -> dict[str, Any] | None:
    match = _WINDOW_NOTE.fullmatch(note)
    if match is None:
        return None
    number, sample = map(int, match.groups())
    return {"window": number, "sample": sample, "laps_us": [], "results": None}


def rescore(
    directory: Path, benchmark: Benchmark, windows: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The run's metrics recomputed from dut_log.txt (performance or accuracy); `windows`,
    when the caller has read the log already (windows_from_log), saves reading it again."""
    result = json.loads((directory / "result.json").read_text())
    if windows is None:
        windows = windows_from_log(directory / LOG_FILE)
    if result["mode"] == "accuracy":
        labels, groups = tiny_score.dataset_labels(benchmark)
        return {"accuracy": tiny_score.accuracy(benchmark, windows, labels, groups).to_dict()}
    record = json.loads((directory / "record.json").read_text())
    metrics, _ = tiny_score.performance(windows, float(record["plan"]["min_window_s"]))
    return metrics

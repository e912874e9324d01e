"""The virtual bench's activity file: what an emulated device is doing, on the shared clock.

A real bench couples a board and its power meter electrically: the meter sees the current
rise while the board computes and sees the timestamp GPIO fall. Our stand-ins are separate
processes, so the device stand-in writes that coupling down instead, one JSON object per
line, and a meter emulator reads it back to synthesize power and marks whose truth a test
knows exactly:

    {"t_ns": 123, "state": "active"}   drawing active power from t_ns on
    {"t_ns": 456, "state": "idle"}
    {"t_ns": 789, "pin": 0}            timestamp GPIO level (MLPerf Tiny pulls it low)

`t_ns` is "physical" time: time.monotonic_ns() on this host, shared by every emulator. A
line can name a moment slightly before it is written (a device computes when an edge
happened, then reports it), so readers should trail real time by a few milliseconds before
treating a stretch as settled. Each line is flushed as written, so a reader never waits for
a buffer and never sees a torn line except the one being written (which it skips for now).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, TextIO

STATES = ("active", "idle")
PIN_LEVELS = (0, 1)


class ActivityError(ValueError):
    """An activity file or event that cannot be used as written."""


class ActivityWriter:
    """Appends events to an activity file; safe to share between one writer's threads only."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._handle: TextIO | None = open(self.path, "a", encoding="utf-8")  # noqa: SIM115

    def state(self, name: str, t_ns: int | None = None) -> None:
        if name not in STATES:
            raise ActivityError(f"unknown activity state {name!r}; use one of {STATES}")
        self._write({"t_ns": _now(t_ns), "state": name})

    def pin(self, level: int, t_ns: int | None = None) -> None:
        if level not in PIN_LEVELS:
            raise ActivityError(f"timestamp pin level must be 0 or 1, got {level!r}")
        self._write({"t_ns": _now(t_ns), "pin": level})

    def _write(self, event: dict[str, Any]) -> None:
        if self._handle is None:
            raise ActivityError(f"activity file {self.path} is closed")
        self._handle.write(json.dumps(event) + "\n")
        self._handle.flush()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self) -> ActivityWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _now(t_ns: int | None) -> int:
    return time.monotonic_ns() if t_ns is None else int(t_ns)


def parse_event(line: str, where: str = "activity file") -> dict[str, Any]:
    """One line -> its event, checked, so an emulator fails loudly on a corrupt file."""
    try:
        event = json.loads(line)
    except json.JSONDecodeError as error:
        raise ActivityError(f"{where}: not a JSON line ({error}): {line[:60]!r}") from None
    if not isinstance(event, dict) or not isinstance(event.get("t_ns"), int):
        raise ActivityError(f"{where}: each line needs an integer t_ns: {line[:60]!r}")
    if event.get("state") not in (None, *STATES) or event.get("pin") not in (None, *PIN_LEVELS):
        raise ActivityError(f"{where}: unknown state or pin level: {line[:60]!r}")
    if ("state" in event) == ("pin" in event):
        raise ActivityError(f"{where}: each line has exactly one of state / pin: {line[:60]!r}")
    return event


def read_activity(path: Path | str) -> list[dict[str, Any]]:
    """Every complete event in the file, in file order (a missing file has none yet)."""
    return ActivityTail(path).poll()


class ActivityTail:
    """Reads an activity file incrementally, for an emulator thread polling it.

    `poll()` returns the events completed since the last call; a line still being written
    stays for the next call. The file may not exist yet (the device has not started): that
    is simply no events.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._offset = 0
        self._line_number = 0

    def poll(self) -> list[dict[str, Any]]:
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self._offset)
                data = handle.read()
        except FileNotFoundError:
            return []
        complete = data[: data.rfind(b"\n") + 1]
        self._offset += len(complete)
        events = []
        for raw in complete.decode("utf-8").splitlines():
            self._line_number += 1
            if raw.strip():
                events.append(parse_event(raw, f"{self.path}:{self._line_number}"))
        return events

"""The files of one run, read the way a reviewer reads them: the logs first, result.json as a
claim to be checked against them.

A run directory holds either LoadGen's logs (mlperf_log_*) or the native loop's
(native_log_*); both are read into the same shape (detail keys -> first value, errors), so
the checks do not care which loop ran, only whether the files agree with each other.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from ..agent.settings import SettingsError, parse_user_conf

MLLOG = ":::MLLOG"
LOADGEN_LOGS = {
    "summary": "mlperf_log_summary.txt",
    "detail": "mlperf_log_detail.txt",
    "accuracy": "mlperf_log_accuracy.json",
}
NATIVE_LOGS = {
    "summary": "native_log_summary.txt",
    "detail": "native_log_detail.json",
    "accuracy": "native_log_accuracy.json",
}
_SUMMARY_LINE = re.compile(r"^\s*([^:]+?)\s*:\s*(.*?)\s*$")


@dataclass
class DetailLog:
    """Detail-log entries by key (first value wins, as MLPerf's checker reads them)."""

    path: Path
    values: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # format problems, one line each

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)


def read_loadgen_detail(path: Path) -> DetailLog:
    log = DetailLog(path)
    lines = path.read_text(errors="replace").splitlines()
    if not lines or not lines[0].startswith(MLLOG):
        log.problems.append(f"the first line does not start with {MLLOG}")
    for number, line in enumerate(lines, 1):
        marker = line.find(MLLOG)
        if marker < 0:
            log.problems.append(f"line {number} is not a {MLLOG} line")
            continue
        try:
            entry = json.loads(line[marker + len(MLLOG) :])
            key = entry["key"]
        except (ValueError, KeyError, TypeError):
            log.problems.append(f"line {number} is not a JSON log entry")
            continue
        log.values.setdefault(key, entry.get("value"))
        if (entry.get("metadata") or {}).get("is_error"):
            log.errors.append(f"{key}: {entry.get('value')}")
    return log


def read_native_detail(path: Path) -> DetailLog:
    log = DetailLog(path)
    try:
        data = json.loads(path.read_text())
    except ValueError:
        log.problems.append("not valid JSON")
        return log
    if not isinstance(data, dict):
        log.problems.append("not a JSON object of detail keys")
        return log
    log.values = data
    log.errors = [str(error) for error in data.get("native_errors") or []]
    return log


def parse_summary(text: str) -> dict[str, str]:
    """`key : value` lines of a summary log (first occurrence wins), keys stripped."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        match = _SUMMARY_LINE.match(line)
        if match and not line.lstrip().startswith("*"):
            values.setdefault(match.group(1), match.group(2))
    return values


class RunFiles:
    """One run directory: result.json, the logs of whichever loop ran, user.conf, record."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._json: dict[str, dict[str, Any]] = {}

    def path(self, name: str) -> Path:
        return self.directory / name

    @property
    def result(self) -> dict[str, Any]:
        return self.json("result.json")

    @property
    def record(self) -> dict[str, Any]:
        return self.json("record.json")

    def json(self, name: str) -> dict[str, Any]:
        """A JSON object file, or {} when missing or unreadable (the file checks report it);
        read once, however many checks ask for it."""
        if name not in self._json:
            try:
                data = json.loads(self.path(name).read_text())
            except (OSError, ValueError):
                data = {}
            self._json[name] = data if isinstance(data, dict) else {}
        return self._json[name]

    @cached_property
    def loop(self) -> str:
        """`loadgen` or `native`, by which loop's detail log is present."""
        return "native" if self.path(NATIVE_LOGS["detail"]).is_file() else "loadgen"

    def log_path(self, kind: str) -> Path:
        names = NATIVE_LOGS if self.loop == "native" else LOADGEN_LOGS
        return self.path(names[kind])

    @cached_property
    def detail(self) -> DetailLog | None:
        path = self.log_path("detail")
        if not path.is_file():
            return None
        return read_native_detail(path) if self.loop == "native" else read_loadgen_detail(path)

    @cached_property
    def summary_text(self) -> str | None:
        path = self.log_path("summary")
        return path.read_text(errors="replace") if path.is_file() else None

    @cached_property
    def summary(self) -> dict[str, str] | None:
        return None if self.summary_text is None else parse_summary(self.summary_text)

    @cached_property
    def user_conf(self) -> list[tuple[str, str, str, str]] | str | None:
        """user.conf rows, the parse error's text, or None when missing."""
        path = self.path("user.conf")
        if not path.is_file():
            return None
        try:
            return parse_user_conf(path.read_text())
        except SettingsError as error:
            return str(error)

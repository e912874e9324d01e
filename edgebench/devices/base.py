"""The Device contract every transport implements, and what a run hands back (RunRecord).

Transports differ in how they reach the agent (a subprocess here, SSH, a UART); what the
runner sees is the same: describe the device, put the model and samples where the device can
read them, run one plan into a results directory, close.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..agent.recorder import read_queries

EventHandler = Callable[[dict], None]


#: What an agent writes into record.json when it ends on its own; anything else means it died.
FINAL_STATUSES = ("complete", "failed", "interrupted")


class DeviceError(RuntimeError):
    """The device cannot do what was asked; the message names the cause and the fix."""


@dataclass
class SystemInfo:
    """What was running the benchmark, as read on the device."""

    data: dict[str, Any]

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.data)


@dataclass
class RunRecord:
    """The device's account of one run: status, settings used, results, per-query times."""

    directory: Path
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, directory: Path) -> RunRecord:
        path = directory / "record.json"
        if not path.is_file():
            return cls(directory, {"status": "missing"})
        with open(path) as handle:
            return cls(directory, json.load(handle))

    @property
    def status(self) -> str:
        return str(self.data.get("status", "missing"))

    @property
    def results(self) -> dict[str, Any]:
        return dict(self.data.get("results") or {})

    def queries(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(sample index, issue ns, completion ns) per completed sample, device clock."""
        index, issue, complete = read_queries(str(self.directory / "queries"))
        return index, issue, complete


class Device(ABC):
    """One device under test, reached through one transport."""

    transport: ClassVar[str]
    #: Profile keys this transport accepts beyond the common ones, with their types.
    profile_keys: ClassVar[dict[str, type | tuple[type, ...]]] = {}

    def __init__(self, profile: dict[str, Any]) -> None:
        self.profile = profile
        self.name = str(profile.get("name", self.transport))

    @abstractmethod
    def open(self) -> None: ...

    @abstractmethod
    def describe(self) -> SystemInfo: ...

    @abstractmethod
    def deploy(self, model: Path, samples: Path | None) -> None:
        """Make the model and samples readable by the agent (copy, verify hashes)."""

    @abstractmethod
    def run(self, plan: dict[str, Any], outdir: Path, on_event: EventHandler) -> RunRecord:
        """Run one plan; everything the device produced ends up in `outdir`."""

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Device:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

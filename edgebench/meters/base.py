"""The Meter contract every power-meter driver implements, and what it says about itself.

A meter is opened, described, started into a directory, stopped and closed; whatever the
instrument (a TCP daemon, a serial monitor, a USB sampler, a sysfs file), what the runner gets
back is a PowerTrace on disk in the meter's own clock. Recording runs in a background thread so
the workload and the meter never wait on each other; the trace is written as it arrives, so a
meter that dies mid-run leaves everything it recorded.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ..metrics.power_trace import PowerTrace

PHASES = ("ranging", "testing")


class MeterError(RuntimeError):
    """The meter cannot do what was asked; the one-line message names the cause and the fix."""


@dataclass
class MeterInfo:
    """What a result needs to know about the instrument that measured it.

    `accuracy` is the vendor's stated accuracy, e.g. {"reading_pct": 0.1, "range_pct": 0.05,
    "floor_w": 1e-6}: the uncertainty of every energy figure starts from it. `records_marks`
    says whether the meter timestamps the device's GPIO edges itself (the best timing tier).
    `mlperf_power_valid` is True only for MLCommons' unmodified power client/server driving a
    licensed PTDaemon; everything else is a lab measurement.
    """

    driver: str
    model: str
    serial: str | None
    sample_rate_hz: float
    ranges: list[str] = field(default_factory=list)
    accuracy: dict[str, float] = field(default_factory=dict)
    records_marks: bool = False
    mlperf_power_valid: bool = False
    notes: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Meter(ABC):
    """One power meter reached through one driver (the registry key used in meter profiles)."""

    driver: ClassVar[str]
    #: Profile keys this driver accepts beyond name/driver/description, with their types.
    profile_keys: ClassVar[dict[str, type | tuple[type, ...]]] = {}
    #: PTDaemon-style meters must see the workload once to pick ranges, then measure it again.
    needs_ranging: ClassVar[bool] = False
    #: What the driver has been tested against, shown by `edgebench meters`: "emulator",
    #: "recorded file", "hardware" (say which), or "nothing yet". Honest, never aspirational.
    tested_against: ClassVar[str] = "nothing yet"

    def __init__(self, profile: dict[str, Any]) -> None:
        self.profile = profile
        self.name = str(profile.get("name", self.driver))

    @abstractmethod
    def open(self) -> None:
        """Connect; MeterError (naming host/port/device and the fix) if unreachable."""

    @abstractmethod
    def describe(self) -> MeterInfo: ...

    @abstractmethod
    def start(self, directory: Path, phase: str = "testing") -> None:
        """Begin recording into a PowerTraceWriter at `directory` from a background thread.

        `phase` is "ranging" or "testing"; meters without ranging ignore it.
        """

    @abstractmethod
    def stop(self) -> PowerTrace:
        """End recording and close the writer; MeterError after closing if the meter had
        stopped answering (the trace then has status "stopped: <why>")."""

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Meter:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

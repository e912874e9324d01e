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
from typing import TYPE_CHECKING, Any, ClassVar

from ..lab.emulator_process import EmulatorError, EmulatorProcess, emulator_args
from ..metrics.power_trace import PowerTrace

if TYPE_CHECKING:
    from .recording import Recording

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
    licensed PTDaemon; everything else is a lab measurement. `energy_method` names the
    integration its results must use (MLCommons' client: "mlperf-power"); None = the
    trace kind's default.
    """

    driver: str
    model: str
    serial: str | None
    sample_rate_hz: float
    ranges: list[str] = field(default_factory=list)
    accuracy: dict[str, float] = field(default_factory=dict)
    records_marks: bool = False
    mlperf_power_valid: bool = False
    energy_method: str | None = None
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
    #: The lab stand-in (`python -m <module>`, edgebench.lab) that a profile's `emulator:`
    #: mapping starts in place of the hardware; None for drivers without one. Such drivers
    #: accept the `emulator` profile key.
    emulator_module: ClassVar[str | None] = None
    #: False for a meter that measures only around a workload it is handed (MLCommons'
    #: client wants the run's LoadGen logs): `edgebench meters probe` then only opens it.
    records_alone: ClassVar[bool] = True
    #: The recording in progress, for drivers that record through a Recording (the helpers
    #: below keep start(), stop() and close() alike across them).
    _recording: Recording | None = None

    def __init__(self, profile: dict[str, Any]) -> None:
        self.profile = profile
        self.name = str(profile.get("name", self.driver))
        self._emulator: EmulatorProcess | None = None

    def _start_emulator(self) -> str | None:
        """Start the stand-in the profile's `emulator:` mapping configures and return where it
        listens (None when the profile names real hardware). One way for every emulated
        driver, so a stand-in that does not come up reads the same whichever meter it is."""
        options = self.profile.get("emulator")
        if options is None or self.emulator_module is None:
            return None
        try:
            self._emulator = EmulatorProcess(self.emulator_module, emulator_args(options))
        except EmulatorError as error:
            raise MeterError(f"meter {self.name}: {error}") from None
        return self._emulator.address

    def _stop_emulator(self) -> None:
        if self._emulator is not None:
            self._emulator.stop()
            self._emulator = None

    def _emulated_note(self, what: str) -> list[str]:
        """The describe() note that `what` is emulated, when it is (results must not pass an
        emulator off as hardware)."""
        if self._emulator is None:
            return []
        return [f"emulated {what} ({self.emulator_module}), not hardware"]

    def _require(self, key: str, value: object, ok: bool, expected: str) -> None:
        """Refuse a profile value the instrument cannot take, worded alike for every driver:
        the profile, the key, the value, then `expected` (" outside 1.8..3.3 V", "; use
        dyn or stat"). Profile validation has checked the type already; this is the range."""
        if not ok:
            raise MeterError(f"meter profile {self.name}: {key} {value!r}{expected}")

    def _refuse(self, problem: str) -> MeterError:
        """The one wording of a call in the wrong state: "meter X is not open; ..."."""
        fixes = {
            "not open": "call open() first",
            "already recording": "stop() it first",
            "not recording": "call start() first",
        }
        return MeterError(f"meter {self.name} is {problem}; {fixes[problem]}")

    def _check_can_start(self, opened: bool = True) -> None:
        """Refuse start() on a meter not `opened` or already recording (drivers that learn
        they are not open from their first command leave `opened` alone)."""
        if not opened:
            raise self._refuse("not open")
        if self._recording is not None:
            raise self._refuse("already recording")

    def _take_recording(self) -> Recording:
        """The recording stop() ends, no longer the meter's; "not recording" if none."""
        recording = self._recording
        if recording is None:
            raise self._refuse("not recording")
        self._recording = None
        return recording

    def _abandon_recording(self, wait_s: float | None = 0.0) -> None:
        """close() mid-run: halt the reader (waiting up to `wait_s`, None = until it ends)
        and end the trace as stopped, keeping what was recorded."""
        if self._recording is not None:
            self._recording.halt(wait_s)
            self._recording.fail("meter closed while recording")
            self._recording = None

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

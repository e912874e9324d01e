"""Meter profiles: one YAML file per meter, validated on load like device profiles.

They live in a `meters/` folder beside each device-profile folder (bundled
`device_profiles/meters/`, `./device_profiles/meters/`, the user's config `meters/`); a later
place overrides an earlier one. A device profile's `meter:` key names the meter usually
attached to it. Keys beyond the common ones are the driver's own `profile_keys`; an unknown
key is an error because a misspelt `port` silently falling back to a default is worse.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..devices.profiles import (
    ProfileFile,
    check_keys,
    find_profile_files,
    read_profile,
    search_dirs,
)
from .base import Meter, MeterError
from .registry import meter_class

COMMON_KEYS: dict[str, type | tuple[type, ...]] = {
    "name": str,
    "driver": str,
    "description": str,
    "idle_s": (int, float),
    "submission_idle_s": (int, float),
    "subtract_idle": bool,
    "clock_uncertainty_s": (int, float),
    "ranging": bool,
    # The vendor's stated accuracy (MeterInfo.accuracy), where the driver knows none or the
    # instrument's calibration certificate says better.
    "accuracy": dict,
}
DEFAULTS: dict[str, Any] = {
    # Idle window recorded before the run: reported, subtracted only where the profile says.
    "idle_s": 1.0,
    "submission_idle_s": 10.0,
    "subtract_idle": False,
    # How well the meter's timestamps sit on this host's timeline; None = what the trace says
    # (a wall-clock trace without a statement gets MLPerf's 0.4 s NTP limit).
    "clock_uncertainty_s": None,
    # Run the workload once more first for meters that pick ranges from it (PTDaemon); false
    # = the driver's fixed ranges (MLPerf's -A/-V: fine in a lab, never for a submission).
    "ranging": True,
}


class MeterProfileError(MeterError):
    """A meter profile file that cannot be used as written."""


def meter_dirs() -> list[Path]:
    return [directory / "meters" for directory in search_dirs()]


def find_meter_profiles() -> dict[str, ProfileFile]:
    return find_profile_files(meter_dirs())


def validate(data: Any, path: Path) -> dict[str, Any]:
    """Check keys and types against the driver; return the profile with defaults filled in."""
    if not isinstance(data, dict):
        raise MeterProfileError(f"{path}: a meter profile must be a mapping of keys to values")
    driver = data.get("driver")
    if not isinstance(driver, str):
        raise MeterProfileError(
            f"{path}: key 'driver' is required and must be str (e.g. driver: ptd)"
        )
    try:
        cls: type[Meter] = meter_class(driver)
    except MeterError as error:
        raise MeterProfileError(f"{path}: {error}") from None
    allowed = {**COMMON_KEYS, **cls.profile_keys}
    if cls.emulator_module is not None:
        allowed["emulator"] = (dict, type(None))
    check_keys(data, allowed, path, f"meter driver {driver!r}", MeterProfileError)
    profile = {**DEFAULTS, **data}
    profile.setdefault("name", path.stem)
    return profile


def load_meter_profile(name_or_path: str) -> dict[str, Any]:
    """A meter profile by name (searched) or by path to a YAML file."""
    listing = f"see `edgebench meters`; add a YAML file under {meter_dirs()[-1]}"
    found = find_meter_profiles()
    return read_profile(
        name_or_path, found, validate, MeterProfileError, what="meter", listing=listing
    )


def open_meter(name_or_path: str) -> Meter:
    """The meter a profile describes (not yet opened)."""
    profile = load_meter_profile(name_or_path)
    return meter_class(profile["driver"])(profile)

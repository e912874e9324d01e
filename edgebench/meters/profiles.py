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

import yaml

from ..devices.profiles import ProfileFile, _type_name, search_dirs
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
    found: dict[str, ProfileFile] = {}
    for directory in meter_dirs():
        if directory.is_dir():
            for path in sorted(directory.glob("*.yaml")):
                found[path.stem] = ProfileFile(path.stem, path)
    return found


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
    for key, value in data.items():
        if key not in allowed:
            raise MeterProfileError(
                f"{path}: unknown key {key!r} for meter driver {driver!r} "
                f"(allowed: {', '.join(sorted(allowed))})"
            )
        expected = allowed[key]
        kinds = expected if isinstance(expected, tuple) else (expected,)
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
            raise MeterProfileError(
                f"{path}: key {key!r} must be {_type_name(expected)}, "
                f"got {type(value).__name__} {value!r}"
            )
    profile = {**DEFAULTS, **data}
    profile.setdefault("name", path.stem)
    return profile


def load_meter_profile(name_or_path: str) -> dict[str, Any]:
    """A meter profile by name (searched) or by path to a YAML file."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") or candidate.is_file():
        path = candidate
        if not path.is_file():
            raise MeterProfileError(f"meter profile file {path} does not exist")
    else:
        profiles = find_meter_profiles()
        if name_or_path not in profiles:
            raise MeterProfileError(
                f"unknown meter {name_or_path!r}; known: {', '.join(sorted(profiles)) or 'none'}"
                f" (see `edgebench meters`; add a YAML file under {meter_dirs()[-1]})"
            )
        path = profiles[name_or_path].path
    try:
        with open(path) as handle:
            data = yaml.safe_load(handle)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise MeterProfileError(
            f"{path}:{where} is not valid YAML ({error.__class__.__name__})"
        ) from None
    return validate(data or {}, path)


def open_meter(name_or_path: str) -> Meter:
    """The meter a profile describes (not yet opened)."""
    profile = load_meter_profile(name_or_path)
    return meter_class(profile["driver"])(profile)

"""Device profiles: one YAML file per device, validated on load.

Profiles are looked up in the bundled `device_profiles/`, in `./device_profiles/` of the
current directory, and in the user's config directory (`~/.config/edgebench/devices/`, or
`$EDGEBENCH_CONFIG_DIR/devices/`); a later place overrides an earlier one with the same name.
A typo in a key is the commonest profile bug, so unknown keys are errors, not ignored.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ..agent.runtime import DELEGATES, RUNTIMES
from .base import Device, DeviceError
from .registry import transport_class

DEFAULT_DEVICE = "local"
COMMON_KEYS: dict[str, type | tuple[type, ...]] = {
    "name": str,
    "transport": str,
    "description": str,
    "runtime": str,
    "delegate": str,
    "threads": int,
    "affinity": (list, type(None)),
    "loop": str,
    "meter": (str, type(None)),
}
CHOICES = {
    "runtime": ("auto", *RUNTIMES),
    "delegate": DELEGATES,
    "loop": ("auto", "loadgen", "native"),
}
DEFAULTS = {
    "runtime": "auto",
    "delegate": "xnnpack",
    "threads": 1,
    "affinity": None,
    "loop": "auto",
    "meter": None,
}


class ProfileError(DeviceError):
    """A profile file that cannot be used as written."""


@dataclass(frozen=True)
class ProfileFile:
    name: str
    path: Path


def bundled_dir() -> Path:
    return Path(str(resources.files("edgebench"))) / "device_profiles"


def user_dir() -> Path:
    base = os.environ.get("EDGEBENCH_CONFIG_DIR") or os.path.expanduser("~/.config/edgebench")
    return Path(base) / "devices"


def search_dirs() -> list[Path]:
    return [bundled_dir(), Path.cwd() / "device_profiles", user_dir()]


def find_profile_files(directories: list[Path]) -> dict[str, ProfileFile]:
    """Every `*.yaml` under `directories` by file stem; a later directory wins a name."""
    found: dict[str, ProfileFile] = {}
    for directory in directories:
        if directory.is_dir():
            for path in sorted(directory.glob("*.yaml")):
                found[path.stem] = ProfileFile(path.stem, path)
    return found


def find_profiles() -> dict[str, ProfileFile]:
    return find_profile_files(search_dirs())


def _type_name(expected: type | tuple[type, ...]) -> str:
    kinds = expected if isinstance(expected, tuple) else (expected,)
    return " or ".join("null" if k is type(None) else k.__name__ for k in kinds)


def check_keys(
    data: dict[str, Any],
    allowed: dict[str, type | tuple[type, ...]],
    path: Path,
    owner: str,
    error: type[Exception],
) -> None:
    """Refuse keys `owner` (e.g. "transport 'ssh'") does not know and values of the wrong type.

    Device and meter profiles share this so both word a bad file the same way: the file, the
    key, and what was expected. A bool is not accepted for a number (YAML's `yes` is no 1).
    """
    for key, value in data.items():
        if key not in allowed:
            raise error(
                f"{path}: unknown key {key!r} for {owner} (allowed: {', '.join(sorted(allowed))})"
            )
        expected = allowed[key]
        kinds = expected if isinstance(expected, tuple) else (expected,)
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
            raise error(
                f"{path}: key {key!r} must be {_type_name(expected)}, "
                f"got {type(value).__name__} {value!r}"
            )


def read_profile(
    name_or_path: str,
    found: dict[str, ProfileFile],
    validate: Callable[[Any, Path], dict[str, Any]],
    error: type[Exception],
    *,
    what: str,
    listing: str,
) -> dict[str, Any]:
    """The profile named `name_or_path` in `found`, or at that path, through `validate`.

    `what` names the kind in messages ("device", "meter"); `listing` says where to see the
    known ones and add one. Both profile kinds resolve names and read YAML this one way.
    """
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") or candidate.is_file():
        path = candidate
        if not path.is_file():
            raise error(f"{what} profile file {path} does not exist")
    else:
        if name_or_path not in found:
            raise error(
                f"unknown {what} {name_or_path!r}; known: {', '.join(sorted(found)) or 'none'} "
                f"({listing})"
            )
        path = found[name_or_path].path
    try:
        with open(path) as handle:
            data = yaml.safe_load(handle)
    except yaml.YAMLError as problem:
        mark = getattr(problem, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise error(f"{path}:{where} is not valid YAML ({problem.__class__.__name__})") from None
    return validate(data or {}, path)


def validate(data: Any, path: Path) -> dict[str, Any]:
    """Check keys and types; return the profile with defaults filled in."""
    if not isinstance(data, dict):
        raise ProfileError(f"{path}: a profile must be a mapping of keys to values")
    transport = data.get("transport", "local")
    if not isinstance(transport, str):
        raise ProfileError(f"{path}: key 'transport' must be str, got {type(transport).__name__}")
    device_class: type[Device] = transport_class(transport)
    allowed = {**COMMON_KEYS, **device_class.profile_keys}
    check_keys(data, allowed, path, f"transport {transport!r}", ProfileError)
    for key, value in data.items():
        if key in CHOICES and value not in CHOICES[key]:
            raise ProfileError(
                f"{path}: key {key!r} is {value!r}; use one of {', '.join(CHOICES[key])}"
            )
    profile = {**DEFAULTS, **data}
    profile.setdefault("name", path.stem)
    profile["transport"] = transport
    return profile


def load_profile(name_or_path: str) -> dict[str, Any]:
    """A profile by name (searched) or by path to a YAML file."""
    listing = f"see `edgebench devices`; add a YAML file under {user_dir()}"
    found = find_profiles()
    return read_profile(name_or_path, found, validate, ProfileError, what="device", listing=listing)


def open_device(name_or_path: str = DEFAULT_DEVICE) -> Device:
    profile = load_profile(name_or_path)
    return transport_class(profile["transport"])(profile)

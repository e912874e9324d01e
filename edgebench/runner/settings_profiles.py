"""Settings profiles (quick, submission) and the user's override file, merged into one dict.

The merged dict becomes the run's single user.conf on the device (the agent adds LoadGen's
latency/QPS hints from its calibration where the user set none). `quick` is for bench work:
10 s minimum duration, results labelled not submission-grade. `submission` keeps LoadGen's
embedded mlperf.conf values (600 s, official seeds).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..agent.settings import SettingsError, lookup, parse_user_conf

QUICK_MIN_DURATION_MS = 10000


@dataclass(frozen=True)
class SettingsProfile:
    name: str
    submission_grade: bool
    values: dict[str, object] = field(default_factory=dict)
    description: str = ""


SETTINGS_PROFILES = {
    "quick": SettingsProfile(
        "quick",
        submission_grade=False,
        values={"min_duration": QUICK_MIN_DURATION_MS},
        description="10 s minimum duration; for bench work, not submission-grade",
    ),
    "submission": SettingsProfile(
        "submission",
        submission_grade=True,
        description="MLPerf durations (600 s) and seeds from LoadGen's embedded mlperf.conf",
    ),
}


def settings_profile(name: str) -> SettingsProfile:
    if name not in SETTINGS_PROFILES:
        raise SettingsError(
            f"unknown settings profile {name!r}; use one of {', '.join(SETTINGS_PROFILES)}"
        )
    return SETTINGS_PROFILES[name]


def merged_settings(
    profile: SettingsProfile,
    model: str,
    scenario: str,
    override_file: Path | None = None,
    extra: dict[str, object] | None = None,
) -> dict[str, object]:
    """Profile values, then the override file's matching rows, then command-line values."""
    values = dict(profile.values)
    if override_file is not None:
        if not override_file.is_file():
            raise SettingsError(f"settings file {override_file} does not exist")
        rows = parse_user_conf(override_file.read_text())
        for key in {row[2] for row in rows}:
            value = lookup(rows, model, scenario, key)
            if value is not None:
                values[key] = value
    values.update(extra or {})
    return values

"""Compliance-test settings (MLPerf's audit.config) and the native loop's way of honouring them.

MLPerf runs a compliance test by dropping an ``audit.config`` into the benchmark's working
directory: LoadGen reads it last, over everything else, so the very binary that made the
submission runs unchanged. The agent does the same for LoadGen (the plan's ``audit`` dict
becomes ``audit.config`` in the output directory, LoadGen's cwd); the native loop applies
the same keys itself:

* ``accuracy_log_sampling_target`` (TEST01): in performance mode, about that many responses
  are copied to the accuracy log, spread evenly over the run from an offset drawn with
  ``accuracy_log_rng_seed``; the probability is LoadGen's target / expected sample count.
* ``performance_issue_same`` with ``performance_issue_same_index`` (TEST04): every query
  repeats one sample of the loaded set (the native loop's scenarios read the settings).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Dict, Optional

import numpy as np

from .native_plan import Plan
from .recorder import AccuracyLog
from .settings import EffectiveSettings, SettingsError

AUDIT_KEYS = (
    "accuracy_log_rng_seed",
    "accuracy_log_sampling_target",
    "performance_issue_same",
    "performance_issue_same_index",
)
AUDIT_FILE = "audit.config"


def check_audit(audit: object) -> Dict[str, int]:
    """The plan's audit dict as non-negative ints; unknown keys are an error, not ignored."""
    if not audit:
        return {}
    if not isinstance(audit, dict):
        raise SettingsError(f"plan 'audit' must be a mapping of {', '.join(AUDIT_KEYS)}")
    values = {}
    for key, value in audit.items():
        if key not in AUDIT_KEYS:
            raise SettingsError(f"audit key {key!r} is unknown (known: {', '.join(AUDIT_KEYS)})")
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise SettingsError(f"audit {key} = {value!r} must be a non-negative integer")
        values[key] = value
    return values


def render_audit_config(audit: Dict[str, int]) -> str:
    """audit.config text: `*.*.key = value` rows, which apply to any model and scenario."""
    lines = ["# edgebench compliance test settings (read by LoadGen after user.conf)"]
    lines += [f"*.*.{key} = {audit[key]}" for key in AUDIT_KEYS if key in audit]
    return "\n".join(lines) + "\n"


def apply_audit(settings: EffectiveSettings, audit: Dict[str, int]) -> EffectiveSettings:
    """The effective settings with the audit values in force (as LoadGen reports them)."""
    if not audit:
        return settings
    return dataclasses.replace(
        settings,
        accuracy_log_rng_seed=audit.get("accuracy_log_rng_seed", 0),
        accuracy_log_sampling_target=audit.get("accuracy_log_sampling_target", 0),
        performance_issue_same=bool(audit.get("performance_issue_same", 0)),
        performance_issue_same_index=audit.get("performance_issue_same_index", 0),
    )


def sampling_probability(plan: Plan, target: int) -> float:
    """LoadGen's: target / expected samples (the expected count never below the minimum)."""
    seconds = plan.min_duration_ns / 1e9
    if plan.scenario == "Offline":
        expected = int(plan.target_qps * seconds)
        minimum = plan.min_sample_count
    else:
        expected = int(plan.target_qps * seconds) * plan.samples_per_query
        minimum = plan.min_query_count * plan.samples_per_query
    return min(1.0, target / max(expected, minimum, 1))


def sample_outputs(
    infer: Callable[[int], None],
    output: Callable[[], bytes],
    log: AccuracyLog,
    probability: float,
    seed: int,
) -> Callable[[int], None]:
    """infer() that also logs every (1/probability)-th response, from a seeded offset."""
    offset = float(np.random.Generator(np.random.MT19937(seed & 0xFFFFFFFF)).random())
    state = {"seq": 0, "bucket": math.floor(offset)}

    def infer_sampled(index: int) -> None:
        infer(index)
        seq = state["seq"]
        state["seq"] = seq + 1
        bucket = math.floor(seq * probability + offset)
        if bucket != state["bucket"]:
            state["bucket"] = bucket
            log.add(seq, index, output())

    return infer_sampled


def issued_sample(loaded: np.ndarray, settings: EffectiveSettings) -> Optional[int]:
    """The one sample TEST04 repeats (a position in the loaded set), or None."""
    if not settings.performance_issue_same:
        return None
    return int(loaded[settings.performance_issue_same_index % len(loaded)])

"""LoadGen-style test settings: one user.conf per run, the same effective values in both loops.

The official LoadGen embeds mlperf.conf and applies exactly one user.conf on top of it. The
native loop must honour the same keys and the same layering, so the embedded defaults that
matter for a model that is not one of MLPerf's (`*` rows of mlperf.conf) are restated here and
the user.conf grammar (``model.scenario.key = value``) is parsed here, once, for both loops.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Tuple

SCENARIOS = ("SingleStream", "MultiStream", "Server", "Offline")
MODES = ("performance", "accuracy")

# The official run seeds from LoadGen's embedded mlperf.conf (user.conf cannot change them).
QSL_RNG_SEED = 2085463073848966840
SAMPLE_INDEX_RNG_SEED = 2747215439041700203
SCHEDULE_RNG_SEED = 16159082839903944936

# Keys a user.conf may set, with how to convert the text value: ms/percent are scaled as
# LoadGen does when it reads them.
_CONF_KEYS = {
    "target_latency": "ms",
    "target_latency_percentile": "percent",
    "target_qps": "float",
    "samples_per_query": "int",
    "min_duration": "ms",
    "max_duration": "ms",
    "min_query_count": "int",
    "max_query_count": "int",
    "performance_sample_count_override": "int",
    "max_async_queries": "int",
}

# LoadGen's TestSettings defaults overlaid with the `*` rows of its embedded mlperf.conf, as
# read back from LoadGen 6.0.17 after a FromConfig with an empty user.conf.
_BASE = {
    "SingleStream": {
        "target_latency": 10.0,
        "target_latency_percentile": 90.0,
        "samples_per_query": 1,
        "min_duration": 600000.0,
        "min_query_count": 100,
    },
    "MultiStream": {
        "target_latency": 80.0,
        "target_latency_percentile": 99.0,
        "samples_per_query": 8,
        "min_duration": 600000.0,
        "min_query_count": 662,
    },
    "Server": {
        "target_latency": 10.0,
        "target_latency_percentile": 99.0,
        "target_qps": 1.0,
        "samples_per_query": 1,
        "min_duration": 600000.0,
        "min_query_count": 100,
    },
    "Offline": {
        "target_qps": 1.0,
        "samples_per_query": 1,
        "min_duration": 600000.0,
        "min_query_count": 100,
    },
}
_COMMON = {"max_duration": 0.0, "max_query_count": 0, "max_async_queries": 0}

# LoadGen splits lines on " = "; a line without the spaces is silently ignored there, so
# it is an error here rather than a setting that applies in one loop only.
_LINE = re.compile(r"^\s*([^.#\s]+)\.([^.\s]+)\.([A-Za-z0-9_]+) = (\S+)\s*$")


class SettingsError(ValueError):
    """A user.conf line or value LoadGen would reject (raised before any run starts)."""


@dataclass
class EffectiveSettings:
    """The values a run uses, in LoadGen's units (ns, fractions), after all layering."""

    scenario: str
    mode: str
    samples_per_query: int
    target_latency_ns: int
    target_latency_percentile: float
    target_qps: float
    min_duration_ms: float
    max_duration_ms: float
    min_query_count: int
    max_query_count: int
    max_async_queries: int
    performance_sample_count: int
    accuracy_sample_count: int
    qsl_rng_seed: int = QSL_RNG_SEED
    sample_index_rng_seed: int = SAMPLE_INDEX_RNG_SEED
    schedule_rng_seed: int = SCHEDULE_RNG_SEED
    # Compliance tests only (set from audit.config, see audit.py); off in every other run.
    accuracy_log_rng_seed: int = 0
    accuracy_log_sampling_target: int = 0
    performance_issue_same: bool = False
    performance_issue_same_index: int = 0

    def to_dict(self) -> Dict[str, object]:
        return asdict(self)


def parse_user_conf(text: str) -> List[Tuple[str, str, str, str]]:
    """Return (model, scenario, key, value) rows; unknown keys and bad lines are errors."""
    rows = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = _LINE.match(line)
        if not match:
            raise SettingsError(
                f"user.conf line {number}: {raw.strip()!r} is not 'model.Scenario.key = value' "
                f"(with a space on each side of '=')"
            )
        model, scenario, key, value = match.groups()
        if scenario != "*" and scenario not in SCENARIOS:
            raise SettingsError(
                f"user.conf line {number}: unknown scenario {scenario!r} "
                f"(use one of {', '.join(SCENARIOS)} or *)"
            )
        if key not in _CONF_KEYS:
            raise SettingsError(
                f"user.conf line {number}: unknown key {key!r} "
                f"(known: {', '.join(sorted(_CONF_KEYS))})"
            )
        _convert(key, value, number)
        rows.append((model, scenario, key, value))
    return rows


def _convert(key: str, value: str, number: int = 0) -> float:
    try:
        return float(value) if _CONF_KEYS[key] != "int" else int(value)
    except ValueError:
        raise SettingsError(f"user.conf line {number}: {key} = {value!r} is not a number") from None


def lookup(
    rows: List[Tuple[str, str, str, str]], model: str, scenario: str, key: str
) -> Optional[str]:
    """LoadGen's precedence: model.scenario > *.scenario > model.* > *.*."""
    for want_model, want_scenario in ((model, scenario), ("*", scenario), (model, "*"), ("*", "*")):
        found = None
        for row_model, row_scenario, row_key, value in rows:
            if (row_model, row_scenario, row_key) == (want_model, want_scenario, key):
                found = value
        if found is not None:
            return found
    return None


def render_user_conf(model: str, scenario: str, values: Dict[str, object]) -> str:
    """One user.conf holding every setting of the run, so LoadGen reads it in one FromConfig."""
    lines = [f"# edgebench: the single user.conf of this run ({model}, {scenario})"]
    for key in sorted(values):
        if key not in _CONF_KEYS:
            raise SettingsError(f"setting {key!r} is not a user.conf key")
        lines.append(f"{model}.{scenario}.{key} = {values[key]}")
    return "\n".join(lines) + "\n"


def effective_settings(
    user_conf: str, model: str, scenario: str, mode: str, total_count: int, performance_count: int
) -> EffectiveSettings:
    """Apply user.conf over the embedded defaults, as LoadGen's FromConfig + StartTest do."""
    if scenario not in SCENARIOS:
        raise SettingsError(f"unknown scenario {scenario!r} (use one of {', '.join(SCENARIOS)})")
    if mode not in MODES:
        raise SettingsError(f"unknown mode {mode!r} (use one of {', '.join(MODES)})")
    rows = parse_user_conf(user_conf)
    values: Dict[str, float] = dict(_COMMON)
    values.update(_BASE[scenario])
    for key in _CONF_KEYS:
        text = lookup(rows, model, scenario, key)
        if text is not None:
            values[key] = _convert(key, text)
    override = int(values.get("performance_sample_count_override", 0))
    perf_count = override if override > 0 else performance_count
    latency_ms = float(values.get("target_latency", 0.0))
    if scenario == "Server":
        latency_ms = float(int(latency_ms))  # LoadGen reads Server's bound in whole ms
    return EffectiveSettings(
        scenario=scenario,
        mode=mode,
        samples_per_query=int(values["samples_per_query"]) if scenario == "MultiStream" else 1,
        target_latency_ns=round(latency_ms * 1e6),
        target_latency_percentile=float(values.get("target_latency_percentile", 90.0)) / 100.0,
        target_qps=float(values.get("target_qps", 1.0)),
        min_duration_ms=float(values["min_duration"]),
        max_duration_ms=float(values["max_duration"]),
        min_query_count=int(values["min_query_count"]),
        max_query_count=int(values["max_query_count"]),
        max_async_queries=int(values["max_async_queries"]),
        performance_sample_count=min(perf_count, total_count),
        accuracy_sample_count=total_count,
    )

"""user.conf layering: our parser must agree with the official LoadGen's FromConfig."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edgebench.agent.settings import (
    SettingsError,
    effective_settings,
    parse_user_conf,
    render_user_conf,
)
from edgebench.runner.settings_profiles import merged_settings, settings_profile

READ_BACK = """
import json, sys, mlperf_loadgen as lg
path, model, scenario = sys.argv[1:]
s = lg.TestSettings()
s.scenario = getattr(lg.TestScenario, scenario)
s.FromConfig(path, model, scenario)
prefix = {"SingleStream": "single_stream", "MultiStream": "multi_stream"}.get(scenario)
out = {"min_duration_ms": s.min_duration_ms, "min_query_count": s.min_query_count,
       "max_query_count": s.max_query_count, "qsl_rng_seed": s.qsl_rng_seed}
if prefix:
    out["target_latency_ns"] = getattr(s, prefix + "_expected_latency_ns")
    out["target_latency_percentile"] = getattr(s, prefix + "_target_latency_percentile")
if scenario == "Server":
    out["target_latency_ns"] = s.server_target_latency_ns
    out["target_latency_percentile"] = s.server_target_latency_percentile
    out["target_qps"] = s.server_target_qps
if scenario == "Offline":
    out["target_qps"] = s.offline_expected_qps
print(json.dumps(out))
"""


def loadgen_reads(conf: Path, model: str, scenario: str) -> dict:
    pytest.importorskip("mlperf_loadgen")
    done = subprocess.run(
        [sys.executable, "-c", READ_BACK, str(conf), model, scenario],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


CONF = """
# a comment
*.*.min_query_count = 321
kws.*.max_query_count = 99999
*.SingleStream.target_latency = 0.25
kws.SingleStream.target_latency_percentile = 95
kws.Server.target_qps = 123.5
kws.Server.target_latency = 2.7
*.Offline.target_qps = 4567
kws.MultiStream.min_duration = 1234
"""


@pytest.mark.parametrize("scenario", ["SingleStream", "MultiStream", "Server", "Offline"])
def test_effective_settings_match_loadgen(scenario: str, tmp_path: Path) -> None:
    conf = tmp_path / "user.conf"
    conf.write_text(CONF)
    theirs = loadgen_reads(conf, "kws", scenario)
    ours = effective_settings(CONF, "kws", scenario, "performance", 1000, 1000)
    for key, value in theirs.items():
        assert getattr(ours, key) == pytest.approx(value), key


def test_precedence_model_scenario_beats_wildcards() -> None:
    text = "*.*.min_duration = 1\nkws.*.min_duration = 2\n*.Offline.min_duration = 3\n"
    assert effective_settings(text, "kws", "Offline", "performance", 10, 10).min_duration_ms == 3
    assert effective_settings(text, "kws", "Server", "performance", 10, 10).min_duration_ms == 2
    assert effective_settings(text, "ic", "Server", "performance", 10, 10).min_duration_ms == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("kws.SingleStream.min_duraton = 5", "unknown key 'min_duraton'"),
        ("kws.Singlestream.min_duration = 5", "unknown scenario 'Singlestream'"),
        ("kws.SingleStream.min_duration = fast", "is not a number"),
        ("min_duration = 5", "is not 'model.Scenario.key = value'"),
        ("kws.SingleStream.min_duration=5", "with a space on each side"),
    ],
)
def test_bad_user_conf_lines_are_named(text: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        parse_user_conf(text)


def test_render_then_parse_round_trips() -> None:
    text = render_user_conf("ic", "Offline", {"target_qps": 12.5, "min_duration": 1000})
    ours = effective_settings(text, "ic", "Offline", "performance", 10, 10)
    assert ours.target_qps == 12.5 and ours.min_duration_ms == 1000


def test_quick_profile_then_override_file_then_command_line(tmp_path: Path) -> None:
    override = tmp_path / "o.conf"
    override.write_text("*.*.min_duration = 2000\nic.Offline.min_query_count = 7\n")
    values = merged_settings(settings_profile("quick"), "ic", "Offline", override)
    assert values == {"min_duration": "2000", "min_query_count": "7"}
    values = merged_settings(
        settings_profile("quick"), "ic", "Offline", override, {"min_duration": 500}
    )
    assert values["min_duration"] == 500
    assert merged_settings(settings_profile("submission"), "ic", "Offline") == {}


def test_unknown_settings_profile_is_named() -> None:
    with pytest.raises(SettingsError, match="unknown settings profile 'fast'"):
        settings_profile("fast")

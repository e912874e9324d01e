"""edgebench submit and check on genuine quick runs of the local device: the tree's layout,
the quick rules passing it, the default rules rejecting it by rule id, and the one-line
errors of bad input."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from edgebench.submission import SubmissionError
from edgebench.submission import system_description as sysdesc
from edgebench.submission.rules import RULES_DIR, load_rules
from edgebench.submission.tree import assemble
from edgebench.suite.benchmarks import bundled_benchmarks, sha256_file

from .submission_support import SUBMITTER, findings, genuine_runs, mcu_runs, rule_ids, submit
from .support import run_cli

LINE = re.compile(r"^\S+: [a-z]+\.[a-z0-9-]+: .+$")


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    return genuine_runs(tmp_path_factory)


@pytest.fixture(scope="session")
def tree(runs, tmp_path_factory) -> Path:
    """The genuine submission, assembled by the real command."""
    out = tmp_path_factory.mktemp("tree") / "submission"
    done = run_cli(
        "submit",
        *map(str, runs.all()),
        "--system",
        str(runs.system_file),
        "--submitter",
        SUBMITTER,
        "--division",
        "closed",
        "--out",
        str(out),
        cwd=runs.root,
    )
    assert done.returncode == 0, done.stderr
    return out


def test_tree_has_the_mlperf_layout(tree, runs):
    top = tree / "closed" / SUBMITTER
    system = json.loads(next((top / "systems").glob("*.json")).read_text())
    assert system[sysdesc.CAPTURED]["device"] == "local"
    results = top / "results" / next((top / "systems").glob("*.json")).stem / "kws"
    for scenario in ("SingleStream", "Offline"):
        base = results / scenario
        for name in ("measurements.json", "user.conf", "README.md"):
            assert (base / name).is_file(), base / name
        run_1 = base / "performance" / "run_1"
        assert (run_1 / "mlperf_log_detail.txt").is_file()
        assert not (run_1 / "queries").exists(), "per-query arrays stay out of the tree"
        assert (base / "accuracy" / "mlperf_log_accuracy.json").is_file()
        assert (base / "accuracy" / "accuracy.txt").is_file()
        assert (base / "user.conf").read_text() == (run_1 / "user.conf").read_text()
        measurements = json.loads((base / "measurements.json").read_text())
        model = top / measurements["model_file"]
        assert sha256_file(model) == bundled_benchmarks()["kws"].model_sha256
    assert "edgebench" in (top / "src" / "VERSION.txt").read_text()


def test_genuine_submission_passes_quick_rules(tree, runs):
    done = run_cli("check", str(tree), "--rules", "quick", cwd=runs.root)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == ""
    assert "passed" in done.stderr


def test_default_rules_reject_quick_results_by_rule(tree, runs):
    done = run_cli("check", str(tree), cwd=runs.root)
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert lines and all(LINE.match(line) for line in lines), lines
    rules = {line.split(": ")[1] for line in lines}
    assert {"run.submission-grade", "performance.min-duration", "compliance.required"} <= rules
    assert any("settings profile 'quick'" in line for line in lines)
    # JSON output says the same
    done = run_cli("check", str(tree), "--json", cwd=runs.root)
    report = json.loads(done.stdout)
    assert report["passed"] is False and report["rules"] == "edgebench-0.1"
    assert {f["rule"] for f in report["failures"]} == rules


def test_template_lists_every_field_and_marks_what_to_fill(runs):
    done = run_cli("submit", "--system-template", cwd=runs.root)
    bare = json.loads(done.stdout)
    fields = {**sysdesc.REQUIRED_FIELDS, **sysdesc.POWER_FIELDS}
    assert set(fields) <= set(bare)
    assert bare["status"].startswith(sysdesc.FILL) and bare["cooling"].startswith(sysdesc.FILL)
    done = run_cli("submit", "--system-template", *map(str, runs.all()), cwd=runs.root)
    filled = json.loads(done.stdout)
    result = json.loads((runs.all()[0] / "result.json").read_text())
    assert filled["host_processor_model_name"] == result["system"]["cpu_model"]
    assert filled["device_category"] == "edge-linux"
    assert filled["status"].startswith(sysdesc.FILL)  # nothing can read availability


def test_unfilled_description_fails_only_on_its_fields(runs, tmp_path):
    submit(runs.all(), tmp_path / "sub", system_file=None)
    lines = findings(tmp_path / "sub")
    assert lines and all(": system.fields: " in line for line in lines), lines
    assert any("cooling is missing" in line for line in lines)


def _cli(*args: str, cwd: Path):
    """The command with a wide terminal, so rich does not wrap the one-line message."""
    return run_cli(*args, cwd=cwd, env={"COLUMNS": "400"})


def _error(done) -> str:
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgebench: error: "), done.stderr
    return lines[0]


def test_bad_input_gets_one_line_errors(runs, tmp_path):
    run_args = [str(p) for p in runs.all()]
    line = _error(_cli("submit", "--submitter", "x", "--out", str(tmp_path), cwd=tmp_path))
    assert "no runs given" in line
    line = _error(_cli("submit", *run_args, "--out", str(tmp_path), cwd=tmp_path))
    assert "--submitter" in line
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    line = _error(
        _cli("submit", *run_args, "--submitter", "x", "--system", str(broken), cwd=tmp_path)
    )
    assert "not valid JSON" in line and "--system-template" in line
    line = _error(_cli("submit", str(tmp_path), "--submitter", "x", cwd=tmp_path))
    assert "no finished runs" in line
    line = _error(_cli("check", str(tmp_path / "nowhere"), cwd=tmp_path))
    assert "is not a directory" in line
    line = _error(_cli("check", str(tmp_path), "--rules", "nonesuch", cwd=tmp_path))
    assert "unknown rule set 'nonesuch'" in line and "quick" in line


def test_submit_refuses_runs_from_two_systems_and_an_existing_tree(runs, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(runs.all()[0], other, ignore=shutil.ignore_patterns("queries"))
    result = json.loads((other / "result.json").read_text())
    result["system"]["hostname"] = "another-board"
    (other / "result.json").write_text(json.dumps(result))
    with pytest.raises(SubmissionError, match="more than one system"):
        submit([*runs.all(), other], tmp_path / "a", runs.system_file)
    submit(runs.all(), tmp_path / "b", runs.system_file)
    with pytest.raises(SubmissionError, match="exists already"):
        submit(runs.all(), tmp_path / "b", runs.system_file)


def test_submit_keeps_the_newest_run_per_slot(runs, tmp_path):
    older = tmp_path / "older"
    source = runs.dirs[("kws", "SingleStream", "performance")]
    shutil.copytree(source, older, ignore=shutil.ignore_patterns("queries"))
    result = json.loads((older / "result.json").read_text())
    result["run_id"] = "19990101-000000-000-" + result["run_id"].split("-", 3)[3]
    (older / "result.json").write_text(json.dumps(result))
    out = tmp_path / "sub"
    submit([older, *runs.all()], out, runs.system_file)
    placed = next(out.glob("closed/*/results/*/kws/SingleStream/performance/run_1"))
    assert json.loads((placed / "result.json").read_text())["run_id"] != result["run_id"]
    assert rule_ids(out) == set()


def test_submit_keeps_the_runs_the_compliance_tests_audited(runs, tmp_path):
    """A newer performance run must not displace the one TEST01 audited."""
    source = runs.dirs[("kws", "SingleStream", "performance")]
    audited = json.loads((source / "result.json").read_text())["run_id"]
    newer, test01 = tmp_path / "newer", tmp_path / "test01"
    for copy, run_id in (
        (newer, "29991231-235959-999-local-kws-SingleStream-performance"),
        (test01, "29991231-235959-998-local-kws-SingleStream-TEST01"),
    ):
        shutil.copytree(source, copy, ignore=shutil.ignore_patterns("queries"))
        result = json.loads((copy / "result.json").read_text())
        result["run_id"] = run_id
        (copy / "result.json").write_text(json.dumps(result))
    result = json.loads((test01 / "result.json").read_text())
    result["mode"] = "compliance"
    result["compliance"] = {
        "test": "TEST01",
        "passed": True,
        "reasons": [],
        "reference_runs": [{"role": "performance", "run_id": audited}],
    }
    (test01 / "result.json").write_text(json.dumps(result))
    out = tmp_path / "sub"
    assembly = assemble([newer, test01, *runs.all()], out, SUBMITTER, "closed", runs.system_file)
    placed = next(out.glob("closed/*/results/*/kws/SingleStream/performance/run_1"))
    assert json.loads((placed / "result.json").read_text())["run_id"] == audited
    assert any(str(newer) in note for note in assembly.skipped)
    assert (placed.parent.parent / "TEST01" / "result.json").is_file()
    assert "compliance.references" not in rule_ids(out)


def test_rule_sets_are_versioned_data():
    default, quick = load_rules(), load_rules("quick")
    assert default.name == "edgebench-0.1" and quick.name == "quick"
    assert "compliance.required" in default.rules and "compliance.required" not in quick.rules
    assert quick.param("run.submission-grade", "settings_profiles") == ["quick", "submission"]
    assert default.param("settings.seeds", "schedule_rng_seed") == 16159082839903944936
    # quick inherits what it does not override
    assert quick.rules["logs.detail-keys"] == default.rules["logs.detail-keys"]


def test_rule_benchmarks_match_the_suite_manifest():
    rules = yaml.safe_load((RULES_DIR / "edgebench-0.1.yaml").read_text())["benchmarks"]
    for name, benchmark in bundled_benchmarks().items():
        entry = rules[name]
        assert entry["model_sha256"] == benchmark.model_sha256, name
        assert entry["dataset_sha256"] == benchmark.dataset_sha256, name
        assert entry["dataset_count"] == benchmark.dataset_count, name
        assert entry["target"] == pytest.approx(benchmark.target), name
        assert entry["metric"] == benchmark.metric, name


def test_bad_rule_files_are_refused(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\nrules: {}\nthresholds: 1\n")
    with pytest.raises(SubmissionError, match="unknown top-level key"):
        load_rules(str(path))
    path.write_text("name: mine\nextends: quick\nrules: {}\ndisabled: [no.such-rule]\n")
    with pytest.raises(SubmissionError, match="disables unknown rule"):
        load_rules(str(path))
    path.write_text("name: mine\nextends: quick\nrules: {}\ndisabled: [energy.required]\n")
    assert not load_rules(str(path)).enabled("energy.required")


@pytest.fixture(scope="session")
def mcu_tree(tmp_path_factory) -> Path:
    runs = mcu_runs(tmp_path_factory)
    out = tmp_path_factory.mktemp("mcu-tree")
    return submit(runs.all(), out, runs.system_file)


def test_microcontroller_runs_are_checked_by_mlperf_tiny_rules(mcu_tree):
    base = next(mcu_tree.glob(f"closed/{SUBMITTER}/results/*/kws/mlperf-tiny"))
    assert (base / "performance" / "run_1" / "dut_log.txt").is_file()
    system = json.loads(next(mcu_tree.glob(f"closed/{SUBMITTER}/systems/*.json")).read_text())
    assert system["device_category"] == "mcu" and system["framework"].startswith("firmware")
    lines = findings(mcu_tree)
    # the five windows, their median and results.txt all check out against the DUT's log;
    # only the accuracy run is missing (too slow over a serial line for this test)
    assert [line.split(": ")[1] for line in lines] == ["files.required"], lines
    assert "accuracy: files.required: no accuracy run" in lines[0]
    default = rule_ids(mcu_tree, rules="edgebench-0.1")
    assert {"performance.min-duration", "run.submission-grade"} <= default
    assert "compliance.required" not in default  # microcontrollers need no compliance tests


def test_every_rule_is_checked_and_documented():
    """A rule id the checks report must exist in the rule set (else it would be dropped
    silently), every rule must be checked somewhere, and the docs must name each one."""
    source = (
        "".join(path.read_text() for path in (RULES_DIR.parent / "checks").glob("*.py"))
        + (RULES_DIR.parent / "checker.py").read_text()
    )
    reported = set(re.findall(r'"([a-z]+\.[a-z][a-z0-9-]+)",?\s*(?:\n|f?")', source))
    reported = {rule for rule in reported if not rule.endswith((".json", ".txt", ".conf"))}
    rules = set(load_rules().rules)
    assert reported <= rules, reported - rules
    assert rules <= reported, rules - reported
    docs = Path(__file__).resolve().parents[1] / "docs"
    text = (docs / "rules.md").read_text() + (docs / "submission.md").read_text()
    assert not [rule for rule in rules if f"`{rule}`" not in text]

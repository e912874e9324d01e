"""`edgebench publish` over two real submission trees (one with energy from the PTDaemon
emulator and a TEST04 compliance run), checked as CSV and in headless Chromium."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from edgebench.submission import system_description as sysdesc

from .browser import Browser, find_chromium
from .support import run_cli, run_json
from .test_energy_run import meter_profile


def run_json_command(*args: str, cwd: Path) -> list[dict]:
    """Any edgebench command with --json, parsed (its exit code is the caller's business)."""
    done = run_cli(*args, "--json", cwd=cwd)
    assert done.stdout.strip(), f"no JSON output; stderr: {done.stderr}"
    return json.loads(done.stdout)


RUN = ("-b", "kws", "--duration", "1.5")


def submit(root: Path, submitter: str, system_name: str, runs: list[Path]) -> Path:
    """Submit the runs with a filled-in system description; returns the tree root."""
    template = run_cli("submit", "--system-template", *map(str, runs), cwd=root)
    assert template.returncode == 0, template.stderr
    system = json.loads(template.stdout)
    for key, value in system.items():
        if isinstance(value, str) and value.startswith(sysdesc.FILL):
            system[key] = f"{key} of {system_name}"
    system.update(submitter=submitter, system_name=system_name, board_name=f"{system_name} rev 1")
    system_file = root / f"{submitter}.json"
    system_file.write_text(json.dumps(system))
    out = root / f"submission-{submitter}"
    done = run_cli(
        "submit", "--system", str(system_file), "--submitter", submitter, "--out", str(out),
        *map(str, runs), cwd=root,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> tuple[Path, dict[str, dict]]:
    """Site of two submissions; returns the site directory and the performance results."""
    root = tmp_path_factory.mktemp("publish")
    results = root / "results"
    activity = root / "activity.jsonl"
    meter = meter_profile(root / "ptd.yaml", activity, ranging=False, volts_range=230, amps_range=1)
    env = {"EDGEBENCH_TEST_ACTIVITY_FILE": str(activity)}
    alpha = run_json(
        *RUN, "-s", "SingleStream", "--meter", str(meter), "--results", str(results),
        cwd=root, env=env,
    )  # fmt: skip
    performance = next(r for r in alpha if r["mode"] == "performance")
    # TEST04 against the metered run: its verdict (pass, or a fail on a busy machine where
    # the meter emulator slowed the reference) must reach the page either way.
    test04 = run_json_command(
        "compliance", *RUN, "-s", "SingleStream", "--test", "TEST04", "--results", str(results),
        "--performance-run", str(results / performance["run_id"]), cwd=root,
    )[-1]  # fmt: skip
    alpha_dirs = sorted(results.iterdir())
    beta = run_json(*RUN, "-s", "SingleStream", "--results", str(root / "beta"), cwd=root)
    beta += run_json(
        *RUN, "-s", "Offline", "-m", "performance", "--results", str(root / "beta"), cwd=root
    )
    trees = [
        submit(root, "alpha", "Board A", alpha_dirs),
        submit(root, "beta", "Board B", sorted((root / "beta").iterdir())),
    ]
    site = root / "site"
    done = run_cli("publish", *map(str, trees), "--out", str(site), "--json", cwd=root)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["rows"] == 3
    by_system = {
        ("Board A", "SingleStream"): {**performance, "test04": test04["compliance"]["passed"]},
        **{("Board B", r["scenario"]): r for r in beta if r["mode"] == "performance"},
    }
    return site, by_system


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_csv_rows_carry_the_runs_figures(published) -> None:
    site, runs = published
    rows = read_csv(site / "results.csv")
    assert {(r["system"], r["scenario"]) for r in rows} == set(runs)
    for row in rows:
        result = runs[(row["system"], row["scenario"])]
        assert float(row["value"]) == pytest.approx(result["metrics"]["primary"][1])
        assert row["metric"] == result["metrics"]["primary"][0]
        assert row["benchmark"] == "kws" and row["device"].startswith(row["system"])
        energy = (result.get("energy") or {}).get("energy_per_inference_j")
        if energy is None:
            assert row["energy_per_inference_j"] == ""
        else:
            assert float(row["energy_per_inference_j"]) == pytest.approx(energy)
            assert float(row["average_power_w"]) == pytest.approx(
                result["energy"]["average_power_w"]
            )
        if row["scenario"] == "SingleStream":
            assert float(row["accuracy"]) > 0.9
        else:  # the Offline result has no accuracy run in beta's tree
            assert row["accuracy"] == "" and "no accuracy run" in row["issues"]
    alpha = next(r for r in rows if r["system"] == "Board A")
    passed = runs[("Board A", "SingleStream")]["test04"]
    assert alpha["compliance"] == ("TEST04 pass" if passed else "TEST04 FAIL")
    assert alpha["valid"] == str(passed) and ("TEST04 failed" in alpha["issues"]) != passed
    assert len(read_csv(site / "kws-SingleStream.csv")) == 2
    assert len(read_csv(site / "kws-Offline.csv")) == 1


def test_page_is_self_contained(published) -> None:
    site, _ = published
    page = (site / "index.html").read_text()
    assert "src=" not in page and 'href="http' not in page  # nothing fetched from anywhere


@pytest.fixture(scope="module")
def browser():
    executable = find_chromium()
    if executable is None:
        pytest.skip("Chromium not installed (apt-get install chromium); CI installs it")
    instance = Browser(executable)
    yield instance
    instance.close()


TABLE_ROWS = """Array.from(document.querySelectorAll(
  'table[data-scenario="%s"] tbody tr')).map(r => Array.from(r.cells).map(c => c.textContent))"""


def test_page_loads_in_chromium_without_errors(published, browser) -> None:
    site, runs = published
    passed = runs[("Board A", "SingleStream")]["test04"]
    browser.open(site / "index.html")
    browser.settle()
    assert browser.errors == []
    assert browser.evaluate("document.title") == "edgebench results"
    single = browser.evaluate(TABLE_ROWS % "SingleStream")
    assert sorted(row[0] for row in single) == ["Board A", "Board B"]
    board_a = next(row for row in single if row[0] == "Board A")
    assert board_a[-1] == ("valid" if passed else "TEST04 failed")
    assert "top1 0.9" in board_a[6] and board_a[7].endswith("J") and board_a[8].endswith(" W")
    offline = browser.evaluate(TABLE_ROWS % "Offline")
    assert [row[0] for row in offline] == ["Board B"] and "no accuracy run" in offline[0][-1]
    # One energy point (only Board A was metered), one bar chart per table.
    assert browser.evaluate("document.querySelectorAll('circle.point').length") == 1
    assert browser.evaluate("document.querySelectorAll('rect.bar').length") == 3


def test_tables_sort_on_header_click(published, browser) -> None:
    site, _ = published
    browser.open(site / "index.html")
    table = "table[data-scenario='SingleStream']"
    header = f'document.querySelector("{table} thead th:nth-child(%d)")'
    column = (
        f'Array.from(document.querySelectorAll("{table} tbody tr td:nth-child(%d)"))'
        ".map(c => c.textContent)"
    )
    browser.evaluate((header % 1) + ".click()")
    assert browser.evaluate(column % 1) == ["Board A", "Board B"]
    assert browser.evaluate((header % 1) + ".getAttribute('aria-sort')") == "ascending"
    browser.evaluate((header % 1) + ".click()")
    assert browser.evaluate(column % 1) == ["Board B", "Board A"]
    # Energy is numeric; the unmetered board's empty cell sorts last both ways.
    browser.evaluate((header % 8) + ".click()")
    assert browser.evaluate(column % 8)[-1] == "-"
    browser.evaluate((header % 8) + ".click()")
    assert browser.evaluate(column % 8)[-1] == "-"
    assert browser.errors == []


def test_not_a_submission_is_a_one_line_error(tmp_path: Path) -> None:
    done = run_cli("publish", str(tmp_path), "--out", str(tmp_path / "site"), cwd=tmp_path)
    assert done.returncode == 1
    assert "holds no results" in " ".join(done.stderr.split())
    assert not (tmp_path / "site").exists()

"""Tamperings, each caught by the rule it targets: some made to the results directories
before `submit`, some to the submission tree after it. The untampered copy passes, so every
failure below is the tampering's doing."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from edgebench.submission.checks.performance import POWER_TIME_FORMAT
from edgebench.suite.benchmarks import bundled_benchmarks

from .submission_support import (
    SUBMITTER,
    copy_runs,
    findings,
    genuine_runs,
    mcu_runs,
    rule_ids,
    submit,
)
from .support import run_json

SS = ("kws", "SingleStream")


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    return genuine_runs(tmp_path_factory)


@pytest.fixture(scope="session")
def genuine_tree(runs, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("genuine-tree")
    submit(runs.all(), out, runs.system_file)
    assert findings(out) == []
    return out


# --- helpers that edit files the way someone editing by hand would -------------------------


def edit_json(path: Path, change: Callable[[dict], None]) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=2))


def edit_detail(path: Path, key: str, value) -> None:
    """Set one key's value in a LoadGen detail log, keeping the line well-formed."""
    lines = path.read_text().splitlines()
    for number, line in enumerate(lines):
        entry = json.loads(line[len(":::MLLOG ") :])
        if entry["key"] == key:
            entry["value"] = value
            lines[number] = ":::MLLOG " + json.dumps(entry)
            break
    else:
        raise AssertionError(f"{key} not in {path}")
    path.write_text("\n".join(lines) + "\n")


def drop_detail_line(path: Path, key: str) -> None:
    lines = path.read_text().splitlines(keepends=True)
    kept = [line for line in lines if f'"key": "{key}"' not in line]
    assert len(kept) == len(lines) - 1
    path.write_text("".join(kept))


def scenario_dir(tree: Path, benchmark: str = "kws", scenario: str = "SingleStream") -> Path:
    return next(tree.glob(f"closed/{SUBMITTER}/results/*/{benchmark}/{scenario}"))


def perf(tree: Path) -> Path:
    return scenario_dir(tree) / "performance" / "run_1"


def acc(tree: Path) -> Path:
    return scenario_dir(tree) / "accuracy"


def tampered_copy(source: Path, tmp_path: Path, tamper: Callable[[Path], None]) -> Path:
    """A copy of the submission tree `source` (left as it is, shared by the cases), tampered."""
    tree = tmp_path / "tree"
    shutil.copytree(source, tree)
    tamper(tree)
    return tree


# --- tamperings made to results directories before submit ----------------------------------


def _edit_latency(run_dirs: dict) -> None:
    edit_json(
        run_dirs[(*SS, "performance")] / "result.json",
        lambda d: d["metrics"]["latency_ns"].update(p90=d["metrics"]["latency_ns"]["p90"] // 2),
    )


def _swap_model(run_dirs: dict) -> None:
    """Claim another model was used (its file and hash), as a run of it would say."""
    other = bundled_benchmarks()["ic"]

    def change(data: dict) -> None:
        data["model"] = {"file": str(other.model_path), "sha256": other.model_sha256}

    for mode in ("performance", "accuracy"):
        edit_json(run_dirs[(*SS, mode)] / "result.json", change)


def _change_seed(run_dirs: dict) -> None:
    edit_detail(
        run_dirs[(*SS, "performance")] / "mlperf_log_detail.txt", "effective_qsl_rng_seed", 12345
    )


def _shorten_run(run_dirs: dict) -> None:
    """A 5 s run made to look like the quick profile's own: conf and log agree on 5000 ms."""
    run = run_dirs[(*SS, "performance")]
    conf = run / "user.conf"
    conf.write_text(conf.read_text().replace("min_duration = 10000", "min_duration = 5000"))
    for key in ("requested_min_duration_ms", "effective_min_duration_ms"):
        edit_detail(run / "mlperf_log_detail.txt", key, 5000)


def _remove_accuracy_log(run_dirs: dict) -> None:
    (run_dirs[(*SS, "accuracy")] / "mlperf_log_accuracy.json").unlink()


def _end_run_early(run_dirs: dict) -> None:
    """The log says the run ended 5 s after it began (power_end moved back)."""
    detail = run_dirs[("kws", "Offline", "performance")] / "mlperf_log_detail.txt"
    begin = re.search(r'"key": "power_begin", "value": "([^"]+)"', detail.read_text()).group(1)
    end = datetime.strptime(begin, POWER_TIME_FORMAT) + timedelta(seconds=5)
    edit_detail(detail, "power_end", end.strftime(POWER_TIME_FORMAT)[:-3])


BEFORE_SUBMIT = {
    "edit a latency in result.json": (_edit_latency, "consistency.result-json"),
    "swap the model": (_swap_model, "model.reference"),
    "change a seed": (_change_seed, "settings.seeds"),
    "shorten the minimum duration": (_shorten_run, "performance.min-duration"),
    "remove the accuracy log": (_remove_accuracy_log, "files.required"),
    "end the run early": (_end_run_early, "performance.measured-duration"),
}


@pytest.mark.parametrize("name", list(BEFORE_SUBMIT))
def test_tampering_before_submit(name, runs, tmp_path):
    tamper, rule = BEFORE_SUBMIT[name]
    copied = copy_runs(list(runs.dirs.values()), tmp_path / "runs")
    copies = dict(zip(runs.dirs, copied, strict=True))
    tamper(copies)
    tree = submit(list(copies.values()), tmp_path / "tree", runs.system_file)
    lines = findings(tree)
    assert any(f": {rule}: " in line for line in lines), lines


# --- tamperings made to the tree after submit ------------------------------------------------


def _drop_detail_line(tree: Path) -> None:
    drop_detail_line(perf(tree) / "mlperf_log_detail.txt", "result_90.00_percentile_latency_ns")


def _flip_validity(tree: Path) -> None:
    edit_detail(perf(tree) / "mlperf_log_detail.txt", "result_validity", "INVALID")


def _lower_accuracy(tree: Path) -> None:
    """Rewrite 150 logged outputs so their top class is wrong, as a worse model's would be."""
    path = acc(tree) / "mlperf_log_accuracy.json"
    entries = json.loads(path.read_text())
    for entry in entries[:150]:
        values = bytearray(bytes.fromhex(entry["data"]))
        best = max(range(len(values)), key=lambda i: values[i] ^ 0x80)
        values[best], values[(best + 1) % len(values)] = 0x80, 0x7F  # int8 -128 and 127
        entry["data"] = values.hex().upper()
    path.write_text(json.dumps(entries))


def _remove_system_field(tree: Path) -> None:
    path = next(tree.glob(f"closed/{SUBMITTER}/systems/*.json"))
    edit_json(path, lambda d: d.pop("cooling"))


def _rename_benchmark(tree: Path) -> None:
    source = scenario_dir(tree).parent
    source.rename(source.with_name("ic"))


def _edit_summary(tree: Path) -> None:
    path = perf(tree) / "mlperf_log_summary.txt"
    path.write_text(
        re.sub(
            r"(90.00 percentile latency \(ns\)\s+: )(\d+)",
            lambda m: m.group(1) + str(int(m.group(2)) // 2),
            path.read_text(),
        )
    )


def _swap_model_file(tree: Path) -> None:
    model = next(tree.glob(f"closed/{SUBMITTER}/src/models/*.tflite"))
    shutil.copyfile(bundled_benchmarks()["ad"].model_path, model)


def _forbidden_conf_key(tree: Path) -> None:
    conf = perf(tree) / "user.conf"
    conf.write_text(conf.read_text() + "kws.SingleStream.max_query_count = 100\n")


def _edit_record(tree: Path) -> None:
    edit_json(
        perf(tree) / "record.json",
        lambda d: d["results"].update(result_query_count=d["results"]["result_query_count"] * 2),
    )


def _test_fault_in_record(tree: Path) -> None:
    edit_json(perf(tree) / "record.json", lambda d: d.update(test_sut_fault="cache"))


def _claim_native_loop(tree: Path) -> None:
    edit_json(perf(tree) / "result.json", lambda d: d.update(loop="native"))


def _issue_same_sample(tree: Path) -> None:
    edit_detail(perf(tree) / "mlperf_log_detail.txt", "effective_performance_issue_same", True)


def _failed_compliance(tree: Path) -> None:
    target = scenario_dir(tree) / "TEST04"
    shutil.copytree(perf(tree), target)
    edit_json(
        target / "result.json",
        lambda d: d.update(
            mode="compliance", compliance={"test": "TEST04", "passed": False, "reason": "faster"}
        ),
    )


def _compliance_of_another_run(tree: Path) -> None:
    """A passing TEST04 that audited some other performance run than the one submitted."""
    target = scenario_dir(tree) / "TEST04"
    shutil.copytree(perf(tree), target)
    other = {"role": "performance", "run_id": "20200101-000000-000-local-kws-SingleStream-x"}
    edit_json(
        target / "result.json",
        lambda d: d.update(
            mode="compliance",
            compliance={"test": "TEST04", "passed": True, "reasons": [], "reference_runs": [other]},
        ),
    )


def _declare_power(tree: Path) -> None:
    path = next(tree.glob(f"closed/{SUBMITTER}/systems/*.json"))
    edit_json(path, lambda d: d.update(power_measurement=True))


def _accuracy_hash(tree: Path) -> None:
    path = acc(tree) / "accuracy.txt"
    path.write_text(re.sub(r"hash=\w+", "hash=" + "0" * 64, path.read_text()))


def _garble_result(tree: Path) -> None:
    (acc(tree) / "result.json").write_text('{"schema": "edgebench.result/1", ')


def _text_for_a_number(tree: Path) -> None:
    edit_detail(perf(tree) / "mlperf_log_detail.txt", "result_query_count", "plenty")


def _move_division(tree: Path) -> None:
    (tree / "closed").rename(tree / "preview")


AFTER_SUBMIT = {
    "drop a line from the detail log": (_drop_detail_line, "logs.detail-keys"),
    "flip the validity": (_flip_validity, "performance.valid"),
    "lower accuracy in the accuracy log": (_lower_accuracy, "accuracy.target"),
    "remove a system field": (_remove_system_field, "system.fields"),
    "rename a benchmark directory": (_rename_benchmark, "files.run-identity"),
    "edit a latency in the summary": (_edit_summary, "consistency.summary"),
    "swap the model file": (_swap_model_file, "model.file"),
    "set a forbidden user.conf key": (_forbidden_conf_key, "settings.user-conf"),
    "edit the device record": (_edit_record, "consistency.record"),
    "run with a test-only fault": (_test_fault_in_record, "logs.test-fault"),
    "claim the other loop": (_claim_native_loop, "logs.harness"),
    "issue the same sample": (_issue_same_sample, "settings.fixed"),
    "add a failed compliance test": (_failed_compliance, "compliance.passed"),
    "compliance of another run": (_compliance_of_another_run, "compliance.references"),
    "declare power without energy": (_declare_power, "energy.required"),
    "edit the accuracy log hash": (_accuracy_hash, "accuracy.log-hash"),
    "invent a division": (_move_division, "files.layout"),
    "garble result.json": (_garble_result, "files.readable"),
    "text where a number belongs": (_text_for_a_number, "files.readable"),
}


@pytest.mark.parametrize("name", list(AFTER_SUBMIT))
def test_tampering_after_submit(name, genuine_tree, tmp_path):
    tamper, rule = AFTER_SUBMIT[name]
    tree = tampered_copy(genuine_tree, tmp_path, tamper)
    lines = findings(tree)
    assert any(f": {rule}: " in line for line in lines), lines


# --- energy: a metered run's energy.json against its own trace -------------------------------


@pytest.fixture(scope="module")
def energy_tree(runs, tmp_path_factory) -> Path:
    """A performance run with the emulated PTDaemon meter, submitted with the accuracy run."""
    root = tmp_path_factory.mktemp("energy")
    args = ("-b", "kws", "-s", "SingleStream", "-m", "performance", "--meter", "virtual-ptd")
    args += ("--duration", "5")  # the energy rules do not care; the test budget does
    (result,) = run_json(*args, "--results", str(root / "results"), cwd=root)
    run = root / "results" / result["run_id"]
    assert (run / "energy.json").is_file() and (run / "power" / "meta.json").is_file()
    tree = root / "tree"
    submit([run, runs.dirs[(*SS, "accuracy")]], tree, runs.system_file)
    return tree


def test_genuine_energy_passes(energy_tree):
    # Only the 5 s duration falls short of the quick rules; every energy rule holds.
    assert rule_ids(energy_tree) == {"performance.min-duration", "performance.measured-duration"}


def _fake_energy(tree: Path) -> None:
    """Halve every energy figure, consistently, in energy.json and result.json."""
    run = perf(tree)

    def halve(data: dict) -> None:
        for window in data["windows"]:
            for key in ("energy_j", "average_power_w", "energy_per_inference_j"):
                window[key] /= 2
        data["energy_per_inference_j"] /= 2
        data["average_power_w"] /= 2

    edit_json(run / "energy.json", halve)
    edit_json(
        run / "result.json",
        lambda d: d["energy"].update(
            energy_per_inference_j=d["energy"]["energy_per_inference_j"] / 2,
            average_power_w=d["energy"]["average_power_w"] / 2,
        ),
    )


def _energy_of_another_run(tree: Path) -> None:
    """An energy.json whose window holds a third of the inferences the run made."""
    edit_json(
        perf(tree) / "energy.json",
        lambda d: d["windows"][0].update(inferences=d["windows"][0]["inferences"] // 3),
    )


def _hide_energy_verdict(tree: Path) -> None:
    """An invalid energy result (a gap in the samples) whose verdict is kept as it was."""
    edit_json(
        perf(tree) / "energy.json",
        lambda d: d.update(valid=False, reasons=["1 gap(s) in the power samples inside run"]),
    )


def _truncate_trace(tree: Path) -> None:
    edit_json(perf(tree) / "power" / "meta.json", lambda d: d.update(status="recording"))


ENERGY = {
    "fake energy figures": (_fake_energy, "energy.recompute"),
    "energy from another run": (_energy_of_another_run, "energy.window"),
    "trace cut short": (_truncate_trace, "energy.trace"),
    "invalid energy submitted": (_hide_energy_verdict, "energy.valid"),
}


@pytest.mark.parametrize("name", list(ENERGY))
def test_energy_tampering(name, energy_tree, tmp_path):
    tamper, rule = ENERGY[name]
    tree = tampered_copy(energy_tree, tmp_path, tamper)
    assert rule in rule_ids(tree), findings(tree)


# --- microcontrollers: result.json and results.txt against the DUT's own log ---------------


@pytest.fixture(scope="module")
def mcu_tree(tmp_path_factory) -> Path:
    runs = mcu_runs(tmp_path_factory)
    return submit(runs.all(), tmp_path_factory.mktemp("mcu-tree"), runs.system_file)


def _tiny_run(tree: Path) -> Path:
    return next(tree.glob(f"closed/{SUBMITTER}/results/*/kws/mlperf-tiny/performance/run_1"))


def _double_throughput(tree: Path) -> None:
    edit_json(
        _tiny_run(tree) / "result.json",
        lambda d: d["metrics"].update(median_throughput=d["metrics"]["median_throughput"] * 2),
    )


def _edit_results_txt(tree: Path) -> None:
    path = _tiny_run(tree) / "results.txt"
    path.write_text(
        re.sub(r"Median throughput is [0-9.]+", "Median throughput is 9999.000", path.read_text())
    )


def _drop_window(tree: Path) -> None:
    """The last window's notes removed (a re-measured window has two): its inferences fold
    into the window logged before it, leaving four."""
    path = _tiny_run(tree) / "dut_log.txt"
    text = path.read_text()
    last = max(int(n) for n in re.findall(r" # window (\d+) sample \d+$", text, re.MULTILINE))
    kept = [
        line
        for line in text.splitlines(keepends=True)
        if not re.search(rf" # window {last} sample \d+$", line)
    ]
    path.write_text("".join(kept))


MCU = {
    "double the median throughput": (_double_throughput, "consistency.result-json"),
    "edit results.txt": (_edit_results_txt, "consistency.summary"),
    "drop a window": (_drop_window, "performance.windows"),
}


@pytest.mark.parametrize("name", list(MCU))
def test_microcontroller_tampering(name, mcu_tree, tmp_path):
    tamper, rule = MCU[name]
    tree = tampered_copy(mcu_tree, tmp_path, tamper)
    assert rule in rule_ids(tree), findings(tree)

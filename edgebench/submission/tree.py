"""Assemble results directories into a submission tree shaped like MLPerf Inference v6's:

    <division>/<submitter>/systems/<system>.json
    <division>/<submitter>/src/VERSION.txt, src/models/<sha16>-<model file>
    <division>/<submitter>/results/<system>/<benchmark>/<scenario>/
        performance/run_1/   the performance run (energy.json and power/ beside its logs)
        energy/              serial devices' energy-mode run (MLPerf Tiny's layout)
        accuracy/            the accuracy run
        TEST01/, TEST04/     compliance runs
        measurements.json, user.conf, README.md

Runs are copied, never rewritten: the checker reads the same bytes the device wrote. The
per-query arrays and LoadGen's trace are left out (hundreds of MB on a 600 s run); the
summary and detail logs carry every figure the checker reads.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from ..meters.mlcommons_power import kept_session, lay_out
from ..runner.energy_step import POWER_DIR
from ..runner.results import ResultsError, load_result
from ..suite.benchmarks import sha256_file
from . import SubmissionError
from . import system_description as sysdesc
from .checker import TINY_SCENARIO

SKIPPED_FILES = ("queries", "mlperf_log_trace.json", "result.json.tmp")
COMPLIANCE_TESTS = ("TEST01", "TEST04")
# energy: serial devices' MLPerf Tiny energy mode, filed beside performance as Tiny does
MODES = ("performance", "accuracy", "energy")
DIVISIONS = ("closed", "open")


@dataclass
class Run:
    directory: Path
    result: dict[str, Any]

    @property
    def slot(self) -> tuple[str, str, str]:
        """(benchmark, scenario, where in the scenario directory it goes)."""
        mode = self.result.get("mode")
        if mode == "compliance":
            test = (self.result.get("compliance") or {}).get("test")
            if test not in COMPLIANCE_TESTS:
                raise SubmissionError(
                    f"{self.directory}: compliance run names test {test!r}; "
                    f"expected one of {', '.join(COMPLIANCE_TESTS)}"
                )
            where = str(test)
        elif mode in MODES:
            where = str(mode)
        else:
            raise SubmissionError(
                f"{self.directory}: mode {mode!r} cannot be submitted "
                f"({', '.join(MODES)} or compliance runs only)"
            )
        return (str(self.result.get("benchmark")), str(self.result.get("scenario")), where)


@dataclass
class Assembly:
    """What submit did: where things went, which runs it passed over and why."""

    system_path: Path
    placed: list[tuple[Path, Path]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    missing_fields: list[str] = field(default_factory=list)


def slug(text: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.")
    if not cleaned:
        raise SubmissionError(f"{text!r} cannot name a directory; use letters, digits, - or _")
    return cleaned


def collect_runs(directories: list[Path]) -> tuple[list[Run], list[str]]:
    """Finished runs among the directories given; the rest are reported, not fatal."""
    runs, skipped = [], []
    for directory in directories:
        if not directory.is_dir():
            skipped.append(f"{directory}: not a directory")
            continue
        try:
            result = load_result(directory)
        except (ResultsError, ValueError) as error:
            skipped.append(f"{directory}: {error}")
            continue
        if result.get("status") != "complete":
            skipped.append(f"{directory}: status {result.get('status')}, not complete")
            continue
        runs.append(Run(directory, result))
    if not runs:
        raise SubmissionError(
            "no finished runs among the directories given; pass results/<run-id> directories "
            "written by `edgebench run` (or `edgebench compliance`)"
        )
    return runs, skipped


def choose_per_slot(runs: list[Run], skipped: list[str]) -> dict[tuple[str, str, str], Run]:
    """One run per slot: the one a chosen compliance test audited, else the newest (run ids
    start with a UTC time stamp), so the tests and the runs they audited travel together."""
    ordered = sorted(runs, key=lambda r: str(r.result.get("run_id")))
    audited = {
        str(reference.get("run_id"))
        for run in ordered
        if run.result.get("mode") == "compliance"
        for reference in (run.result.get("compliance") or {}).get("reference_runs") or []
    }
    chosen: dict[tuple[str, str, str], Run] = {}
    for run in ordered:
        slot = run.slot
        current = chosen.get(slot)
        if current is not None and str(current.result.get("run_id")) in audited:
            skipped.append(f"{run.directory}: a compliance test audited another {'/'.join(slot)}")
            continue
        if current is not None:
            skipped.append(f"{current.directory}: a newer {'/'.join(slot)} run replaces it")
        chosen[slot] = run
    return chosen


def one_system(runs: list[Run]) -> None:
    identities = {json.dumps(sysdesc.captured(r.result), sort_keys=True): r for r in runs}
    if len(identities) > 1:
        names = "; ".join(f"{r.directory.name}: {key}" for key, r in identities.items())
        raise SubmissionError(
            f"the runs come from more than one system ({names}); "
            f"submit each system separately, with its own --system file"
        )


def assemble(
    directories: list[Path],
    out: Path,
    submitter: str,
    division: str,
    system_file: Path | None = None,
) -> Assembly:
    if division not in DIVISIONS:
        raise SubmissionError(f"division {division!r}: use closed or open")
    runs, skipped = collect_runs(directories)
    one_system(runs)
    chosen = choose_per_slot(runs, skipped)
    power = any((r.directory / "energy.json").is_file() for r in chosen.values())
    description = sysdesc.prefill([r.result for r in runs], submitter, division, power)
    if system_file is not None:
        description = sysdesc.merge(description, _read_system_file(system_file))
    if description.get("submitter") != submitter or description.get("division") != division:
        raise SubmissionError(
            f"{system_file}: submitter/division {description.get('submitter')!r}/"
            f"{description.get('division')!r} differ from --submitter {submitter!r} / "
            f"--division {division!r}; make them the same"
        )
    system = slug(str(description.get("system_name") or "system"))
    top = out / division / slug(submitter)
    results_dir = top / "results" / system
    if results_dir.exists():
        raise SubmissionError(f"{results_dir} exists already; remove it or pass another --out")
    assembly = Assembly(top / "systems" / f"{system}.json", skipped=skipped)
    assembly.missing_fields = sysdesc.missing_fields(description)
    assembly.system_path.parent.mkdir(parents=True, exist_ok=True)
    assembly.system_path.write_text(json.dumps(description, indent=2) + "\n")
    _write_version(top / "src")
    for (benchmark, scenario, where), run in sorted(chosen.items()):
        scenario_dir = results_dir / slug(benchmark) / slug(scenario)
        target = scenario_dir / ("performance/run_1" if where == "performance" else where)
        _copy_run(run.directory, target)
        assembly.placed.append((run.directory, target))
        if where == "performance":
            session = kept_session(run.directory / POWER_DIR)
            if session is not None:  # MLCommons' client measured it: MLPerf Power's layout
                lay_out(session, scenario_dir / "performance")
            model_file = _copy_model(run, top)
            _write_scenario_files(scenario_dir, run, model_file.relative_to(top))
    return assembly


def _read_system_file(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except OSError as error:
        raise SubmissionError(f"cannot read --system {path}: {error.strerror}") from None
    except ValueError as error:
        raise SubmissionError(
            f"--system {path} is not valid JSON ({error}); "
            f"start from `edgebench submit --system-template`"
        ) from None
    if not isinstance(data, dict):
        raise SubmissionError(f"--system {path} must hold a JSON object of fields")
    return data


def _copy_run(source: Path, target: Path) -> None:
    shutil.copytree(
        source,
        target,
        ignore=lambda _dir, names: [n for n in names if n in SKIPPED_FILES],
        symlinks=False,
    )


def _copy_model(run: Run, top: Path) -> Path:
    """The model file the run used, content-addressed under src/models (checked by hash)."""
    model = run.result.get("model") or {}
    source = Path(str(model.get("file")))
    expected = str(model.get("sha256"))
    if not source.is_file():
        raise SubmissionError(
            f"{run.directory}: its model {source} is gone; restore it (the submission carries "
            f"the model so reviewers can hash it)"
        )
    if sha256_file(source) != expected:
        raise SubmissionError(
            f"{run.directory}: {source} no longer has the sha256 the run recorded "
            f"({expected[:16]}...); restore the file the run used"
        )
    target = top / "src" / "models" / f"{expected[:16]}-{source.name}"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    return target


def _write_version(src: Path) -> None:
    src.mkdir(parents=True, exist_ok=True)
    (src / "VERSION.txt").write_text(
        f"edgebench {__version__}\n"
        "The reference software that produced these results; install the same version to "
        "reproduce them (pip install edgebench=={}).\n".format(__version__)
    )


def _write_scenario_files(scenario_dir: Path, run: Run, model_file: Path) -> None:
    result = run.result
    record = run.directory / "record.json"
    record_engine = json.loads(record.read_text()).get("engine", {}) if record.is_file() else {}
    inputs = record_engine.get("inputs") or [{}]
    outputs = record_engine.get("outputs") or [{}]
    reference = result.get("division") == "closed"
    measurements = {
        "benchmark": result.get("benchmark"),
        "input_data_types": inputs[0].get("dtype"),
        "output_data_types": outputs[0].get("dtype"),
        "retraining": "no" if reference else "declared by the submitter",
        "starting_weights_filename": Path(str((result.get("model") or {}).get("file"))).name,
        "weight_data_types": inputs[0].get("dtype"),
        "weight_transformations": "none (reference model)" if reference else "see README.md",
        "model_sha256": (result.get("model") or {}).get("sha256"),
        "model_file": str(model_file),
        "dataset_sha256": (result.get("dataset") or {}).get("sha256"),
    }
    (scenario_dir / "measurements.json").write_text(json.dumps(measurements, indent=2) + "\n")
    if (run.directory / "user.conf").is_file():  # serial devices have no LoadGen settings
        shutil.copyfile(run.directory / "user.conf", scenario_dir / "user.conf")
    device = (result.get("device") or {}).get("name")
    runtime = result.get("runtime") or {}
    declaration = (
        ""
        if reference
        else "\n## The model\n\nOpen division: describe the model here (what it is, what it was "
        "trained on, how it was quantized) for the reviewers.\n"
    )
    what = f"-b {result.get('benchmark')}" if reference else f"--model {model_file}"
    scenario = result.get("scenario")
    command = f"edgebench run -d {device} {what}" + (
        "" if scenario == TINY_SCENARIO else f" -s {scenario}"
    )
    command += f" --settings {result.get('settings_profile')}"
    (scenario_dir / "README.md").write_text(
        f"# {result.get('benchmark')} {result.get('scenario')}\n\n"
        f"Measured with edgebench {result.get('edgebench_version')} on device `{device}` "
        f"({runtime.get('runtime')} {runtime.get('runtime_version')}, delegate "
        f"{runtime.get('delegate')}, {runtime.get('threads')} thread(s)), settings profile "
        f"`{result.get('settings_profile')}`.\n\n"
        "To reproduce:\n\n"
        "```sh\n"
        + "".join(f"{command} -m {mode}\n" for mode in ("performance", "accuracy"))
        + "```\n"
        + declaration
    )

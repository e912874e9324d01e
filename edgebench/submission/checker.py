"""`edgebench check`: walk a submission tree and hold every part of it to a rule set.

Each failure is one line, `<file>: <rule id>: <what is wrong>`, with the file relative to the
tree's root. The checks never trust a claim they can recompute: validity, durations, seeds
and latencies are read from the loop's own logs, accuracy is rescored from the accuracy log
and the evaluation set's labels, energy is integrated again from the power trace, and
result.json is only compared with those.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from ..runner.tiny_run import TINY_SCENARIO  # what serial runs record as their scenario
from . import SubmissionError
from .rules import RuleSet
from .run_files import RunFiles


@dataclass(frozen=True)
class Finding:
    path: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.rule}: {self.message}"


@dataclass
class Submitter:
    """<division>/<submitter>/ and the systems described there."""

    root: Path
    division: str
    name: str
    systems: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class Scenario:
    """results/<system>/<benchmark>/<scenario>/ and the runs inside it."""

    directory: Path
    submitter: Submitter
    system: str
    benchmark: str
    scenario: str

    @property
    def description(self) -> dict[str, Any]:
        return self.submitter.systems.get(self.system) or {}

    @property
    def category(self) -> str:
        return str(self.description.get("device_category", "edge-linux"))

    @property
    def tiny(self) -> bool:
        """A microcontroller's MLPerf Tiny runs (DUT-timed windows, no LoadGen logs)."""
        return self.scenario == TINY_SCENARIO

    @cached_property
    def _runs(self) -> list[tuple[str, RunFiles]]:
        """Every run directory, found once: the families share these RunFiles, so each file
        of a run is read and parsed once per check, not once per family."""
        runs = [
            ("performance", RunFiles(p))
            for p in sorted((self.directory / "performance").glob("run_*"))
            if p.is_dir()
        ]
        for mode in ("accuracy", "energy"):
            if (self.directory / mode).is_dir():
                runs.append((mode, RunFiles(self.directory / mode)))
        runs += [
            ("compliance", RunFiles(p)) for p in sorted(self.directory.glob("TEST*")) if p.is_dir()
        ]
        return runs

    def performance_runs(self) -> list[RunFiles]:
        return [run for mode, run in self._runs if mode == "performance"]

    def accuracy_run(self) -> RunFiles | None:
        return next((run for mode, run in self._runs if mode == "accuracy"), None)

    def energy_run(self) -> RunFiles | None:
        """A microcontroller's energy-mode run (Linux devices keep energy in performance)."""
        return next((run for mode, run in self._runs if mode == "energy"), None)

    def compliance_runs(self) -> dict[str, RunFiles]:
        return {run.directory.name: run for mode, run in self._runs if mode == "compliance"}

    def all_runs(self) -> list[tuple[str, RunFiles]]:
        """(expected mode, run) for every run directory of the scenario."""
        return list(self._runs)


class Context:
    """What every check needs: the root, the rules, where to find data, and the findings."""

    def __init__(self, root: Path, rules: RuleSet, data_dir: Path | None = None) -> None:
        self.root = root
        self.rules = rules
        self.data_dir = data_dir
        self.findings: list[Finding] = []

    def fail(self, path: Path, rule: str, message: str) -> None:
        """Record a failure of an enabled rule (a disabled rule is simply not checked)."""
        if not self.rules.enabled(rule):
            return
        try:
            shown = str(path.relative_to(self.root))
        except ValueError:
            shown = str(path)
        self.findings.append(Finding(shown, rule, message))


def find_submitters(ctx: Context) -> list[Submitter]:
    """<division>/<submitter>/ directories; a tree with none is reported, not crashed on."""
    submitters = []
    divisions = ctx.rules.param("files.layout", "divisions") or ["closed", "open"]
    entries = sorted(p for p in ctx.root.iterdir() if p.is_dir()) if ctx.root.is_dir() else []
    for division_dir in entries:
        if division_dir.name not in divisions:
            ctx.fail(
                division_dir,
                "files.layout",
                f"{division_dir.name!r} is not a division ({', '.join(divisions)})",
            )
            continue
        for submitter_dir in sorted(p for p in division_dir.iterdir() if p.is_dir()):
            submitter = Submitter(submitter_dir, division_dir.name, submitter_dir.name)
            for path in sorted((submitter_dir / "systems").glob("*.json")):
                try:
                    submitter.systems[path.stem] = json.loads(path.read_text())
                except ValueError as error:
                    ctx.fail(path, "system.fields", f"not valid JSON ({error})")
                    submitter.systems[path.stem] = {}
            submitters.append(submitter)
    if not submitters:
        ctx.fail(ctx.root, "files.layout", "no <division>/<submitter>/ directory found")
    return submitters


def find_scenarios(ctx: Context, submitter: Submitter) -> list[Scenario]:
    scenarios = []
    results = submitter.root / "results"
    for system_dir in sorted(p for p in results.glob("*") if p.is_dir()):
        if system_dir.name not in submitter.systems:
            ctx.fail(
                system_dir,
                "files.layout",
                f"no systems/{system_dir.name}.json describes this system",
            )
        for benchmark_dir in sorted(p for p in system_dir.iterdir() if p.is_dir()):
            for scenario_dir in sorted(p for p in benchmark_dir.iterdir() if p.is_dir()):
                scenarios.append(
                    Scenario(
                        scenario_dir,
                        submitter,
                        system_dir.name,
                        benchmark_dir.name,
                        scenario_dir.name,
                    )
                )
    if not scenarios:
        ctx.fail(results, "files.layout", "no results/<system>/<benchmark>/<scenario>/ found")
    return scenarios


def check_tree(root: Path, rules: RuleSet, data_dir: Path | None = None) -> Context:
    """Run every check family over the tree; the findings are in the returned context."""
    from .checks import FAMILIES

    if not root.is_dir():
        raise SubmissionError(f"{root} is not a directory; pass the tree `edgebench submit` wrote")
    ctx = Context(root, rules, data_dir)
    for submitter in find_submitters(ctx):
        for family in FAMILIES:
            _guarded(ctx, submitter.root, getattr(family, "check_submitter", None), submitter)
        for scenario in find_scenarios(ctx, submitter):
            for family in FAMILIES:
                _guarded(ctx, scenario.directory, getattr(family, "check_scenario", None), scenario)
    return ctx


def _guarded(ctx: Context, where: Path, check: Any, subject: Any) -> None:
    """A file edited into nonsense (text where a number belongs) is a finding, not a crash;
    the other families still run."""
    if check is None:
        return
    try:
        check(ctx, subject)
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        family = check.__module__.rsplit(".", 1)[-1]
        ctx.fail(where, "files.readable", f"the {family} checks could not read a file: {error!r}")

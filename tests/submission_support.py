"""Shared by the submission tests: genuine quick runs made once per session, a filled-in
system description, and helpers to submit and check trees."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from edgebench.submission import system_description as sysdesc
from edgebench.submission.checker import check_tree
from edgebench.submission.rules import load_rules
from edgebench.submission.tree import assemble

from .support import run_cli, run_json

SUBMITTER = "acme"
FILLED = {
    "submitter": SUBMITTER,
    "status": "available",
    "board_name": "test VM",
    "host_processor_frequency": "2.45 GHz",
    "host_processor_caches": "L2 512 KiB/core",
    "host_memory_configuration": "virtual",
    "host_storage_capacity": "50 GB",
    "host_storage_type": "virtual disk",
    "accelerators_per_node": 0,
    "accelerator_model_name": "none",
    "cooling": "datacenter air",
    "power_meter": "EmulatedWT310 EMU0001",
    "power_supply_details": "virtual bench",
    "power_measured_rails": "whole system",
    # microcontrollers: what the host cannot read over the serial line
    "host_processor_model_name": "virtual Cortex-M (TFLM on the host)",
    "host_processor_core_count": 1,
    "host_memory_capacity": "256 KiB SRAM",
    "operating_system": "bare metal",
    "other_software_stack": "TFLM",
}


@dataclass
class GenuineRuns:
    """Run directories by (benchmark, scenario, mode), made once by the real CLI."""

    root: Path
    dirs: dict[tuple[str, str, str], Path]
    system_file: Path

    def all(self) -> list[Path]:
        return sorted(self.dirs.values())


def make_runs(root: Path, commands: list[tuple[str, ...]], attempts: int = 1) -> GenuineRuns:
    results = root / "results"
    dirs = {}
    for command in commands:
        for attempt in range(1, attempts + 1):
            made = run_json(*command, "--results", str(results), cwd=root)
            if all(result["valid"] for result in made) or attempt == attempts:
                break
        for result in made:
            key = (result["benchmark"], result["scenario"], result["mode"])
            dirs[key] = results / result["run_id"]
            assert result["valid"], result["reasons"]
    template = run_cli("submit", "--system-template", *map(str, dirs.values()), cwd=root)
    assert template.returncode == 0, template.stderr
    system = json.loads(template.stdout)
    for key, value in system.items():
        if isinstance(value, str) and value.startswith(sysdesc.FILL):
            system[key] = FILLED[key]
    system_file = root / "my-board.json"
    system_file.write_text(json.dumps(system, indent=2))
    return GenuineRuns(root, dirs, system_file)


_MADE: dict[str, GenuineRuns] = {}


def genuine_runs(factory) -> GenuineRuns:
    """The session's local-device runs, made on first use (both test modules share them):
    kws SingleStream and Offline, each performance then accuracy (no -m)."""
    if "local" not in _MADE:
        commands = [("-b", "kws", "-s", scenario) for scenario in ("SingleStream", "Offline")]
        _MADE["local"] = make_runs(factory.mktemp("genuine"), commands)
    return _MADE["local"]


def mcu_runs(factory) -> GenuineRuns:
    """A virtual MCU's performance run (MLPerf Tiny's five windows). Its accuracy run would
    take minutes (every sample over the serial line), so the submission lacks one. The
    virtual MCU runs on this busy host, so a window can come out shorter than its plan when
    the calibration ran slow: one more attempt then (a real DUT has its own clock)."""
    if "mcu" not in _MADE:
        command = ("-d", "virtual-mcu", "-b", "kws", "-m", "performance")
        _MADE["mcu"] = make_runs(factory.mktemp("mcu"), [command], attempts=2)
    return _MADE["mcu"]


def copy_runs(runs: list[Path], into: Path) -> list[Path]:
    """Copies of run directories (without the per-query arrays), to tamper with."""
    copies = []
    for run in runs:
        target = into / run.name
        shutil.copytree(run, target, ignore=shutil.ignore_patterns("queries"))
        copies.append(target)
    return copies


def submit(runs: list[Path], out: Path, system_file: Path, division: str = "closed") -> Path:
    assemble(runs, out, SUBMITTER, division, system_file)
    return out


def rule_ids(tree: Path, rules: str = "quick") -> set[str]:
    return {finding.rule for finding in check_tree(tree, load_rules(rules)).findings}


def findings(tree: Path, rules: str = "quick") -> list[str]:
    return [str(finding) for finding in check_tree(tree, load_rules(rules)).findings]

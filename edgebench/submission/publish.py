"""`edgebench publish`: results tables across submissions, as CSV and a static HTML site.

Every figure comes from the submission tree as `edgebench submit` laid it out (tree.py): the
performance run's result.json (primary metric, energy), the accuracy run's (accuracy and
target), the compliance runs' verdicts, and the system description for the names. One row
per system, benchmark and scenario; one table per benchmark and scenario, as MLPerf's
results pages have one per benchmark and scenario.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from .. import __version__
from ..runner.results import ResultsError, load_result
from . import SubmissionError
from .publish_html import render_page
from .system_description import FILL
from .tree import COMPLIANCE_TESTS

CSV_FILE = "results.csv"
HTML_FILE = "index.html"


@dataclass
class Row:
    submission: str
    division: str
    submitter: str
    system: str
    device: str
    runtime: str
    benchmark: str
    scenario: str
    metric: str  # what `value` is, e.g. "p90 latency (ms)" or "samples/s"
    value: float | None
    latency_ms: float | None  # per inference, for the energy/latency plot
    accuracy: float | None
    accuracy_metric: str
    accuracy_target: float | None
    energy_per_inference_j: float | None
    average_power_w: float | None
    compliance: str
    settings_profile: str
    valid: bool
    issues: str  # why not valid ("" when valid)

    @property
    def table(self) -> tuple[str, str]:
        return (self.benchmark, self.scenario)


def collect(submissions: list[Path]) -> list[Row]:
    """Rows of every scenario directory of every submission tree given."""
    rows = []
    for root in submissions:
        if not root.is_dir():
            raise SubmissionError(
                f"{root} is not a directory; pass submission trees (--out of submit)"
            )
        found = sorted(root.glob("*/*/results/*/*/*/performance/run_1/result.json"))
        if not found:
            raise SubmissionError(
                f"{root} holds no results (<division>/<submitter>/results/<system>/<benchmark>/"
                f"<scenario>/performance/run_1); pass the directory `edgebench submit` wrote"
            )
        for path in found:
            rows.append(_row(root, path.parents[2]))
    return rows


def _row(root: Path, scenario_dir: Path) -> Row:
    system_dir = scenario_dir.parents[1]
    top = system_dir.parents[1]  # <division>/<submitter>
    performance = _load(scenario_dir / "performance" / "run_1")
    accuracy = _load(scenario_dir / "accuracy") if (scenario_dir / "accuracy").is_dir() else None
    description = _system(top / "systems" / f"{system_dir.name}.json")
    metrics = performance.get("metrics") or {}
    label, value = metrics.get("primary") or ("", None)
    energy = performance.get("energy") or {}
    verdicts = {  # compliance test -> passed, for the tests the scenario holds
        test: _passed(scenario_dir / test)
        for test in COMPLIANCE_TESTS
        if (scenario_dir / test).is_dir()
    }
    issues = _issues(performance, accuracy, verdicts)
    acc = ((accuracy or {}).get("metrics") or {}).get("accuracy") or {}
    return Row(
        submission=root.resolve().name,
        division=top.parent.name,
        submitter=top.name,
        system=_text(description.get("system_name")) or system_dir.name,
        device=_device(description, performance),
        runtime=_runtime(performance),
        benchmark=str(performance.get("benchmark")),
        scenario=str(performance.get("scenario")),
        metric=str(label),
        value=value,
        latency_ms=_latency_ms(str(performance.get("scenario")), metrics, value),
        accuracy=acc.get("value"),
        accuracy_metric=str(acc.get("metric") or ""),
        accuracy_target=acc.get("target"),
        energy_per_inference_j=energy.get("energy_per_inference_j"),
        average_power_w=energy.get("average_power_w"),
        compliance=_compliance(verdicts),
        settings_profile=str(performance.get("settings_profile") or ""),
        valid=not issues,
        issues="; ".join(issues),
    )


def _load(directory: Path) -> dict[str, Any]:
    try:
        return load_result(directory)
    except (ResultsError, ValueError) as error:
        raise SubmissionError(f"{directory}: {error}; run `edgebench check` on the tree") from None


def _system(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}


def _text(value: Any) -> str:
    """A description field, or "" while it is still a FILL placeholder."""
    text = "" if value is None else str(value)
    return "" if text.startswith(FILL) else text


def _device(description: dict[str, Any], result: dict[str, Any]) -> str:
    board = _text(description.get("board_name"))
    processor = _text(description.get("host_processor_model_name"))
    captured = (result.get("system") or {}).get("cpu_model") or ""
    return " / ".join(p for p in (board, processor or captured) if p) or "-"


def _runtime(result: dict[str, Any]) -> str:
    runtime = result.get("runtime") or {}
    if not runtime.get("runtime"):
        return str((result.get("device") or {}).get("transport") or "-")
    return (
        f"{runtime.get('runtime')} {runtime.get('runtime_version')} "
        f"({runtime.get('delegate')}, {runtime.get('threads')} thread(s))"
    )


def _latency_ms(scenario: str, metrics: dict[str, Any], value: Any) -> float | None:
    """Milliseconds per inference, comparable across scenarios for the energy plot."""
    if metrics.get("latency_ms") is not None:  # MLPerf Tiny: 1000 / median throughput
        return float(metrics["latency_ms"])
    if value is None:
        return None
    if scenario in ("Server", "Offline"):
        return 1000.0 / float(value) if value else None
    return float(value)


def _issues(
    performance: dict[str, Any], accuracy: dict[str, Any] | None, verdicts: dict[str, bool]
) -> list[str]:
    issues = []
    if not performance.get("valid"):
        issues.append("performance run invalid")
    if accuracy is None:
        issues.append("no accuracy run")
    elif ((accuracy.get("metrics") or {}).get("accuracy") or {}).get("met") is False:
        issues.append("accuracy below target")
    energy = performance.get("energy")
    if energy and not energy.get("valid"):
        issues.append("energy invalid")
    issues += [f"{test} failed" for test, passed in verdicts.items() if not passed]
    return issues


def _passed(directory: Path) -> bool:
    try:
        return (load_result(directory).get("compliance") or {}).get("passed") is True
    except (ResultsError, ValueError):
        return False


def _compliance(verdicts: dict[str, bool]) -> str:
    parts = [f"{test} {'pass' if passed else 'FAIL'}" for test, passed in verdicts.items()]
    return ", ".join(parts) or "-"


def tables(rows: list[Row]) -> dict[tuple[str, str], list[Row]]:
    """Rows grouped per benchmark and scenario, each sorted best first."""
    grouped: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        grouped.setdefault(row.table, []).append(row)
    for group in grouped.values():
        group.sort(key=lambda r: (r.latency_ms is None, r.latency_ms or 0.0, r.system))
    return dict(sorted(grouped.items()))


def write_csv(rows: list[Row], path: Path) -> None:
    names = [f.name for f in fields(Row)]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=names)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in asdict(row).items()})


def publish(submissions: list[Path], out: Path) -> dict[str, Any]:
    """Write results.csv, one CSV per table and index.html into `out`; returns what it wrote."""
    rows = collect(submissions)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, out / CSV_FILE)
    grouped = tables(rows)
    written = [CSV_FILE]
    for (benchmark, scenario), group in grouped.items():
        name = f"{benchmark}-{scenario}.csv"
        write_csv(group, out / name)
        written.append(name)
    (out / HTML_FILE).write_text(render_page(grouped, [p.name for p in submissions], __version__))
    written.append(HTML_FILE)
    return {"out": str(out), "rows": len(rows), "tables": len(grouped), "files": written}

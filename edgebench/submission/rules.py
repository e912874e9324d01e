"""Rule sets as versioned data: one YAML file per rules version under `rules/`.

Thresholds change between rounds (MLPerf's checker grew a hard-coded table per version, and
each new round broke it), so the numbers live in data files and the checks read them by rule
id. A rule set may extend another one, overriding a rule's parameters or disabling it; a rule
that is absent from the set is not checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from . import SubmissionError

RULES_DIR = Path(str(resources.files("edgebench.submission") / "rules"))
DEFAULT_RULES = "edgebench-0.1"
_TOP_KEYS = {"name", "version", "description", "extends", "rules", "disabled", "benchmarks"}


@dataclass(frozen=True)
class RuleSet:
    name: str
    version: str
    description: str
    rules: dict[str, dict[str, Any]]
    benchmarks: dict[str, dict[str, Any]] = field(default_factory=dict)

    def enabled(self, rule_id: str) -> bool:
        return rule_id in self.rules

    def param(self, rule_id: str, key: str, default: Any = None) -> Any:
        return self.rules.get(rule_id, {}).get(key, default)

    def scenario_param(self, rule_id: str, key: str, category: str, scenario: str) -> Any:
        """A per-device-category, per-scenario threshold (None when the table has no entry)."""
        table = self.param(rule_id, key) or {}
        return (table.get(category) or {}).get(scenario)


def available_rules() -> list[str]:
    return sorted(path.stem for path in RULES_DIR.glob("*.yaml"))


def load_rules(name_or_path: str | None = None) -> RuleSet:
    """A bundled rule set by name (`quick`, `edgebench-0.1`) or a YAML file by path."""
    name = name_or_path or DEFAULT_RULES
    path = Path(name)
    if not (path.suffix in (".yaml", ".yml") and path.is_file()):
        path = RULES_DIR / f"{name}.yaml"
    data = _read(path, name)
    return _resolve(data, path, seen=(path.stem,))


def _read(path: Path, name: str) -> dict[str, Any]:
    if not path.is_file():
        raise SubmissionError(
            f"unknown rule set {name!r}; use one of {', '.join(available_rules())} "
            f"or the path of a rules YAML file"
        )
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise SubmissionError(f"{path}: not valid YAML ({error}); fix the file") from None
    if not isinstance(data, dict) or not isinstance(data.get("rules"), dict):
        raise SubmissionError(f"{path}: a rule set needs a `rules:` mapping of rule id to params")
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise SubmissionError(
            f"{path}: unknown top-level key(s) {', '.join(sorted(unknown))} "
            f"(known: {', '.join(sorted(_TOP_KEYS))})"
        )
    return data


def _resolve(data: dict[str, Any], path: Path, seen: tuple[str, ...]) -> RuleSet:
    rules: dict[str, dict[str, Any]] = {}
    benchmarks: dict[str, dict[str, Any]] = {}
    parent_name = data.get("extends")
    if parent_name:
        if parent_name in seen:
            raise SubmissionError(f"{path}: rule sets extend each other in a loop ({parent_name})")
        parent = _resolve(
            _read(RULES_DIR / f"{parent_name}.yaml", parent_name),
            RULES_DIR / f"{parent_name}.yaml",
            (*seen, parent_name),
        )
        rules = {key: dict(value) for key, value in parent.rules.items()}
        benchmarks = dict(parent.benchmarks)
    for rule_id, params in data["rules"].items():
        rules[rule_id] = {**rules.get(rule_id, {}), **(params or {})}
    for rule_id in data.get("disabled") or []:
        if rule_id not in rules:
            raise SubmissionError(f"{path}: disables unknown rule {rule_id!r}")
        del rules[rule_id]
    benchmarks.update(data.get("benchmarks") or {})
    return RuleSet(
        name=str(data.get("name", path.stem)),
        version=str(data.get("version", "")),
        description=str(data.get("description", "")).strip(),
        rules=rules,
        benchmarks=benchmarks,
    )

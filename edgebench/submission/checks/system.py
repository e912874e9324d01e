"""The system description: complete, with allowed values, and the machine every run was
made on."""

from __future__ import annotations

from .. import system_description as sysdesc
from ..checker import Context, Scenario, Submitter


def check_submitter(ctx: Context, submitter: Submitter) -> None:
    for name, data in submitter.systems.items():
        path = submitter.root / "systems" / f"{name}.json"
        for key in sysdesc.missing_fields(data):
            ctx.fail(path, "system.fields", f"{key} is missing or still a placeholder")
        for key, allowed in _allowed(ctx).items():
            value = data.get(key)
            placeholder = value is None or str(value).startswith(sysdesc.FILL)
            if not placeholder and value not in allowed:
                ctx.fail(
                    path,
                    "system.values",
                    f"{key} is {value!r}; allowed: {', '.join(map(str, allowed))}",
                )
        for key, expected in (("division", submitter.division), ("submitter", submitter.name)):
            if data.get(key) not in (None, expected):
                ctx.fail(
                    path,
                    "system.values",
                    f"{key} is {data.get(key)!r} but the file sits under {expected!r}",
                )
        if not isinstance(data.get(sysdesc.CAPTURED), dict):
            ctx.fail(
                path,
                "system.fields",
                f"{sysdesc.CAPTURED} is missing (written by `edgebench submit`; do not edit it)",
            )


def _allowed(ctx: Context) -> dict[str, list]:
    params = {
        key: value
        for key, value in (ctx.rules.rules.get("system.values") or {}).items()
        if isinstance(value, list)
    }
    return {**{k: list(v) for k, v in sysdesc.ENUMS.items()}, **params}


def check_scenario(ctx: Context, scenario: Scenario) -> None:
    captured = scenario.description.get(sysdesc.CAPTURED)
    if not isinstance(captured, dict):
        return  # reported once per system by check_submitter
    keys = ctx.rules.param("system.runs-match", "keys") or []
    for _mode, run in scenario.all_runs():
        if not run.result:
            continue
        actual = sysdesc.captured(run.result)
        for key in keys:
            if actual.get(key) != captured.get(key):
                ctx.fail(
                    run.path("result.json"),
                    "system.runs-match",
                    f"ran on {key} {actual.get(key)!r}, but systems/{scenario.system}.json "
                    f"captured {captured.get(key)!r}",
                )

"""Settings as the logs state them: the official seeds, the values a submitter may not
change, and a user.conf that is both allowed and the one that actually ran."""

from __future__ import annotations

from ...agent.settings import lookup
from ..checker import Context, Scenario
from ..run_files import RunFiles
from .logs import same

SEEDS = ("qsl_rng_seed", "sample_index_rng_seed", "schedule_rng_seed")
# user.conf key -> (LoadGen detail key, native detail key); both in the same units
_CONF_TO_LOG = {
    "min_duration": ("requested_min_duration_ms", "effective_min_duration_ms"),
    "max_duration": ("requested_max_duration_ms", "effective_max_duration_ms"),
    "min_query_count": ("requested_min_query_count", "effective_min_query_count"),
    "max_query_count": ("requested_max_query_count", "effective_max_query_count"),
}


def check_scenario(ctx: Context, scenario: Scenario) -> None:
    for mode, run in scenario.all_runs():
        if run.detail is None:
            continue
        _seeds(ctx, run)
        if mode == "performance":  # compliance runs change these on purpose (audit.config)
            _fixed(ctx, scenario, run)
        _user_conf(ctx, scenario, run)
    first = scenario.performance_runs()[:1]
    copy = scenario.directory / "user.conf"
    ran = first[0].path("user.conf") if first else None
    if ran and copy.is_file() and ran.is_file() and copy.read_text() != ran.read_text():
        ctx.fail(copy, "settings.user-conf", "differs from the performance run's user.conf")


def _seeds(ctx: Context, run: RunFiles) -> None:
    for seed in SEEDS:
        official = ctx.rules.param("settings.seeds", seed)
        if official is None:
            continue
        logged = run.detail.get(f"effective_{seed}")
        if logged is None or int(logged) != int(official):
            ctx.fail(
                run.detail.path,
                "settings.seeds",
                f"effective_{seed} is {logged}, the rules require {official}",
            )
        summary = run.summary or {}
        if seed in summary and summary[seed] != str(official):
            ctx.fail(
                run.log_path("summary"),
                "settings.seeds",
                f"{seed} is {summary[seed]}, the rules require {official}",
            )


def _fixed(ctx: Context, scenario: Scenario, run: RunFiles) -> None:
    table = ctx.rules.rules.get("settings.fixed") or {}
    wanted = {**(table.get("*") or {}), **(table.get(scenario.scenario) or {})}
    for key, value in wanted.items():
        if key not in run.detail.values:
            continue  # required keys are the detail-keys rule's business
        if not same(run.detail.get(key), value, rel=1e-9):
            ctx.fail(
                run.detail.path,
                "settings.fixed",
                f"{key} is {run.detail.get(key)!r}, the rules fix it at {value!r}",
            )


def _user_conf(ctx: Context, scenario: Scenario, run: RunFiles) -> None:
    rows = run.user_conf
    path = run.path("user.conf")
    if rows is None:
        return  # reported by files.required
    if isinstance(rows, str):
        ctx.fail(path, "settings.user-conf", rows)
        return
    allowed = set(ctx.rules.param("settings.user-conf", "allowed_keys") or [])
    for _model, _scenario, key, _value in rows:
        if allowed and key not in allowed:
            ctx.fail(
                path,
                "settings.user-conf",
                f"sets {key}, which these rules do not let a submitter change",
            )
    model = str(run.result.get("benchmark") or scenario.benchmark)
    for key, (loadgen_key, native_key) in _CONF_TO_LOG.items():
        value = lookup(rows, model, scenario.scenario, key)
        log_key = native_key if run.loop == "native" else loadgen_key
        if value is None or log_key not in run.detail.values:
            continue
        if not same(value, run.detail.get(log_key), rel=1e-9):
            ctx.fail(
                path,
                "settings.user-conf",
                f"{key} = {value}, but the detail log's {log_key} is "
                f"{run.detail.get(log_key)}: this is not the user.conf that ran",
            )

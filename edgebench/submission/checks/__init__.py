"""Check families, one module each. A module may define `check_submitter(ctx, submitter)`
(once per <division>/<submitter>/) and `check_scenario(ctx, scenario)` (once per
results/<system>/<benchmark>/<scenario>/); every failure names its rule id."""

from __future__ import annotations

from . import (
    accuracy,
    compliance,
    energy,
    files,
    logs,
    model,
    performance,
    settings,
    system,
    tiny,
)

FAMILIES = (files, system, logs, settings, performance, tiny, accuracy, model, energy, compliance)

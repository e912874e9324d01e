"""Meter drivers by the name meter profiles use (`driver: ptd | lpm01a | ...`).

Adding a driver = one module that decorates its class with @register, its name in
BUILTIN_MODULES, one test file. Every listed module is imported to find the drivers, so a
driver's optional dependency (pyjoulescope_driver, ...) is imported inside open(), not at the
top of its module: a missing extra then fails only for that meter, with its install hint.
"""

from __future__ import annotations

import importlib

from .base import Meter, MeterError

METERS: dict[str, type[Meter]] = {}

#: Driver modules shipped with edgebench (edgebench.meters.<module>); each registers itself.
#: A new driver adds its module name here.
BUILTIN_MODULES = (
    "ptd",
    "mlcommons_power",
    "lpm01a",
    "trace_import",
    "hwmon",
    "ppk2",
    "otii",
    "joulescope",
)


def register(cls: type[Meter]) -> type[Meter]:
    METERS[cls.driver] = cls
    return cls


def meter_class(name: str) -> type[Meter]:
    _load_builtin()
    if name not in METERS:
        raise MeterError(
            f"unknown meter driver {name!r}; known: {', '.join(sorted(METERS)) or 'none'}"
        )
    return METERS[name]


def _load_builtin() -> None:
    for module in BUILTIN_MODULES:
        importlib.import_module(f"{__package__}.{module}")

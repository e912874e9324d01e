"""Transports by the name device profiles use (`transport: local | ssh | serial`)."""

from __future__ import annotations

from .base import Device, DeviceError

TRANSPORTS: dict[str, type[Device]] = {}


def register(cls: type[Device]) -> type[Device]:
    TRANSPORTS[cls.transport] = cls
    return cls


def transport_class(name: str) -> type[Device]:
    _load_builtin()
    if name not in TRANSPORTS:
        raise DeviceError(f"unknown transport {name!r}; known: {', '.join(sorted(TRANSPORTS))}")
    return TRANSPORTS[name]


def _load_builtin() -> None:
    from . import local, serial, ssh  # noqa: F401  (register themselves)

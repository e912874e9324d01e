"""Is there a TFLite runtime on the device, and if not, the exact command that installs one.

Installed-package metadata can lie (a wheel built for NumPy 1.x under NumPy 2, a module
shadowed on PYTHONPATH), so the probe imports each runtime with the device's Python, as the
agent will, and keeps the import error. Failing here costs one round trip; failing inside the
agent costs a deploy and a run directory full of nothing.
"""

from __future__ import annotations

from typing import Any

from ..agent.runtime import RUNTIMES
from .base import DeviceError

# Runs on the device (Python 3.8 syntax, stdlib only): one JSON line.
PROBE_SCRIPT = r"""
import importlib, json, platform, sys
def version(dist):
    try:
        from importlib import metadata
        return metadata.version(dist)
    except Exception:
        return None
found = {}
for module, dist in (("numpy", "numpy"), ("ai_edge_litert.interpreter", "ai-edge-litert"),
                     ("tflite_runtime.interpreter", "tflite-runtime"),
                     ("mlperf_loadgen", "mlcommons-loadgen")):
    name = module.split(".")[0]
    try:
        importlib.import_module(module)
        found[name] = {"ok": True, "version": version(dist)}
    except BaseException as error:
        text = "%s: %s" % (type(error).__name__, error)
        found[name] = {"ok": False, "error": text.strip().splitlines()[-1][:300]}
sys.stdout.write(json.dumps({"imports": found, "python": platform.python_version(),
                             "machine": platform.machine()}) + "\n")
"""

# ai-edge-litert publishes wheels for these machines, for Python 3.9 and later.
LITERT_MACHINES = ("x86_64", "aarch64", "arm64", "AMD64")


def _wants_tflite_runtime(probe: dict[str, Any]) -> bool:
    major, minor = (int(p) for p in str(probe.get("python", "3.0")).split(".")[:2])
    return probe.get("machine") not in LITERT_MACHINES or (major, minor) < (3, 9)


def install_command(probe: dict[str, Any], python: str, runtime: str = "auto") -> str:
    """The pip command for this device's Python and CPU."""
    imports = probe.get("imports", {})
    tflite = imports.get("tflite_runtime", {})
    numpy_major = str((imports.get("numpy") or {}).get("version") or "0").split(".")[0]
    if runtime == "tflite_runtime" or (runtime == "auto" and _wants_tflite_runtime(probe)):
        if not tflite.get("ok") and "numpy" in str(tflite.get("error", "")).lower():
            return f'{python} -m pip install "numpy<2"  (tflite_runtime is built for NumPy 1.x)'
        if numpy_major == "2":
            return f'{python} -m pip install tflite-runtime "numpy<2"  (it needs NumPy 1.x)'
        return f'{python} -m pip install tflite-runtime "numpy<2"'
    return f"{python} -m pip install ai-edge-litert"


def runtime_available(probe: dict[str, Any], runtime: str = "auto") -> bool:
    imports = probe.get("imports", {})
    names = RUNTIMES if runtime == "auto" else (runtime,)
    return bool(imports.get("numpy", {}).get("ok")) and any(
        imports.get(name, {}).get("ok") for name in names
    )


def require_runtime(probe: dict[str, Any], python: str, label: str, runtime: str = "auto") -> None:
    """Raise before any run if the agent could not load a model on this device."""
    if runtime_available(probe, runtime):
        return
    imports = probe.get("imports", {})
    names = ("numpy", *(RUNTIMES if runtime == "auto" else (runtime,)))
    why = "; ".join(
        f"{name}: {imports.get(name, {}).get('error', 'not probed')}"
        for name in names
        if not imports.get(name, {}).get("ok")
    )
    raise DeviceError(
        f"{label}: no usable TFLite runtime for {python} ({why}); install one on the device: "
        f"{install_command(probe, python, runtime)} (on Debian 12 / Raspberry Pi OS bookworm "
        f"inside a venv: python3 -m venv ~/edgebench-venv, then set python: "
        f"~/edgebench-venv/bin/python in the profile)"
    )


def summary(probe: dict[str, Any]) -> str:
    """'ai_edge_litert 1.2.0, mlperf_loadgen 5.0' for check output."""
    parts = []
    for name, state in probe.get("imports", {}).items():
        if state.get("ok"):
            parts.append(f"{name} {state.get('version') or '?'}")
        else:
            parts.append(f"{name} missing")
    return ", ".join(parts)

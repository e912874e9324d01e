"""The system description (`systems/<system>.json`): what was measured, in MLPerf's field names.

Most of it is known from the runs (SystemInfo captured on the device), so it is pre-filled;
what no program can read (availability, storage, cooling, the board's marketing name) is left
as a `FILL: <hint>` placeholder the checker refuses until a person replaces it. The
`edgebench_captured` block is copied from the runs verbatim and never edited by hand: the
checker compares it with every run's result.json, so results cannot move between systems.
"""

from __future__ import annotations

from typing import Any

FILL = "FILL: "
CAPTURED = "edgebench_captured"
# Linux devices report the first five, serial devices the DUT's name (its firmware's answer
# to `name%`); the device profile and transport come from the run itself.
SYSTEM_KEYS = ("hostname", "cpu_model", "machine", "os", "kernel", "dut_name")
MCU_TRANSPORTS = ("serial",)

# field -> hint shown in the template. Order is the order of the written file.
REQUIRED_FIELDS: dict[str, str] = {
    "submitter": "organisation or person submitting (same as --submitter)",
    "division": "closed or open (same as --division)",
    "status": "available, preview or rdi (research, development or internal)",
    "system_name": "what the results tables call this system, e.g. 'Raspberry Pi 5 (8 GB)'",
    "device_category": "edge-linux or mcu",
    "system_type": "edge",
    "number_of_nodes": "1",
    "board_name": "board or module, e.g. 'Raspberry Pi 5 Model B Rev 1.0' or 'NUCLEO-L4R5ZI'",
    "host_processor_model_name": "CPU or MCU core, e.g. 'Cortex-A76'",
    "host_processor_core_count": "cores used by the benchmark",
    "host_processor_frequency": "nominal clock, e.g. '2.4 GHz'",
    "host_processor_caches": "e.g. 'L1 64+64 KiB/core, L2 512 KiB/core, L3 2 MiB'",
    "host_memory_capacity": "RAM, e.g. '8 GiB'",
    "host_memory_configuration": "e.g. 'LPDDR4X-4267, 32-bit'",
    "host_storage_capacity": "e.g. '64 GB'",
    "host_storage_type": "e.g. 'microSD UHS-I' or 'internal flash'",
    "accelerators_per_node": "0 when inference runs on the CPU",
    "accelerator_model_name": "NPU/GPU used, or 'none'",
    "framework": "inference runtime and version",
    "operating_system": "OS and kernel (or RTOS / bare metal)",
    "other_software_stack": "Python, LoadGen and other libraries with versions",
    "cooling": "e.g. 'passive heatsink', 'active fan', 'none'",
    "power_measurement": "true when energy results are submitted",
    "hw_notes": "anything else about the hardware (may be empty)",
    "sw_notes": "anything else about the software (may be empty)",
}
# Filled when power_measurement is true.
POWER_FIELDS: dict[str, str] = {
    "power_meter": "meter model and serial number",
    "power_supply_details": "what supplies the device and where the meter sits in that path",
    "power_measured_rails": "what the meter measures, e.g. 'USB-C 5 V input, whole board'",
}
OPTIONAL_FIELDS = ("hw_notes", "sw_notes")
ENUMS: dict[str, tuple[str, ...]] = {
    "division": ("closed", "open"),
    "system_type": ("edge",),
}


def template() -> dict[str, Any]:
    """Every field as a placeholder with its hint, power fields included."""
    fields = {**REQUIRED_FIELDS, **POWER_FIELDS}
    data: dict[str, Any] = {key: f"{FILL}{hint}" for key, hint in fields.items()}
    data.update(system_type="edge", number_of_nodes=1, hw_notes="", sw_notes="")
    return data


def captured(result: dict[str, Any]) -> dict[str, Any]:
    """The identity of the machine a run was made on, from its result.json."""
    system = result.get("system") or {}
    device = result.get("device") or {}
    values = {key: system.get(key) for key in SYSTEM_KEYS}
    values.update(device=device.get("name"), transport=device.get("transport"))
    return values


def prefill(
    results: list[dict[str, Any]], submitter: str, division: str, power: bool
) -> dict[str, Any]:
    """The description as far as the runs tell it; the rest stays FILL."""
    data = template()
    first = results[0]
    system = first.get("system") or {}
    device = first.get("device") or {}
    runtime = first.get("runtime") or {}
    packages = ", ".join(
        f"{p.get('name')} {p.get('version')}" for p in system.get("packages") or []
    )
    frequencies = list((system.get("cpu_frequencies_khz") or {}).values())
    data.update(
        submitter=submitter,
        division=division,
        system_name=device.get("name") if device.get("name") != "local" else system.get("hostname"),
        device_category="mcu" if device.get("transport") in MCU_TRANSPORTS else "edge-linux",
        power_measurement=power,
    )
    _set(data, "host_processor_model_name", system.get("cpu_model"))
    _set(data, "host_processor_core_count", system.get("cpu_cores"))
    if frequencies:
        data["host_processor_frequency"] = f"{max(frequencies) / 1e6:.2f} GHz (max read)"
    if system.get("memory_kib"):
        data["host_memory_capacity"] = f"{system['memory_kib'] / 2**20:.1f} GiB"
    if runtime.get("runtime"):
        data["framework"] = (
            f"{runtime.get('runtime')} {runtime.get('runtime_version')} "
            f"(delegate {runtime.get('delegate')}, threads {runtime.get('threads')})"
        )
    if system.get("os"):
        data["operating_system"] = f"{system['os']}, kernel {system.get('kernel')}"
    if system.get("dut_profile"):  # serial: the firmware says what it is
        data["framework"] = (
            f"firmware {system['dut_profile']} (model id {system.get('model_id')}, "
            f"DUT {system.get('dut_name')})"
        )
    if system.get("python"):
        data["other_software_stack"] = f"Python {system['python']}" + (
            f"; {packages}" if packages else ""
        )
    if not power:
        for key in POWER_FIELDS:
            data.pop(key)
    data[CAPTURED] = captured(first)
    return data


def _set(data: dict[str, Any], key: str, value: Any) -> None:
    if value not in (None, ""):
        data[key] = value


def merge(prefilled: dict[str, Any], user: dict[str, Any]) -> dict[str, Any]:
    """The user's values win over pre-filled ones, except the captured identity block; user
    placeholders never overwrite a value the runs provided."""
    merged = dict(prefilled)
    for key, value in user.items():
        if key == CAPTURED:
            continue
        if isinstance(value, str) and value.startswith(FILL) and key in prefilled:
            continue
        merged[key] = value
    return merged


def missing_fields(data: dict[str, Any]) -> list[str]:
    """Required fields absent, empty or still a placeholder."""
    fields = list(REQUIRED_FIELDS)
    if data.get("power_measurement") is True:
        fields += list(POWER_FIELDS)
    missing = []
    for key in fields:
        value = data.get(key)
        empty = value is None or (isinstance(value, str) and not value.strip())
        if (empty and key not in OPTIONAL_FIELDS) or (
            isinstance(value, str) and value.startswith(FILL)
        ):
            missing.append(key)
    return missing

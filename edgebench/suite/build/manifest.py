"""The suite manifest: one JSON file naming every bundled model and eval set by sha256.

Why deterministic JSON (sorted keys, fixed indent, no timestamps, no build
durations): the manifest is committed next to the files it describes, and a
rebuild with the pinned toolchain must reproduce it byte for byte, so a diff
in review means something changed for real.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

MANIFEST_NAME = "manifest.json"
SCHEMA_VERSION = 1
SUITE = "edgebench-reference"
SUITE_VERSION = "1.0"


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def dumps(manifest: dict[str, Any]) -> str:
    """The canonical text of a manifest (what is written and hashed)."""
    return json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=True) + "\n"


def load(path: Path) -> dict[str, Any] | None:
    """Read an existing manifest of this schema, or None if absent or of another schema."""
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    if data.get("schema_version") != SCHEMA_VERSION or data.get("suite") != SUITE:
        return None
    return data


def finish_entry(entry: dict[str, Any], out_dir: Path, tflm: dict[str, Any]) -> dict[str, Any]:
    """Turn a worker's result into a manifest entry: add file hashes and the TFLM check.

    Keys starting with ``_`` (build time, tool versions) and ``meets_target``
    are dropped: they are reported by the build, not part of the suite's
    description.
    """
    clean = {k: v for k, v in entry.items() if not k.startswith("_") and k != "meets_target"}
    clean["model"] = {**clean["model"], "sha256": sha256_file(out_dir / clean["model"]["file"])}
    clean["dataset"] = {
        **clean["dataset"],
        "sha256": sha256_file(out_dir / clean["dataset"]["file"]),
    }
    clean["tflm"] = tflm
    return clean


def assemble(benchmarks: dict[str, dict[str, Any]], built_with: dict[str, str]) -> dict[str, Any]:
    """The whole manifest document for the given entries."""
    return {
        "schema_version": SCHEMA_VERSION,
        "suite": SUITE,
        "suite_version": SUITE_VERSION,
        "built_with": dict(sorted(built_with.items())),
        "benchmarks": benchmarks,
    }


def write(path: Path, manifest: dict[str, Any]) -> None:
    """Write the canonical manifest text to ``path``."""
    path.write_text(dumps(manifest))

"""Benchmark definitions: the bundled reference suite, read from its manifest.

A benchmark is data, not code: the manifest written by `python -m edgebench.suite.build`
names the model, its sha256, its tensors, the evaluation set, the metric and the target. The
registry below is keyed by the name used on the command line and in device profiles.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path

from ..agent.settings import SCENARIOS

SUITE_DIR = Path(str(resources.files("edgebench.suite")))
MANIFEST = SUITE_DIR / "manifest.json"
DEFAULT_PERFORMANCE_SAMPLE_COUNT = 1024
# MLPerf Inference's edge scenarios; Server is allowed but not part of the default sweep.
DEFAULT_SCENARIOS = ("SingleStream", "MultiStream", "Offline")


class BenchmarkError(ValueError):
    """Unknown benchmark, missing file or a file whose hash differs from the manifest."""


@dataclass(frozen=True)
class TensorSpec:
    shape: tuple[int, ...]
    dtype: str
    scale: float = 0.0
    zero_point: int = 0

    @classmethod
    def from_dict(cls, data: dict) -> TensorSpec:
        return cls(
            tuple(int(d) for d in data["shape"]),
            str(data["dtype"]),
            float(data.get("scale", 0.0)),
            int(data.get("zero_point", 0)),
        )


@dataclass(frozen=True)
class Benchmark:
    """What a run needs to know about one benchmark, whatever the device."""

    name: str
    task: str
    model_path: Path
    model_sha256: str
    input: TensorSpec
    output: TensorSpec
    metric: str  # "top1" | "auc" | "none"
    target: float | None
    dataset_path: Path | None
    dataset_sha256: str | None
    dataset_count: int
    scenarios: tuple[str, ...] = SCENARIOS
    performance_sample_count: int = DEFAULT_PERFORMANCE_SAMPLE_COUNT
    division: str = "closed"
    source: str = "edgebench reference suite"
    details: dict = field(default_factory=dict, compare=False, repr=False)

    def verify(self) -> None:
        """Refuse files that differ from what the manifest promises (one-line error)."""
        for path, expected, what in (
            (self.model_path, self.model_sha256, "model"),
            (self.dataset_path, self.dataset_sha256, "evaluation set"),
        ):
            if path is None or expected is None:
                continue
            if not path.is_file():
                raise BenchmarkError(
                    f"{self.name}: {what} file {path} is missing; reinstall edgebench or rebuild "
                    f"the suite with `python -m edgebench.suite.build`"
                )
            actual = sha256_file(path)
            if actual != expected:
                raise BenchmarkError(
                    f"{self.name}: {what} {path} has sha256 {actual[:16]}..., the manifest says "
                    f"{expected[:16]}...; restore the file or rebuild the suite"
                )


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@cache
def load_manifest(path: Path = MANIFEST) -> dict:
    if not path.is_file():
        raise BenchmarkError(
            f"suite manifest {path} is missing; build it with `python -m edgebench.suite.build`"
        )
    with open(path) as handle:
        return json.load(handle)


def _from_manifest(name: str, entry: dict, root: Path) -> Benchmark:
    model = entry["model"]
    dataset = entry.get("dataset") or {}
    return Benchmark(
        name=name,
        task=entry["task"],
        model_path=root / model["file"],
        model_sha256=model["sha256"],
        input=TensorSpec.from_dict(model["input"]),
        output=TensorSpec.from_dict(model["output"]),
        metric=entry["metric"],
        target=float(entry["target"]),
        dataset_path=root / dataset["file"] if dataset else None,
        dataset_sha256=dataset.get("sha256"),
        dataset_count=int(dataset.get("count", 0)),
        details=entry,
    )


def bundled_benchmarks() -> dict[str, Benchmark]:
    manifest = load_manifest()
    return {
        name: _from_manifest(name, entry, MANIFEST.parent)
        for name, entry in sorted(manifest["benchmarks"].items())
    }


def get_benchmark(name: str) -> Benchmark:
    suite = bundled_benchmarks()
    if name not in suite:
        raise BenchmarkError(
            f"unknown benchmark {name!r}; known: {', '.join(suite)} "
            f"(see `edgebench benchmarks`; use --model for your own model)"
        )
    return suite[name]

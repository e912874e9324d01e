"""The bundled reference suite matches its manifest, and (opt-in) rebuilds byte for byte.

The fast tests need only numpy and ai_edge_litert. The rebuild test needs the
build toolchain (tensorflow-cpu 2.21.0 and friends, see docs/benchmarks.md) and
takes about 6 minutes on 2 cores, so it is skipped unless
``EDGEBENCH_TEST_REBUILD=1`` is set and TensorFlow is importable by the build
interpreter (``EDGEBENCH_BUILD_PYTHON``, default: the interpreter running the
tests).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SUITE_DIR = REPO_ROOT / "edgebench" / "suite"
MANIFEST_PATH = SUITE_DIR / "manifest.json"
NAMES = ("kws", "ic", "vww", "ad")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    return json.loads(MANIFEST_PATH.read_text())


def _interpreter(path: Path, delegates: bool) -> Any:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = (
        OpResolverType.AUTO if delegates else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    )
    interpreter = Interpreter(
        model_path=str(path), num_threads=1, experimental_op_resolver_type=resolver
    )
    interpreter.allocate_tensors()
    return interpreter


def test_manifest_header(manifest: dict[str, Any]) -> None:
    assert manifest["schema_version"] == 1
    assert manifest["suite"] == "edgebench-reference"
    assert manifest["suite_version"] == "1.0"
    assert manifest["built_with"]["tensorflow"] == "2.21.0"
    assert sorted(manifest["benchmarks"]) == sorted(NAMES)


def test_manifest_text_is_canonical(manifest: dict[str, Any]) -> None:
    """Sorted keys, indent 2, trailing newline: what the build writes, byte for byte."""
    expected = json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=True) + "\n"
    assert MANIFEST_PATH.read_text() == expected


@pytest.mark.parametrize("name", NAMES)
def test_files_match_hashes(manifest: dict[str, Any], name: str) -> None:
    entry = manifest["benchmarks"][name]
    model = SUITE_DIR / entry["model"]["file"]
    data = SUITE_DIR / entry["dataset"]["file"]
    assert model == SUITE_DIR / "models" / f"{name}.tflite"
    assert data == SUITE_DIR / "data" / f"{name}_eval.npz"
    assert _sha256(model) == entry["model"]["sha256"], f"{model} differs from the manifest"
    assert model.stat().st_size == entry["model"]["bytes"]
    assert _sha256(data) == entry["dataset"]["sha256"], f"{data} differs from the manifest"


@pytest.mark.parametrize("name", NAMES)
def test_model_io_matches_manifest(manifest: dict[str, Any], name: str) -> None:
    entry = manifest["benchmarks"][name]["model"]
    interpreter = _interpreter(SUITE_DIR / entry["file"], delegates=False)
    inputs = interpreter.get_input_details()
    outputs = interpreter.get_output_details()
    assert len(inputs) == 1 and len(outputs) == 1
    for detail, spec in ((inputs[0], entry["input"]), (outputs[0], entry["output"])):
        assert detail["shape"].tolist() == spec["shape"]
        assert detail["shape"][0] == 1, "batch must be fixed at 1"
        assert np.dtype(detail["dtype"]).name == spec["dtype"] == "int8"
        scale, zero_point = detail["quantization"]
        assert float(scale) == spec["scale"]
        assert int(zero_point) == spec["zero_point"]
    if hasattr(interpreter, "_get_ops_details"):
        ops = sorted({op["op_name"] for op in interpreter._get_ops_details()})
        assert ops == entry["ops"]


@pytest.mark.parametrize("name", NAMES)
def test_eval_set_matches_manifest(manifest: dict[str, Any], name: str) -> None:
    entry = manifest["benchmarks"][name]
    with np.load(SUITE_DIR / entry["dataset"]["file"]) as data:
        assert sorted(data.files) == ["x", "y"]
        x, y = data["x"], data["y"]
    assert x.dtype == np.int8
    assert y.dtype == np.int64
    assert list(x.shape) == [entry["dataset"]["count"], *entry["model"]["input"]["shape"][1:]]
    assert len(y) == entry["dataset"]["count"] >= (1000 if name != "vww" else 300)
    counts = np.bincount(y, minlength=entry["dataset"]["classes"]).tolist()
    assert counts == entry["dataset"]["class_counts"]
    assert all(c > 0 for c in counts), "every class must be present in the eval set"


@pytest.mark.parametrize("name", NAMES)
def test_quality_fields_are_consistent(manifest: dict[str, Any], name: str) -> None:
    entry = manifest["benchmarks"][name]
    assert entry["metric"] == ("auc" if name == "ad" else "top1")
    assert entry["target"] == pytest.approx(0.99 * entry["fp32_metric"], abs=1e-6)
    assert entry["int8_metric"] >= entry["target"]
    assert entry["int8_metric_xnnpack"] >= entry["target"]
    lo, hi = entry["int8_metric_ci95"]
    assert 0.0 <= lo <= entry["int8_metric"] <= hi <= 1.0
    assert entry["tflm"]["runs"] is True
    assert isinstance(entry["tflm"]["matches_litert_no_delegate"], bool)
    assert entry["model"]["macs"] > 0 and entry["model"]["params"] > 0


def _metric(name: str, entry: dict[str, Any], x: np.ndarray, out: np.ndarray, y: np.ndarray):
    if entry["metric"] == "top1":
        return float(np.mean(np.argmax(out.reshape(len(out), -1), axis=1) == y))
    spec_in, spec_out = entry["model"]["input"], entry["model"]["output"]
    x_f = (x.astype(np.float64) - spec_in["zero_point"]) * spec_in["scale"]
    o_f = (out.astype(np.float64) - spec_out["zero_point"]) * spec_out["scale"]
    scores = np.mean((x_f.reshape(len(x), -1) - o_f.reshape(len(out), -1)) ** 2, axis=1)
    # Rank-sum AUC with tied scores sharing their mean rank.
    order = np.argsort(scores, kind="mergesort")
    _, first, counts = np.unique(scores[order], return_index=True, return_counts=True)
    ranks = np.empty(len(scores))
    ranks[order] = np.repeat(first + (counts + 1) / 2.0, counts)
    n_pos, n_neg = int(np.sum(y == 1)), int(np.sum(y == 0))
    return (ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("delegates", [False, True], ids=["no_delegate", "xnnpack"])
def test_int8_metric_reproduces(manifest: dict[str, Any], name: str, delegates: bool) -> None:
    """Re-run the int8 model on the bundled eval set; the metric must match the manifest.

    A small tolerance allows for CPUs whose optimized kernels round differently
    from the build machine's.
    """
    entry = manifest["benchmarks"][name]
    interpreter = _interpreter(SUITE_DIR / entry["model"]["file"], delegates)
    inp = interpreter.get_input_details()[0]["index"]
    out_detail = interpreter.get_output_details()[0]
    with np.load(SUITE_DIR / entry["dataset"]["file"]) as data:
        x, y = data["x"], data["y"]
    outputs = np.empty((len(x), *out_detail["shape"][1:]), dtype=np.int8)
    for i in range(len(x)):
        interpreter.set_tensor(inp, x[i : i + 1])
        interpreter.invoke()
        outputs[i] = interpreter.get_tensor(out_detail["index"])[0]
    recorded = entry["int8_metric_xnnpack" if delegates else "int8_metric"]
    assert _metric(name, entry, x, outputs, y) == pytest.approx(recorded, abs=0.005)


def _build_python() -> str:
    return os.environ.get("EDGEBENCH_BUILD_PYTHON", sys.executable)


def _tensorflow_importable(python: str) -> bool:
    probe = "import importlib.util, sys; sys.exit(importlib.util.find_spec('tensorflow') is None)"
    return subprocess.run([python, "-c", probe], check=False).returncode == 0


@pytest.mark.skipif(
    os.environ.get("EDGEBENCH_TEST_REBUILD") != "1",
    reason="full rebuild is opt-in: set EDGEBENCH_TEST_REBUILD=1 (takes ~6 min)",
)
def test_full_rebuild_is_byte_identical(manifest: dict[str, Any], tmp_path: Path) -> None:
    python = _build_python()
    if not _tensorflow_importable(python):
        pytest.skip(f"tensorflow is not importable by {python}; set EDGEBENCH_BUILD_PYTHON")
    proc = subprocess.run(
        [python, "-m", "edgebench.suite.build", "--out", str(tmp_path)],
        cwd=REPO_ROOT,
        check=False,
        timeout=3600,
    )
    assert proc.returncode == 0, "the suite build failed"
    rebuilt = json.loads((tmp_path / "manifest.json").read_text())
    for name in NAMES:
        for kind in ("model", "dataset"):
            committed = manifest["benchmarks"][name][kind]
            assert _sha256(tmp_path / committed["file"]) == committed["sha256"], (
                f"rebuilt {committed['file']} differs from the committed one"
            )
    assert rebuilt == manifest

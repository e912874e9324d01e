"""Build one benchmark in a fresh process: data, train, convert, score, write files.

Why a separate process per benchmark: Keras keeps global state (name
counters, seed generators, the TensorFlow graph cache) that would otherwise
make one model's bytes depend on which models were built before it in the same
process. The orchestrator (``cli``) starts this module once per benchmark as
``python -m edgebench.suite.build.worker NAME --out DIR --result FILE``; the
result file is the benchmark's manifest entry minus the TFLM check, which the
orchestrator runs in yet another process because TFLM may abort on bad
quantization.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from edgebench.suite.build import litert, modelinfo, scoring, tfenv
from edgebench.suite.build.npzio import write_npz
from edgebench.suite.build.quantize import (
    calibration_subset,
    convert_int8,
    dequantize,
    quantize,
)
from edgebench.suite.build.spec import Benchmark
from edgebench.suite.build.training import deploy_copy, log

TARGET_FRACTION = 0.99
"""Quality target: the int8 metric must reach this fraction of the fp32 metric."""

VERSIONED_PACKAGES = (
    "tensorflow-cpu",
    "keras",
    "numpy",
    "ai-edge-litert",
    "scikit-learn",
    "scikit-image",
    "mlxtend",
    "scipy",
    "pillow",
    "imageio",
)


def built_with() -> dict[str, str]:
    """Versions that determine the output bytes (the manifest's ``built_with``).

    Besides TensorFlow/Keras (training numerics, converter) this lists the data
    stack: scikit-image resizes images with scipy and decodes the bundled
    photos with imageio/pillow, so their versions can change the eval bytes.
    """
    versions = {"python": ".".join(platform.python_version_tuple()[:2])}
    for dist in VERSIONED_PACKAGES:
        key = "tensorflow" if dist == "tensorflow-cpu" else dist
        try:
            versions[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            if dist == "tensorflow-cpu":
                versions[key] = metadata.version("tensorflow")
    return versions


def load_benchmark(name: str) -> Benchmark:
    """Import ``edgebench.suite.build.<name>`` and return its ``BENCHMARK``."""
    module = importlib.import_module(f"edgebench.suite.build.{name}")
    return module.BENCHMARK


def scores_from_outputs(bench: Benchmark, x_in: np.ndarray, outputs: np.ndarray) -> np.ndarray:
    """Per-sample predictions (top1: argmax) or anomaly scores (auc: reconstruction MSE).

    Both arguments must already be float (the fp32 data, or dequantized int8).
    """
    if bench.metric == "top1":
        return np.argmax(outputs.reshape(len(outputs), -1), axis=1)
    diff = x_in.reshape(len(x_in), -1) - outputs.reshape(len(outputs), -1)
    return np.mean(diff * diff, axis=1)


def int8_scores(
    bench: Benchmark, x_q: np.ndarray, out_q: np.ndarray, spec: dict[str, Any]
) -> np.ndarray:
    """Scores of the int8 model, computed on dequantized input and output tensors."""
    x_f = dequantize(x_q, spec["input"]["scale"], spec["input"]["zero_point"])
    out_f = dequantize(out_q, spec["output"]["scale"], spec["output"]["zero_point"])
    return scores_from_outputs(bench, x_f, out_f)


def build(name: str, out_dir: Path) -> dict[str, Any]:
    """Run the whole pipeline for one benchmark; return its manifest entry (without TFLM)."""
    bench = load_benchmark(name)
    tf = tfenv.import_tensorflow(bench.seed)
    import keras

    t0 = time.monotonic()
    log(name, "making data")
    split = bench.make_data(bench.seed)
    log(
        name,
        f"  train {split.x_train.shape} eval {split.x_eval.shape} "
        f"eval class counts {np.bincount(split.y_eval).tolist()}",
    )

    model = bench.build_model(keras, None)
    bench.train(keras, model, split, bench.seed)
    log(name, f"trained in {time.monotonic() - t0:.0f} s")

    fp32_out = model.predict(split.x_eval, batch_size=256, verbose=0)
    fp32_metric, _ = scoring.metric_and_interval(
        bench.metric, split.y_eval, scores_from_outputs(bench, split.x_eval, fp32_out)
    )
    fp32_metric = round(fp32_metric, 6)
    target = round(TARGET_FRACTION * fp32_metric, 6)
    log(name, f"fp32 {bench.metric} {fp32_metric:.4f} -> target {target:.4f}")

    log(name, f"converting to int8 (calibration: {bench.calibration_size} training samples)")
    deploy = deploy_copy(keras, bench.build_model, model)
    calibration = calibration_subset(split.x_train, bench.calibration_size, bench.seed)
    tflite = convert_int8(tf, deploy, calibration)
    spec = litert.describe(tflite)

    x_q = quantize(split.x_eval, spec["input"]["scale"], spec["input"]["zero_point"])
    y = split.y_eval.astype(np.int64)
    results: dict[str, tuple[float, tuple[float, float]]] = {}
    for mode, kernels in (("no_delegate", "builtin"), ("xnnpack", "xnnpack")):
        out_q = litert.run_all(tflite, x_q, kernels)
        results[mode] = scoring.metric_and_interval(
            bench.metric, y, int8_scores(bench, x_q, out_q, spec)
        )
        log(name, f"int8 {bench.metric} ({mode}) {results[mode][0]:.4f}")

    model_path = out_dir / "models" / f"{name}.tflite"
    data_path = out_dir / "data" / f"{name}_eval.npz"
    model_path.parent.mkdir(parents=True, exist_ok=True)
    data_path.parent.mkdir(parents=True, exist_ok=True)
    model_path.write_bytes(tflite)
    write_npz(data_path, {"x": x_q, "y": y})
    log(name, f"wrote {model_path} ({len(tflite)} B) and {data_path}")

    params, macs = modelinfo.count(deploy)
    int8_metric, ci = results["no_delegate"]
    return {
        "task": bench.task,
        "topology": bench.topology,
        "model": {
            "file": f"models/{name}.tflite",
            "bytes": len(tflite),
            "params": params,
            "macs": macs,
            **spec,
        },
        "dataset": {
            "file": f"data/{name}_eval.npz",
            "count": len(y),
            "classes": bench.classes,
            "class_counts": np.bincount(y, minlength=bench.classes).tolist(),
            "source": bench.source,
            "synthetic": bench.synthetic,
            "preprocessing": bench.preprocessing,
            "calibration": (
                f"{len(calibration)} training samples, drawn without replacement by "
                f"numpy default_rng([{bench.seed}, 7]) (sorted indices)"
            ),
        },
        "training": bench.training,
        "seed": bench.seed,
        "metric": bench.metric,
        "fp32_metric": fp32_metric,
        "int8_metric": round(int8_metric, 6),
        "int8_metric_xnnpack": round(results["xnnpack"][0], 6),
        "int8_metric_ci95": [round(ci[0], 6), round(ci[1], 6)],
        "target": target,
        "meets_target": bool(
            round(int8_metric, 6) >= target and round(results["xnnpack"][0], 6) >= target
        ),
        "_built_with": built_with(),
        "_build_seconds": round(time.monotonic() - t0, 1),
    }


def main(argv: list[str] | None = None) -> int:
    """CLI of the worker process (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("name")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--result", type=Path, required=True)
    args = parser.parse_args(argv)
    entry = build(args.name, args.out)
    args.result.write_text(json.dumps(entry, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

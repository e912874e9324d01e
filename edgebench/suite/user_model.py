"""Open division: a user's own TFLite model, benchmarked with the same loop and rules.

Without labelled data only performance can be measured (the agent feeds seeded random
inputs of the model's own shapes and types). With a labelled `.npz` (`x` or `x0..xN`, and
`y`), accuracy is scored by top-1.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..agent.runtime import Engine, ModelError
from .benchmarks import Benchmark, TensorSpec, sha256_file

TFLITE_IDENTIFIER = b"TFL3"


def check_flatbuffer(path: Path) -> None:
    if not path.is_file():
        raise ModelError(f"model file {path} does not exist; check the path")
    with open(path, "rb") as handle:
        head = handle.read(8)
    if head[4:8] != TFLITE_IDENTIFIER:
        raise ModelError(
            f"{path} is not a TFLite flatbuffer (no 'TFL3' identifier); "
            f"convert it with the TFLite converter first"
        )


def user_benchmark(model: Path, data: Path | None = None) -> Benchmark:
    check_flatbuffer(model)
    engine = Engine(str(model), delegate="none")
    spec = engine.describe()
    first_in, first_out = spec["inputs"][0], spec["outputs"][0]
    count, metric = 0, "none"
    if data is not None:
        if not data.is_file():
            raise ModelError(f"data file {data} does not exist")
        with np.load(data) as arrays:
            if "y" not in arrays.files:
                raise ModelError(f"{data}: no array 'y' with labels, so accuracy cannot be scored")
            count = len(arrays["y"])
        metric = "top1"
    return Benchmark(
        name=model.stem,
        task=f"user model ({len(spec['inputs'])} input(s), {len(spec['outputs'])} output(s))",
        model_path=model,
        model_sha256=sha256_file(model),
        input=TensorSpec.from_dict(first_in),
        output=TensorSpec.from_dict(first_out),
        metric=metric,
        target=None,
        dataset_path=data,
        dataset_sha256=sha256_file(data) if data else None,
        dataset_count=count,
        division="open",
        source="user model",
    )

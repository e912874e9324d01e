"""Run an int8 ``.tflite`` over a whole eval set with ai_edge_litert.

Why several kernel sets: ``builtin`` (``BUILTIN_WITHOUT_DEFAULT_DELEGATES``)
runs TFLite's optimized builtin kernels without any delegate; it is
deterministic and is the reference for the manifest's ``int8_metric``.
``xnnpack`` (the default resolver) applies XNNPACK, which rounds
requantization differently (outputs can differ by a few LSB); the quality
target must hold there too because that is what users on Linux devices will
run. ``reference`` (``BUILTIN_REF``) runs the slow reference kernels, the ones
TFLM's kernels are written to match, for the TFLM cross-check.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np

Kernels = Literal["builtin", "xnnpack", "reference"]

_RESOLVERS = {
    "builtin": "BUILTIN_WITHOUT_DEFAULT_DELEGATES",
    "xnnpack": "AUTO",
    "reference": "BUILTIN_REF",
}


def make_interpreter(model: Path | bytes, kernels: Kernels = "builtin") -> Any:
    """Create and allocate a single-threaded LiteRT interpreter using ``kernels``."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = getattr(OpResolverType, _RESOLVERS[kernels])
    kwargs: dict[str, Any] = {"num_threads": 1, "experimental_op_resolver_type": resolver}
    if isinstance(model, bytes):
        kwargs["model_content"] = model
    else:
        kwargs["model_path"] = str(model)
    interpreter = Interpreter(**kwargs)
    interpreter.allocate_tensors()
    return interpreter


def run_all(model: Path | bytes, x_q: np.ndarray, kernels: Kernels = "builtin") -> np.ndarray:
    """Invoke the model once per sample of ``x_q`` (int8, no batch axis); stack the outputs."""
    interpreter = make_interpreter(model, kernels)
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    results = np.empty((len(x_q), *out["shape"][1:]), dtype=out["dtype"])
    for i in range(len(x_q)):
        interpreter.set_tensor(inp["index"], x_q[i : i + 1])
        interpreter.invoke()
        results[i] = interpreter.get_tensor(out["index"])[0]
    return results


def tensor_spec(detail: dict[str, Any]) -> dict[str, Any]:
    """Manifest form of one input/output detail: shape, dtype, scale, zero point."""
    scale, zero_point = detail["quantization"]
    return {
        "shape": [int(d) for d in detail["shape"]],
        "dtype": np.dtype(detail["dtype"]).name,
        "scale": float(scale),
        "zero_point": int(zero_point),
    }


def describe(model: Path | bytes) -> dict[str, Any]:
    """Input/output specs and the sorted set of builtin op names of a model."""
    interpreter = make_interpreter(model)
    ops = sorted({op["op_name"] for op in interpreter._get_ops_details()})
    return {
        "input": tensor_spec(interpreter.get_input_details()[0]),
        "output": tensor_spec(interpreter.get_output_details()[0]),
        "ops": ops,
    }

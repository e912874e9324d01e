"""TFLM, the reference for device-side results, run in the test process."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

tflm_runtime = pytest.importorskip(
    "tflite_micro.python.tflite_micro.runtime", reason="tflite-micro is not installed"
)


def tflm_outputs(model: Path, inputs: np.ndarray) -> np.ndarray:
    """The raw int8 output tensor for each input, one invoke per sample."""
    interpreter = tflm_runtime.Interpreter.from_file(str(model))
    outputs = []
    for sample in inputs:
        interpreter.set_input(sample[np.newaxis], 0)
        interpreter.invoke()
        outputs.append(interpreter.get_output(0).reshape(-1).copy())
    return np.asarray(outputs)


def quantization(model: Path) -> tuple[tuple[float, int], tuple[float, int]]:
    """(scale, zero point) of the input and of the output."""
    interpreter = tflm_runtime.Interpreter.from_file(str(model))
    pairs = []
    for details in (interpreter.get_input_details(0), interpreter.get_output_details(0)):
        parameters = details["quantization_parameters"]
        pairs.append((float(parameters["scales"][0]), int(parameters["zero_points"][0])))
    return pairs[0], pairs[1]

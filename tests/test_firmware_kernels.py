"""The C kernels in firmware_bridges/core against TFLM, the reference for device-side results:
every bundled model over its whole evaluation set must give identical int8 outputs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from edgebench.firmware.build import COMMON_FLAGS, FIRMWARE_ROOT, build_with_model, find_tool
from edgebench.firmware.model_to_c import ConversionError, convert
from edgebench.suite.benchmarks import bundled_benchmarks

from .support import SHARED
from .tflm_reference import tflm_outputs, tflm_runtime

RUN_MODEL = FIRMWARE_ROOT / "tools" / "run_model.c"
OFFICIAL_MODELS = SHARED / "reference-models" / "mlperf-tiny"


def c_outputs(model: Path, inputs: np.ndarray, tmp_path: Path) -> np.ndarray:
    compiler = find_tool(("cc", "gcc", "clang"), "apt-get install gcc")
    program, converted = build_with_model(
        model, "test", compiler, COMMON_FLAGS, [RUN_MODEL], tmp_path, "run_model", True
    )
    assert converted.input["bytes"] == inputs[0].size
    done = subprocess.run([program], input=inputs.tobytes(), capture_output=True, check=True)
    return np.frombuffer(done.stdout, dtype=np.int8).reshape(len(inputs), -1)


@pytest.mark.parametrize("name", ["kws", "ic", "vww", "ad"])
def test_bundled_model_is_bit_exact_with_tflm_on_the_eval_set(name, tmp_path):
    benchmark = bundled_benchmarks()[name]
    inputs = np.load(benchmark.dataset_path)["x"]
    ours = c_outputs(benchmark.model_path, inputs, tmp_path)
    reference = tflm_outputs(benchmark.model_path, inputs)
    differing = np.flatnonzero((ours != reference).any(axis=1))
    assert differing.size == 0, (
        f"{differing.size} of {len(inputs)} samples differ, first {differing[:5]}, largest "
        f"difference {np.abs(ours.astype(int) - reference).max()} LSB"
    )


@pytest.mark.skipif(not OFFICIAL_MODELS.is_dir(), reason="../shared reference models absent")
@pytest.mark.parametrize(
    "file", ["kws_ref_model.tflite", "pretrainedResnet_quant.tflite", "ad01_int8.tflite"]
)
def test_official_mlperf_tiny_model_is_bit_exact_with_tflm(file, tmp_path):
    model = OFFICIAL_MODELS / file
    interpreter = tflm_runtime.Interpreter.from_file(str(model))
    shape = interpreter.get_input_details(0)["shape"][1:]
    inputs = np.random.default_rng(7).integers(-128, 128, size=(64, *shape), dtype=np.int8)
    np.testing.assert_array_equal(c_outputs(model, inputs, tmp_path), tflm_outputs(model, inputs))


def test_unsupported_op_is_named(tmp_path):
    flatbuffers = pytest.importorskip("flatbuffers")
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bundled_benchmarks()["kws"].model_path.read_bytes(), 0)
    model.operatorCodes[0].builtinCode = schema.BuiltinOperator.MAX_POOL_2D
    model.operatorCodes[0].deprecatedBuiltinCode = schema.BuiltinOperator.MAX_POOL_2D
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    with pytest.raises(ConversionError, match="op MAX_POOL_2D is not supported"):
        convert(bytes(builder.Output()), "eb-kws")

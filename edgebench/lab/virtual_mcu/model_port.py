"""What reference firmware's submitter port does around the model: th_load_tensor and
th_results, for the model id the device reports.

The `db` buffer becomes the int8 input tensor by the model id's wire format (the shared
TinyModel conversion, so host and device cannot disagree about it). Results are printed as
fixed-point text, as MLPerf Tiny firmware does because small printf implementations lack
%f: classifiers print each output dequantized with 3 decimals (for the usual 1/256 output
scale that still tells every int8 value apart); anomaly detectors print one score, the mean
squared error between the input and its reconstruction, with 3 decimals for ad01 (computed
in float32 against the FP32 window, as the reference firmware does) and 6 decimals for
eb-ad (against the dequantized int8 input, as edgebench scores its bundled AD benchmark,
so the score keeps enough digits for AUC).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...metrics.accuracy import reconstruction_scores
from ...protocol.tiny_models import TINY_MODELS, TinyModel
from .errors import VirtualMcuError

ANOMALY_IDS = ("ad01", "eb-ad")  # firmware for these prints one anomaly score
INT8 = 9  # TensorType.INT8 in the TFLite schema


@dataclass(frozen=True)
class Quantized:
    shape: tuple[int, ...]
    scale: float
    zero_point: int

    def dequantize(self, values: np.ndarray) -> np.ndarray:
        """As TFLM's DequantizeInt8ToFloat: float(q - zero_point) * scale, in float32."""
        shifted = np.asarray(values, dtype=np.int32) - self.zero_point
        return shifted.astype(np.float32) * np.float32(self.scale)


@dataclass(frozen=True)
class ModelPort:
    model: TinyModel
    input: Quantized
    output: Quantized

    @classmethod
    def open(cls, path: Path, model_id: str) -> ModelPort:
        if model_id not in TINY_MODELS:
            raise VirtualMcuError(
                f"unknown model id {model_id!r}; use one of {', '.join(TINY_MODELS)}"
            )
        return cls(TINY_MODELS[model_id], *_io_tensors(path))

    @property
    def max_db_bytes(self) -> int:
        """MAX_DB_INPUT_SIZE: one sample in the id's wire format."""
        return self.model.wire_size(int(np.prod(self.input.shape)))

    def load_tensor(self, wire: bytes) -> np.ndarray:
        return self.model.to_tensor(wire, self.input.scale, self.input.zero_point, self.input.shape)

    def results(self, wire: bytes, output: np.ndarray) -> str:
        """The `m-results-[...]` line for one inference on the sample `wire`."""
        if self.model.model_id == "ad01":
            reference = np.frombuffer(wire, dtype="<f4")
            diff = self.output.dequantize(output.reshape(-1)) - reference
            # the firmware sums in float32, one element after another
            score = np.cumsum(diff * diff, dtype=np.float32)[-1] / np.float32(diff.size)
            return f"m-results-[{score:.3f}]"
        if self.model.model_id == "eb-ad":
            tensor = self.load_tensor(wire)
            (score,) = reconstruction_scores(
                tensor.reshape(1, -1),
                output.reshape(1, -1),
                (self.input.scale, self.input.zero_point),
                (self.output.scale, self.output.zero_point),
            )
            return f"m-results-[{score:.6f}]"
        values = self.output.dequantize(output.reshape(-1))
        return "m-results-[" + ",".join(f"{value:.3f}" for value in values) + "]"


def _io_tensors(path: Path) -> tuple[Quantized, Quantized]:
    """Input and output quantization, read from the flatbuffer without running TFLM."""
    try:
        from tflite_micro import runtime
    except ImportError:
        raise VirtualMcuError(
            "the virtual MCU needs the tflite-micro package: pip install tflite-micro"
        ) from None
    try:
        data = bytearray(path.read_bytes())
    except OSError as error:
        raise VirtualMcuError(f"cannot read model {path}: {error.strerror}") from None
    try:
        graph = runtime.convert_bytearray_to_object(data).subgraphs[0]
        tensors = [graph.tensors[graph.inputs[0]], graph.tensors[graph.outputs[0]]]
    except Exception:
        raise VirtualMcuError(f"{path} is not a TFLite flatbuffer; give a .tflite model") from None
    found = []
    for tensor, role in zip(tensors, ("input", "output"), strict=True):
        quantization = tensor.quantization
        if tensor.type != INT8 or quantization is None or quantization.scale is None:
            raise VirtualMcuError(
                f"{path}: the {role} tensor is not int8-quantized; the virtual MCU runs "
                f"int8 models as MLPerf Tiny firmware does (quantize the model first)"
            )
        found.append(
            Quantized(
                tuple(int(d) for d in tensor.shape),
                float(quantization.scale[0]),
                int(quantization.zeroPoint[0]),
            )
        )
    return found[0], found[1]

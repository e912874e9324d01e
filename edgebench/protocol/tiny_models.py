"""Model ids a DUT reports (`m-model-[...]`) and the byte format its `db` buffer expects.

Firmware written for MLPerf Tiny reports one of its four ids and converts the loaded bytes
into the model input itself (`th_load_tensor`): int8 MFCC as they are for kws01, uint8 HWC
pixels minus 128 for ic01 / vww01, FP32LE windows quantized with the model's input scale and
zero point for ad01. edgebench's own bundled benchmarks use other models with other data, so
they get their own ids (`eb-*`) and the plainest wire format (the int8 input tensor's bytes):
a DUT flashed for kws01 is then never scored against edgebench's kws data, or the reverse.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..suite.benchmarks import BenchmarkError
from ..suite.official import quantize_int8, uint8_to_int8

WIRE_FORMATS = ("int8", "uint8-minus-128", "float32le")


@dataclass(frozen=True)
class TinyModel:
    """One model id: which benchmark it serves and how a sample travels to the DUT."""

    model_id: str
    benchmark: str  # the edgebench benchmark name it serves (kws01 or kws, ...)
    wire_format: str  # one of WIRE_FORMATS
    official: bool  # an MLPerf Tiny id (its firmware exists outside edgebench)

    @property
    def anomaly(self) -> bool:
        """Autoencoders: the firmware prints one anomaly score, not a class vector."""
        return self.benchmark in ("ad", "ad01")

    @property
    def result_decimals(self) -> int:
        """Digits after the point in `m-results-[...]` (fixed point: small printfs lack %f).

        Three, as MLPerf Tiny firmware prints (enough to tell int8 softmax steps of 1/256
        apart); six for edgebench's own anomaly score, whose small values would otherwise
        tie and blur the AUC.
        """
        return 6 if self.anomaly and not self.official else 3

    def to_wire(self, sample: np.ndarray) -> bytes:
        """A sample -> the bytes the firmware expects after `db load`.

        `sample` is what the evaluation set stores for the wire: the int8 model input for
        int8 and uint8 formats (uint8 pixels are int8 + 128, an exact inverse), the raw
        float32 window for float32le (the quantized input cannot be turned back into it).
        """
        array = np.asarray(sample)
        if self.wire_format == "float32le":
            if array.dtype.kind != "f":
                raise ValueError(
                    f"{self.model_id} sends FP32LE windows, got {array.dtype} data; "
                    f"use the evaluation set's raw float windows (key 'wire')"
                )
            return array.astype("<f4").tobytes()
        if array.dtype == np.uint8 and self.wire_format == "uint8-minus-128":
            return array.tobytes()
        if array.dtype != np.int8:
            raise ValueError(f"{self.model_id} sends int8 tensors, got {array.dtype} data")
        if self.wire_format == "uint8-minus-128":
            return (array.astype(np.int16) + 128).astype(np.uint8).tobytes()
        return array.tobytes()

    def wire_size(self, input_elements: int) -> int:
        """Bytes one sample takes on the wire (the `db load N` count)."""
        return input_elements * (4 if self.wire_format == "float32le" else 1)

    def to_tensor(
        self, wire: bytes, scale: float, zero_point: int, shape: tuple[int, ...]
    ) -> np.ndarray:
        """The DUT's `th_load_tensor`: wire bytes -> the int8 model input of `shape`."""
        count = int(np.prod(shape))
        expected = self.wire_size(count)
        if len(wire) != expected:
            raise ValueError(
                f"{self.model_id}: {len(wire)} bytes loaded, the model input needs {expected}"
            )
        if self.wire_format == "int8":
            tensor = np.frombuffer(wire, dtype=np.int8)
        elif self.wire_format == "uint8-minus-128":
            tensor = uint8_to_int8(wire)
        else:
            tensor = quantize_int8(np.frombuffer(wire, dtype="<f4"), scale, zero_point)
        return tensor.reshape(shape).copy()


TINY_MODELS: dict[str, TinyModel] = {
    model.model_id: model
    for model in (
        TinyModel("kws01", "kws01", "int8", official=True),
        TinyModel("vww01", "vww01", "uint8-minus-128", official=True),
        TinyModel("ic01", "ic01", "uint8-minus-128", official=True),
        TinyModel("ad01", "ad01", "float32le", official=True),
        TinyModel("eb-kws", "kws", "int8", official=False),
        TinyModel("eb-ic", "ic", "int8", official=False),
        TinyModel("eb-vww", "vww", "int8", official=False),
        TinyModel("eb-ad", "ad", "int8", official=False),
    )
}
_BY_BENCHMARK = {model.benchmark: model for model in TINY_MODELS.values()}


def model_for_benchmark(name: str) -> TinyModel:
    """The model id a DUT must report to run benchmark `name` (or the id itself)."""
    if name in _BY_BENCHMARK:
        return _BY_BENCHMARK[name]
    if name in TINY_MODELS:
        return TINY_MODELS[name]
    raise BenchmarkError(
        f"benchmark {name!r} has no MLPerf Tiny model id, so serial devices cannot run it; "
        f"use one of {', '.join(sorted(_BY_BENCHMARK))}"
    )

"""Turn an int8 .tflite model into C sources for firmware_bridges/core: constant weight
arrays, a layer table with TFLM's quantization parameters precomputed, and an arena plan.

Boards then need neither a flatbuffer parser nor floating point to run the model, and the
tables are produced by the same arithmetic TFLM uses (tflm_math), so the C kernels reproduce
TFLM's outputs exactly. Only what the bundled suite uses is supported; anything else is
refused with the op or option named.
"""

from __future__ import annotations

import argparse
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from ..protocol.tiny_models import TINY_MODELS
from . import tflm_math

ARENA_ALIGN = 16
WIRE_FORMATS = {
    "int8": "EB_WIRE_INT8",
    "uint8-minus-128": "EB_WIRE_UINT8_MINUS_128",
    "float32le": "EB_WIRE_FLOAT32LE",
}
OP_NAMES = {
    value: name for name, value in vars(schema.BuiltinOperator).items() if not name.startswith("_")
}
SUPPORTED_OPS = (
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "FULLY_CONNECTED",
    "ADD",
    "AVERAGE_POOL_2D",
    "SOFTMAX",
    "RESHAPE",
)


class ConversionError(ValueError):
    """The model uses something the C kernels do not implement."""


@dataclass
class Layer:
    """One row of the C layer table: field name -> value (ints or array symbol names)."""

    op: str
    fields: dict[str, object] = field(default_factory=dict)


@dataclass
class CModel:
    model_id: str
    sha256: str
    layers: list[Layer]
    arrays: list[tuple[str, str, np.ndarray]]  # (C type, name, values)
    arena_bytes: int
    input: dict[str, object]
    output: dict[str, object]
    wire_format: str  # a key of WIRE_FORMATS
    anomaly: bool
    result_decimals: int

    @property
    def wire_bytes(self) -> int:
        return int(self.input["bytes"]) * (4 if self.wire_format == "float32le" else 1)


def _nhwc(shape: np.ndarray) -> tuple[int, int, int]:
    dims = [int(d) for d in shape]
    if len(dims) == 4:
        return dims[1], dims[2], dims[3]
    if len(dims) == 2:
        return 1, 1, dims[1]
    if len(dims) == 3:
        return 1, dims[1], dims[2]
    raise ConversionError(f"tensor shape {dims} is not supported (batch 1, rank 2 to 4)")


class _Reader:
    """Walks the flatbuffer's first subgraph and collects layers and constant arrays."""

    def __init__(self, data: bytes, model_id: str) -> None:
        self.model = schema.ModelT.InitFromPackedBuf(data, 0)
        if len(self.model.subgraphs) != 1:
            raise ConversionError("models with more than one subgraph are not supported")
        self.graph = self.model.subgraphs[0]
        self.model_id = model_id
        self.arrays: list[tuple[str, str, np.ndarray]] = []
        self.layers: list[Layer] = []

    def tensor(self, index: int):
        return self.graph.tensors[index]

    def quant(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        q = self.tensor(index).quantization
        if q is None or q.scale is None:
            raise ConversionError(f"tensor {self._name(index)} is not quantized")
        return np.asarray(q.scale, dtype=np.float32), np.asarray(q.zeroPoint, dtype=np.int64)

    def scale_zp(self, index: int) -> tuple[float, int]:
        scale, zero = self.quant(index)
        return float(scale[0]), int(zero[0])

    def _name(self, index: int) -> str:
        name = self.tensor(index).name
        return name.decode() if isinstance(name, bytes) else str(name)

    def constant(self, index: int, dtype: type) -> np.ndarray:
        buffer = self.model.buffers[self.tensor(index).buffer].data
        if buffer is None:
            raise ConversionError(f"tensor {self._name(index)} should be constant but has no data")
        return np.frombuffer(bytes(np.asarray(buffer, dtype=np.uint8)), dtype=dtype)

    def add_array(self, ctype: str, values: np.ndarray) -> str:
        name = f"eb_array_{len(self.arrays)}"
        self.arrays.append((ctype, name, values))
        return name

    def check_int8(self, index: int) -> None:
        if self.tensor(index).type != schema.TensorType.INT8:
            raise ConversionError(f"tensor {self._name(index)} is not int8")

    def convert(self) -> list[tuple[Layer, list[int], int]]:
        rows = []
        for op in self.graph.operators:
            code = self.model.operatorCodes[op.opcodeIndex]
            name = OP_NAMES.get(max(code.builtinCode, code.deprecatedBuiltinCode), "?")
            if name not in SUPPORTED_OPS:
                raise ConversionError(
                    f"op {name} is not supported by the C kernels "
                    f"(supported: {', '.join(SUPPORTED_OPS)})"
                )
            inputs = [int(i) for i in op.inputs]
            output = int(op.outputs[0])
            self.check_int8(inputs[0])
            self.check_int8(output)
            layer = getattr(self, f"_{name.lower()}")(op, inputs, output)
            activations = [inputs[0], inputs[1]] if name == "ADD" else [inputs[0]]
            rows.append((layer, activations, output))
        return rows

    def _shapes(self, inputs: list[int], output: int) -> dict[str, object]:
        in_h, in_w, in_c = _nhwc(self.tensor(inputs[0]).shape)
        out_h, out_w, out_c = _nhwc(self.tensor(output).shape)
        in_scale, in_zp = self.scale_zp(inputs[0])
        out_scale, out_zp = self.scale_zp(output)
        return {
            "in_h": in_h,
            "in_w": in_w,
            "in_c": in_c,
            "out_h": out_h,
            "out_w": out_w,
            "out_c": out_c,
            "input_offset": -in_zp,
            "output_offset": out_zp,
            "_in_scale": in_scale,
            "_out_scale": out_scale,
            "_out_zp": out_zp,
        }

    def _activation(self, fields: dict[str, object], activation: int) -> None:
        low, high = tflm_math.activation_range(activation, fields["_out_scale"], fields["_out_zp"])
        fields["act_min"], fields["act_max"] = low, high

    def _window(self, fields: dict[str, object], options, filter_h: int, filter_w: int) -> None:
        dil_h = getattr(options, "dilationHFactor", 1) or 1
        dil_w = getattr(options, "dilationWFactor", 1) or 1
        out_h, pad_h = tflm_math.padding(
            options.padding, fields["in_h"], filter_h, options.strideH, dil_h
        )
        out_w, pad_w = tflm_math.padding(
            options.padding, fields["in_w"], filter_w, options.strideW, dil_w
        )
        if (out_h, out_w) != (fields["out_h"], fields["out_w"]):
            raise ConversionError("output size disagrees with the op's padding and stride")
        fields.update(
            filter_h=filter_h,
            filter_w=filter_w,
            stride_h=options.strideH,
            stride_w=options.strideW,
            dilation_h=dil_h,
            dilation_w=dil_w,
            pad_h=pad_h,
            pad_w=pad_w,
        )

    def _weights(self, fields: dict[str, object], inputs: list[int], per_channel: bool) -> None:
        channels = int(fields["out_c"])
        fields["filter"] = self.add_array("int8_t", self.constant(inputs[1], np.int8))
        if len(inputs) > 2 and inputs[2] >= 0:
            fields["bias"] = self.add_array("int32_t", self.constant(inputs[2], np.int32))
        filter_scales, filter_zps = self.quant(inputs[1])
        multipliers, shifts = tflm_math.conv_multipliers(
            fields["_in_scale"], filter_scales, fields["_out_scale"], channels, per_channel
        )
        if len(filter_scales) == 1:
            fields["filter_offset"] = -int(filter_zps[0])
        fields["multiplier"] = self.add_array("int32_t", np.asarray(multipliers, np.int32))
        fields["shift"] = self.add_array("int32_t", np.asarray(shifts, np.int32))
        fields["multiplier_count"] = len(multipliers)

    def _conv_2d(self, op, inputs: list[int], output: int) -> Layer:
        fields = self._shapes(inputs, output)
        shape = [int(d) for d in self.tensor(inputs[1]).shape]  # O H W I
        if shape[3] != fields["in_c"]:
            raise ConversionError("grouped convolutions are not supported")
        self._window(fields, op.builtinOptions, shape[1], shape[2])
        self._weights(fields, inputs, per_channel=True)
        self._activation(fields, op.builtinOptions.fusedActivationFunction)
        return Layer("EB_OP_CONV_2D", fields)

    def _depthwise_conv_2d(self, op, inputs: list[int], output: int) -> Layer:
        fields = self._shapes(inputs, output)
        shape = [int(d) for d in self.tensor(inputs[1]).shape]  # 1 H W O
        self._window(fields, op.builtinOptions, shape[1], shape[2])
        fields["depth_multiplier"] = int(fields["out_c"]) // int(fields["in_c"])
        self._weights(fields, inputs, per_channel=True)
        self._activation(fields, op.builtinOptions.fusedActivationFunction)
        return Layer("EB_OP_DEPTHWISE_CONV_2D", fields)

    def _fully_connected(self, op, inputs: list[int], output: int) -> Layer:
        fields = self._shapes(inputs, output)
        units, depth = (int(d) for d in self.tensor(inputs[1]).shape)
        if depth != fields["in_h"] * fields["in_w"] * fields["in_c"] or units != fields["out_c"]:
            raise ConversionError("FULLY_CONNECTED with batches > 1 is not supported")
        self._weights(fields, inputs, per_channel=False)
        self._activation(fields, op.builtinOptions.fusedActivationFunction)
        return Layer("EB_OP_FULLY_CONNECTED", fields)

    def _add(self, op, inputs: list[int], output: int) -> Layer:
        fields = self._shapes(inputs, output)
        if list(self.tensor(inputs[0]).shape) != list(self.tensor(inputs[1]).shape):
            raise ConversionError("ADD with broadcasting is not supported")
        scale2, zp2 = self.scale_zp(inputs[1])
        first, second, out = tflm_math.add_multipliers(
            fields["_in_scale"], scale2, fields["_out_scale"]
        )
        fields.update(
            input2_offset=-zp2,
            left_shift=tflm_math.ADD_LEFT_SHIFT,
            input_multiplier=first[0],
            input_shift=first[1],
            input2_multiplier=second[0],
            input2_shift=second[1],
            output_multiplier=out[0],
            output_shift=out[1],
        )
        self._activation(fields, op.builtinOptions.fusedActivationFunction)
        return Layer("EB_OP_ADD", fields)

    def _average_pool_2d(self, op, inputs: list[int], output: int) -> Layer:
        fields = self._shapes(inputs, output)
        options = op.builtinOptions
        self._window(fields, options, options.filterHeight, options.filterWidth)
        self._activation(fields, options.fusedActivationFunction)
        return Layer("EB_OP_AVERAGE_POOL_2D", fields)

    def _softmax(self, op, inputs: list[int], output: int) -> Layer:
        fields = self._shapes(inputs, output)
        if (fields["_out_scale"], fields["_out_zp"]) != (1.0 / 256, -128):
            raise ConversionError("int8 SOFTMAX needs output scale 1/256 and zero point -128")
        multiplier, shift, diff_min = tflm_math.softmax_params(
            op.builtinOptions.beta, fields["_in_scale"]
        )
        fields.update(input_multiplier=multiplier, input_shift=shift, diff_min=diff_min)
        return Layer("EB_OP_SOFTMAX", fields)

    def _reshape(self, op, inputs: list[int], output: int) -> Layer:
        return Layer("EB_OP_RESHAPE", self._shapes(inputs, output))


def _tensor_bytes(reader: _Reader, index: int) -> int:
    return int(np.prod([int(d) for d in reader.tensor(index).shape]))


def plan_arena(lifetimes: dict[int, tuple[int, int, int]]) -> tuple[dict[int, int], int]:
    """Greedy first-fit by size: tensors whose lifetimes overlap never share bytes.
    lifetimes: tensor -> (bytes, first step, last step)."""
    placed: list[tuple[int, int, int, int]] = []  # offset, end, first, last
    offsets: dict[int, int] = {}
    for tensor, (size, first, last) in sorted(lifetimes.items(), key=lambda kv: -kv[1][0]):
        offset = 0
        for other_offset, other_end, other_first, other_last in sorted(placed):
            overlaps_in_time = not (last < other_first or other_last < first)
            if overlaps_in_time and offset < other_end and other_offset < offset + size:
                offset = -(-other_end // ARENA_ALIGN) * ARENA_ALIGN
        placed.append((offset, offset + size, first, last))
        offsets[tensor] = offset
    total = max((end for _, end, _, _ in placed), default=0)
    return offsets, -(-total // ARENA_ALIGN) * ARENA_ALIGN


def convert(data: bytes, model_id: str) -> CModel:
    reader = _Reader(data, model_id)
    rows = reader.convert()
    graph_input, graph_output = int(reader.graph.inputs[0]), int(reader.graph.outputs[0])
    reader.check_int8(graph_input)
    # The graph input stays untouched for the whole invocation, as in TFLM: MLPerf Tiny's
    # `infer N` loads once and runs N times on the same input.
    lifetimes: dict[int, list[int]] = {graph_input: [-1, len(rows)]}
    for step, (_, activations, output) in enumerate(rows):
        for tensor in activations:
            span = lifetimes.setdefault(tensor, [step, step])
            span[1] = max(span[1], step)
        lifetimes[output] = [step, step]
    lifetimes[graph_output][1] = len(rows)
    sized = {t: (_tensor_bytes(reader, t), first, last) for t, (first, last) in lifetimes.items()}
    offsets, arena = plan_arena(sized)
    for layer, activations, output in rows:
        layer.fields["input"] = offsets[activations[0]]
        if len(activations) > 1:
            layer.fields["input2"] = offsets[activations[1]]
        layer.fields["output"] = offsets[output]

    def endpoint(index: int) -> dict[str, object]:
        scale, zero = reader.scale_zp(index)
        return {
            "offset": offsets[index],
            "bytes": _tensor_bytes(reader, index),
            "scale": scale,
            "zero_point": zero,
        }

    tiny = TINY_MODELS.get(model_id)
    return CModel(
        model_id=model_id,
        sha256=hashlib.sha256(data).hexdigest(),
        layers=[layer for layer, _, _ in rows],
        arrays=reader.arrays,
        arena_bytes=arena,
        input=endpoint(graph_input),
        output=endpoint(graph_output),
        # Ids outside the MLPerf Tiny / edgebench set are plain int8 classifiers.
        wire_format=tiny.wire_format if tiny else "int8",
        anomaly=tiny.anomaly if tiny else False,
        # As the virtual MCU prints: 3 decimals (MLPerf Tiny's %.3f), 6 for eb-ad's small
        # reconstruction errors so their ranking (and the AUC) survives printing.
        result_decimals=6 if model_id == "eb-ad" else 3,
    )


def _c_array(ctype: str, name: str, values: np.ndarray) -> str:
    items = [str(int(v)) for v in values.ravel()]
    lines = [", ".join(items[i : i + 16]) for i in range(0, len(items), 16)]
    body = ",\n    ".join(lines)
    return f"static const {ctype} {name}[{len(items)}] = {{\n    {body}\n}};\n"


def _c_value(value: object) -> str:
    if isinstance(value, float):
        return f"{value!r}f"
    return str(value)


def render_c(model: CModel) -> str:
    parts = [
        f"/* Generated by edgebench.firmware.model_to_c from a model with sha256\n"
        f" * {model.sha256}. Do not edit: regenerate. */\n",
        '#include "eb_model.h"\n',
    ]
    parts += [_c_array(ctype, name, values) for ctype, name, values in model.arrays]
    rows = []
    for layer in model.layers:
        items = [f".op = {layer.op}"] + [
            f".{key} = {_c_value(value)}"
            for key, value in layer.fields.items()
            if not key.startswith("_")
        ]
        rows.append("    {" + ", ".join(items) + "}")
    parts.append(
        f"static const eb_layer_t eb_layers[{len(rows)}] = {{\n" + ",\n".join(rows) + "\n};\n"
    )

    def tensor(t: dict[str, object]) -> str:
        return "{" + ", ".join(f".{k} = {_c_value(v)}" for k, v in t.items()) + "}"

    parts.append(f"static int8_t eb_arena[{model.arena_bytes}];\n")
    parts.append(f"static uint8_t eb_wire[{model.wire_bytes}];\n")
    parts.append(
        "const eb_model_t eb_model = {\n"
        f'    .model_id = "{model.model_id}",\n'
        f'    .model_sha256 = "{model.sha256}",\n'
        f"    .layers = eb_layers,\n"
        f"    .layer_count = {len(rows)},\n"
        f"    .arena = eb_arena,\n"
        f"    .arena_bytes = {model.arena_bytes},\n"
        f"    .input = {tensor(model.input)},\n"
        f"    .output = {tensor(model.output)},\n"
        f"    .wire_format = {WIRE_FORMATS[model.wire_format]},\n"
        f"    .wire_buffer = eb_wire,\n"
        f"    .wire_bytes = {model.wire_bytes},\n"
        f"    .anomaly = {int(model.anomaly)},\n"
        f"    .result_decimals = {model.result_decimals},\n"
        "};\n"
    )
    return "\n".join(parts)


def write_model_source(model_path: Path, model_id: str, out: Path) -> CModel:
    model = convert(model_path.read_bytes(), model_id)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_c(model))
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m edgebench.firmware.model_to_c",
        description="Convert an int8 .tflite model into C sources for firmware_bridges/core.",
    )
    parser.add_argument("model", type=Path)
    parser.add_argument("--model-id", required=True, help="what profile%% reports, e.g. eb-kws")
    parser.add_argument("--out", type=Path, required=True, help="the .c file to write")
    args = parser.parse_args(argv)
    model = write_model_source(args.model, args.model_id, args.out)
    print(f"{args.out}: {len(model.layers)} layers, arena {model.arena_bytes} B")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The parameter arithmetic TFLM does in its kernels' Prepare step, reproduced bit for bit.

The C kernels in firmware_bridges/core receive these integers ready-made, so a board never
needs floating point; getting them identical to TFLM's (same double/float mix, same rounding)
is what makes the C outputs bit-exact with TFLM, the reference for device-side results.
"""

from __future__ import annotations

import math

import numpy as np

INT8_MIN, INT8_MAX = -128, 127


def tf_round(value: float) -> int:
    """std::round: halves away from zero (Python's round() rounds halves to even)."""
    return math.floor(abs(value) + 0.5) * (1 if value >= 0 else -1)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """(int32 multiplier, shift) with real = multiplier * 2^(shift - 31), as TFLM's
    QuantizeMultiplier (frexp, round half away, renormalise the 2^31 case, flush tiny)."""
    if real == 0.0:
        return 0, 0
    fraction, shift = math.frexp(real)
    fixed = tf_round(fraction * (1 << 31))
    if fixed == 1 << 31:
        fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return fixed, shift


def activation_range(activation: int, scale: float, zero_point: int) -> tuple[int, int]:
    """CalculateActivationRangeQuantized for int8 (NONE, RELU, RELU_N1_TO_1, RELU6)."""

    def quantize(value: float) -> int:
        return zero_point + tf_round(float(np.float32(value) / np.float32(scale)))

    if activation == 0:
        return INT8_MIN, INT8_MAX
    if activation == 1:
        return max(INT8_MIN, quantize(0.0)), INT8_MAX
    if activation == 2:
        return max(INT8_MIN, quantize(-1.0)), min(INT8_MAX, quantize(1.0))
    if activation == 3:
        return max(INT8_MIN, quantize(0.0)), min(INT8_MAX, quantize(6.0))
    raise ValueError(f"fused activation {activation} is not supported by the C kernels")


def conv_multipliers(
    input_scale: float,
    filter_scales: np.ndarray,
    output_scale: float,
    channels: int,
    per_channel: bool,
) -> tuple[list[int], list[int]]:
    """Multipliers as PopulateConvolutionQuantizationParams: the scales are widened to double
    before multiplying. One per output channel, or one in all for a per-tensor filter (also
    what FULLY_CONNECTED uses: a float product there loses a bit on MLPerf Tiny's ad01)."""
    scales = [float(s) for s in np.asarray(filter_scales, dtype=np.float32)]
    if len(scales) == 1 and per_channel:
        scales = scales * channels
    pairs = [
        quantize_multiplier(float(input_scale) * scale / float(output_scale)) for scale in scales
    ]
    return [p[0] for p in pairs], [p[1] for p in pairs]


ADD_LEFT_SHIFT = 20


def add_multipliers(
    scale1: float, scale2: float, output_scale: float
) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """Input and output multipliers of the int8 ADD kernel (inputs scaled to twice the larger
    input scale, then shifted left by 20 bits for headroom)."""
    twice_max = 2.0 * float(max(np.float32(scale1), np.float32(scale2)))
    first = quantize_multiplier(float(scale1) / twice_max)
    second = quantize_multiplier(float(scale2) / twice_max)
    output = quantize_multiplier(twice_max / ((1 << ADD_LEFT_SHIFT) * float(output_scale)))
    return first, second, output


SOFTMAX_DIFF_INTEGER_BITS = 5


def softmax_params(beta: float, input_scale: float) -> tuple[int, int, int]:
    """(input multiplier, left shift, diff_min) as PreprocessSoftmaxScaling and
    CalculateInputRadius compute them for the int8 softmax."""
    integer_bits = SOFTMAX_DIFF_INTEGER_BITS
    real = min(float(beta) * float(input_scale) * (1 << (31 - integer_bits)), float((1 << 31) - 1))
    multiplier, shift = quantize_multiplier(real)
    radius = math.floor(((1 << integer_bits) - 1) * (1 << (31 - integer_bits)) / float(1 << shift))
    return multiplier, shift, -radius


def padding(
    padding_kind: int, size: int, filter_size: int, stride: int, dilation: int
) -> tuple[int, int]:
    """(output size, leading padding) as ComputeOutSize and ComputePaddingWithOffset
    (padding_kind 0 = SAME, 1 = VALID, the .tflite enum)."""
    effective = (filter_size - 1) * dilation + 1
    if padding_kind == 0:
        out = (size + stride - 1) // stride
    elif padding_kind == 1:
        out = (size + stride - effective) // stride
    else:
        raise ValueError(f"padding {padding_kind} is not supported by the C kernels")
    total = max((out - 1) * stride + effective - size, 0)
    return out, total // 2

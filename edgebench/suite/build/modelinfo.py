"""Count parameters and multiply-accumulates of a model from its layer shapes.

Why count ourselves: MLPerf Tiny quotes MACs of the deployed int8 graph, and
Keras reports neither MACs nor the deployed parameter count (its
``count_params`` includes BatchNorm statistics, which the converter folds into
the preceding convolution's weights and bias). The rules used here:

- ``Conv2D``: ``out_h * out_w * out_c * k_h * k_w * in_c / groups`` MACs;
  ``k_h * k_w * in_c / groups * out_c`` weights plus ``out_c`` biases.
- ``DepthwiseConv2D``: ``out_h * out_w * in_c * mult * k_h * k_w`` MACs;
  ``k_h * k_w * in_c * mult`` weights plus ``in_c * mult`` biases.
- ``Dense``: ``in * out`` MACs per input row; ``in * out`` weights plus ``out``
  biases.
- A bias is counted even for ``use_bias=False`` layers, because the folded
  BatchNorm becomes that bias in the ``.tflite``. Pooling, additions,
  activations and softmax are not MACs and hold no parameters.
"""

from __future__ import annotations

import math
from typing import Any


def _shape(tensor: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in tensor.shape[1:])


def layer_cost(layer: Any) -> tuple[int, int]:
    """``(params, macs)`` of one Keras layer under the rules in the module docstring."""
    kind = type(layer).__name__
    if kind == "Conv2D":
        k_h, k_w, in_per_group, out_c = (int(d) for d in layer.kernel.shape)
        out_h, out_w, _ = _shape(layer.output)
        return k_h * k_w * in_per_group * out_c + out_c, out_h * out_w * out_c * k_h * k_w * (
            in_per_group
        )
    if kind == "DepthwiseConv2D":
        k_h, k_w, in_c, mult = (int(d) for d in layer.kernel.shape)
        out_h, out_w, _ = _shape(layer.output)
        return k_h * k_w * in_c * mult + in_c * mult, out_h * out_w * in_c * mult * k_h * k_w
    if kind == "Dense":
        n_in, n_out = (int(d) for d in layer.kernel.shape)
        rows = math.prod(_shape(layer.input)[:-1])
        return n_in * n_out + n_out, rows * n_in * n_out
    return 0, 0


def count(model: Any) -> tuple[int, int]:
    """``(params, macs)`` of a whole Keras model for one inference (batch 1)."""
    params = macs = 0
    for layer in model.layers:
        p, m = layer_cost(layer)
        params += p
        macs += m
    return params, macs

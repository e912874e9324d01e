"""Named building blocks shared by the convolutional topologies.

Why explicit names everywhere: Keras derives default layer names from global
counters (``conv2d_3``), and those names end up as tensor names in the
``.tflite``. Names that depend on how many layers were created earlier would
make the file bytes depend on build order; explicit names do not.
"""

from __future__ import annotations

from typing import Any

#: BatchNorm momentum. Lower than Keras' 0.99 because our training runs are
#: short: the moving statistics must have converged by the last epoch, or the
#: folded int8 model would not match the network that was trained.
BN_MOMENTUM = 0.9


def conv_bn(
    keras: Any,
    x: Any,
    filters: int,
    kernel: tuple[int, int],
    strides: int,
    name: str,
    *,
    relu: bool = True,
    l2: float = 1e-4,
) -> Any:
    """``Conv2D`` (same padding, no bias) + ``BatchNorm`` [+ ``ReLU``], named ``name_*``."""
    layers = keras.layers
    x = layers.Conv2D(
        filters,
        kernel,
        strides=strides,
        padding="same",
        use_bias=False,
        kernel_initializer="he_normal",
        kernel_regularizer=keras.regularizers.l2(l2) if l2 else None,
        name=f"{name}_conv",
    )(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    if relu:
        x = layers.ReLU(name=f"{name}_relu")(x)
    return x


def depthwise_separable(
    keras: Any, x: Any, filters: int, strides: int, name: str, *, l2: float = 1e-4
) -> Any:
    """Depthwise 3x3 + BN + ReLU, then pointwise 1x1 + BN + ReLU (MobileNet/DS-CNN block)."""
    layers = keras.layers
    x = layers.DepthwiseConv2D(
        (3, 3),
        strides=strides,
        padding="same",
        use_bias=False,
        depthwise_initializer="he_normal",
        depthwise_regularizer=keras.regularizers.l2(l2) if l2 else None,
        name=f"{name}_dw",
    )(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_dw_bn")(x)
    x = layers.ReLU(name=f"{name}_dw_relu")(x)
    return conv_bn(keras, x, filters, (1, 1), 1, f"{name}_pw", l2=l2)


def classifier_head(keras: Any, x: Any, classes: int, *, dropout: float = 0.0) -> Any:
    """Global average pool (as an explicit ``AveragePooling2D``), flatten, FC, softmax.

    An ``AveragePooling2D`` over the whole feature map converts to the
    ``AVERAGE_POOL_2D`` op that every int8 runtime has, as in MLPerf Tiny.
    """
    layers = keras.layers
    pool = (int(x.shape[1]), int(x.shape[2]))
    x = layers.AveragePooling2D(pool_size=pool, name="avg_pool")(x)
    x = layers.Flatten(name="flatten")(x)
    if dropout:
        x = layers.Dropout(dropout, name="head_dropout")(x)
    x = layers.Dense(classes, name="logits")(x)
    return layers.Softmax(name="softmax")(x)

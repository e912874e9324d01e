"""What every benchmark module provides, so the worker can build all four the same way.

Why a small protocol: the steps after "make data, make model, train" are
identical for every benchmark (convert, quantize the eval set, score, write,
describe), and keeping them out of the benchmark modules is what makes the four
models comparable. A benchmark module (``kws``, ``ic``, ``vww``, ``ad``)
exports one :class:`Benchmark` instance named ``BENCHMARK``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

Metric = Literal["top1", "auc"]


@dataclass(frozen=True)
class Split:
    """Float data of one benchmark, already preprocessed to the model's input scale.

    ``x_*`` are float32 with shape ``[N, *input_shape]``; ``y_*`` are int64
    labels (for ``ad`` the training labels are all 0 and the eval labels are
    0 normal / 1 anomaly). ``x_eval`` is what the fp32 model is scored on;
    the int8 eval set is ``x_eval`` quantized with the model's input scale.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_eval: np.ndarray
    y_eval: np.ndarray


@dataclass(frozen=True)
class Benchmark:
    """One bundled benchmark: its descriptive metadata plus the three build hooks.

    The hooks receive the TensorFlow/Keras modules from the worker instead of
    importing them, so importing a benchmark module never imports TensorFlow
    (and never before :func:`edgebench.suite.build.tfenv.import_tensorflow`).
    """

    name: str
    task: str
    topology: str
    input_shape: tuple[int, ...]
    classes: int
    metric: Metric
    seed: int
    synthetic: bool
    source: str
    preprocessing: str
    training: str
    calibration_size: int
    #: ``make_data(seed) -> Split``; pure numpy, deterministic for a seed.
    make_data: Callable[[int], Split]
    #: ``build_model(keras, batch_size) -> keras.Model`` with explicit layer names.
    build_model: Callable[[Any, int | None], Any]
    #: ``train(keras, model, split, seed) -> None``; trains ``model`` in place.
    train: Callable[[Any, Any, Split, int], None]

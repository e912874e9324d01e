"""Full-integer int8 conversion and the int8 <-> float mapping of tensors.

Why these exact converter settings: they are what MLPerf Tiny's reference
models use and what every int8 runtime we target (LiteRT, TFLM, CMSIS-NN)
supports: int8 weights and activations, int8 input and output tensors, and
only builtin int8 kernels (``TFLITE_BUILTINS_INT8`` makes conversion fail
rather than silently fall back to float ops). Calibration uses a fixed,
seeded subset of the *training* data, never the eval set.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

import numpy as np


def calibration_subset(x_train: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Pick ``size`` training samples for calibration with a seeded generator.

    The indices are sorted so the calibration order, and hence the converter's
    observed min/max sequence, is fixed by the seed alone.
    """
    rng = np.random.default_rng([seed, 7])
    idx = np.sort(rng.choice(len(x_train), size=min(size, len(x_train)), replace=False))
    return np.ascontiguousarray(x_train[idx], dtype=np.float32)


@contextlib.contextmanager
def _captured_fds() -> Iterator[None]:
    """Send fd-level stdout/stderr to a temp file; replay it only if the body raises.

    Why: the Keras export and the MLIR converter print pages of internal detail
    (captured tensor specs, quantizer settings) straight to the file
    descriptors, burying the build's own progress lines.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            sink.seek(0)
            sys.stderr.write(sink.read().decode(errors="replace"))
            raise
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def convert_int8(tf: Any, model: Any, calibration: np.ndarray) -> bytes:
    """Convert a batch-1 Keras model to a full-integer int8 ``.tflite`` flatbuffer."""

    def representative() -> Iterator[list[np.ndarray]]:
        for i in range(len(calibration)):
            yield [calibration[i : i + 1]]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    with _captured_fds():
        return bytes(converter.convert())


def quantize(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Map float values to int8 exactly as the model's input quantization does."""
    q = np.round(np.asarray(x, dtype=np.float64) / scale) + zero_point
    return np.clip(q, -128, 127).astype(np.int8)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Map int8 values back to float: ``scale * (q - zero_point)``."""
    return (np.asarray(q, dtype=np.float64) - zero_point) * scale

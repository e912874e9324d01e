"""Shared training loop pieces: compile, fit with a terse progress line, batch-1 copy.

Why a batch-1 copy: the deployed models have the batch fixed at 1
(``keras.Input(shape, batch_size=1)``), which keeps shape-computing ops such as
``SHAPE``/``STRIDED_SLICE``/``PACK`` out of the ``.tflite``. Training needs
bigger batches, so each benchmark builds the same topology twice (same explicit
layer names) and the trained weights are copied into the batch-1 model.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np


def log(name: str, message: str) -> None:
    """Print one progress line for benchmark ``name`` (flushed: we run in a subprocess)."""
    print(f"[{name}] {message}", flush=True)


def progress_callback(keras: Any, name: str, epochs: int, every: int) -> Any:
    """A Keras callback that logs loss/metric every ``every`` epochs and at the end."""

    class _Progress(keras.callbacks.Callback):
        def on_train_begin(self, logs: dict[str, float] | None = None) -> None:
            self._t0 = time.monotonic()

        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            done = epoch + 1
            if done % every and done != epochs:
                return
            items = ", ".join(f"{k} {v:.4f}" for k, v in sorted((logs or {}).items()))
            elapsed = time.monotonic() - self._t0
            log(name, f"  epoch {done}/{epochs}: {items} ({elapsed:.0f} s)")

    return _Progress()


def fit(
    keras: Any,
    name: str,
    model: Any,
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    every: int = 5,
    extra_callbacks: list[Any] | None = None,
) -> None:
    """``model.fit`` with Keras' seeded shuffling and our progress lines, no validation."""
    callbacks = [progress_callback(keras, name, epochs, every), *(extra_callbacks or [])]
    model.fit(
        x,
        y,
        epochs=epochs,
        batch_size=batch_size,
        shuffle=True,
        verbose=0,
        callbacks=callbacks,
    )
    sys.stdout.flush()


def cosine_schedule(keras: Any, base_lr: float, epochs: int) -> Any:
    """Per-epoch cosine learning-rate decay from ``base_lr`` to 2 % of it.

    Why: a short fixed budget of epochs ends in a well-settled minimum without
    a hand-tuned step schedule.
    """

    def lr(epoch: int, _current: float) -> float:
        progress = epoch / max(1, epochs - 1)
        return float(base_lr * (0.02 + 0.98 * 0.5 * (1 + np.cos(np.pi * progress))))

    return keras.callbacks.LearningRateScheduler(lr, verbose=0)


def deploy_copy(keras: Any, build_model: Any, trained: Any) -> Any:
    """Build the batch-1 variant of ``trained``'s topology and copy its weights in."""
    model = build_model(keras, 1)
    model.set_weights(trained.get_weights())
    return model

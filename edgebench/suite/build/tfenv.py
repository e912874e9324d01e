"""Deterministic TensorFlow set-up, done once at the start of every worker process.

Why: the committed ``.tflite`` files must be byte-identical when rebuilt. The
feasibility study found that any TensorFlow forward or training step makes the
bytes depend on the math backend (oneDNN on or off), and that thread
scheduling and unseeded random state are the other usual sources of drift. So
every knob that can change numerics is pinned here, *before* TensorFlow is
imported (``TF_ENABLE_ONEDNN_OPTS`` is only read at import time).
"""

from __future__ import annotations

import os
from types import ModuleType

#: Threads TensorFlow may use inside one op. Fixed (not "all cores") so that the
#: order of floating-point reductions, and hence the trained weights, does not
#: depend on the machine's core count.
TF_THREADS = 2

ENV: dict[str, str] = {
    "TF_ENABLE_ONEDNN_OPTS": "0",
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "TF_DETERMINISTIC_OPS": "1",
    "CUDA_VISIBLE_DEVICES": "-1",
    "PYTHONHASHSEED": "0",
}
"""Environment every build subprocess gets (the orchestrator passes it on, and
:func:`import_tensorflow` sets it again for a worker started by hand)."""


def import_tensorflow(seed: int) -> ModuleType:
    """Import TensorFlow with determinism switched on and all seeds set.

    Returns the ``tensorflow`` module. Must be the first TensorFlow import of
    the process, otherwise the environment variables come too late.
    """
    os.environ.update(ENV)
    import keras
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(TF_THREADS)
    tf.config.threading.set_inter_op_parallelism_threads(TF_THREADS)
    tf.config.experimental.enable_op_determinism()
    tf.get_logger().setLevel("ERROR")
    keras.utils.set_random_seed(seed)
    return tf

"""Reproducible build of the bundled "edgebench reference suite".

Run ``python -m edgebench.suite.build`` (with TensorFlow installed, see
``docs/benchmarks.md``) to regenerate, for each benchmark, the int8 ``.tflite``
model, the int8 eval set and the manifest entry that records their hashes, the
fp32 and int8 metrics and the quality target.

Why a package of small modules: each benchmark (``kws``, ``ic``, ``vww``,
``ad``) owns only its data and topology; the shared steps (deterministic
TensorFlow set-up, training, int8 conversion, scoring, the TFLM check, the
manifest) live once each, so all four models are built and judged the same way.

This ``__init__`` deliberately imports nothing heavy: the orchestrator
(``cli``) runs without TensorFlow and starts one fresh worker process per
benchmark, so Keras' global name counters and any TensorFlow state never
depend on which benchmarks were built before.
"""

BENCHMARKS: tuple[str, ...] = ("kws", "ic", "vww", "ad")
"""All benchmark names, in build order."""

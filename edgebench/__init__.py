"""edgebench: fair, reproducible benchmarks of int8 ML inference on edge and embedded devices."""

__version__ = "0.1.0"

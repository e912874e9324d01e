"""The TFLite interpreter behind both loops, with the least Python possible per inference.

Board images carry either ai_edge_litert (current) or tflite_runtime (older, needs numpy<2);
both expose the same Interpreter API, so one Engine serves both. The per-query path copies
one sample into the input tensor through a raw view of the tensor's memory (no interpreter
reference is held, so invoke()'s safety check still passes) and hands LoadGen the output
tensor's address directly, so nothing is allocated per query.
"""

from __future__ import annotations

import ctypes
import importlib
from typing import Callable, Dict, Sequence

import numpy as np

RUNTIMES = ("ai_edge_litert", "tflite_runtime")
DELEGATES = ("xnnpack", "none", "reference")

INSTALL_HINT = {
    "ai_edge_litert": "pip install ai-edge-litert",
    "tflite_runtime": 'pip install tflite-runtime "numpy<2"',
}


class RuntimeMissing(RuntimeError):
    """No TFLite runtime can be imported; the message carries the install command."""


class ModelError(ValueError):
    """The model cannot be benchmarked as it is (dynamic shapes, not a flatbuffer, ...)."""


def import_runtime(name: str = "auto"):
    """Return (module_name, version, interpreter_module) for the requested runtime."""
    candidates = RUNTIMES if name == "auto" else (name,)
    if name != "auto" and name not in RUNTIMES:
        raise RuntimeMissing(f"unknown runtime {name!r} (use auto, {', '.join(RUNTIMES)})")
    for candidate in candidates:
        try:
            module = importlib.import_module(candidate + ".interpreter")
        except ImportError:
            continue
        version = _runtime_version(candidate)
        return candidate, version, module
    wanted = candidates[0]
    raise RuntimeMissing(
        f"no TFLite runtime importable ({' or '.join(candidates)}); "
        f"install one with: {INSTALL_HINT[wanted]}"
    )


def _runtime_version(name: str) -> str:
    try:
        from importlib import metadata

        return metadata.version(name.replace("_", "-"))
    except Exception:
        module = importlib.import_module(name)
        return str(getattr(module, "__version__", "unknown"))


def _raw_view(address: int, nbytes: int, dtype: np.dtype, shape: Sequence[int]) -> np.ndarray:
    buffer = (ctypes.c_uint8 * nbytes).from_address(address)
    return np.frombuffer(buffer, dtype=dtype).reshape(shape)


class Engine:
    """One loaded model plus the samples LoadGen may ask for."""

    def __init__(
        self,
        model_path: str,
        runtime: str = "auto",
        delegate: str = "xnnpack",
        threads: int = 1,
    ) -> None:
        if delegate not in DELEGATES:
            raise ModelError(f"unknown delegate {delegate!r} (use one of {', '.join(DELEGATES)})")
        self.runtime_name, self.runtime_version, module = import_runtime(runtime)
        self.delegate = delegate
        self.threads = threads
        kwargs: Dict[str, object] = {"model_path": model_path, "num_threads": threads}
        resolver = getattr(module, "OpResolverType", None)
        if delegate != "xnnpack":
            if resolver is None:
                raise ModelError(f"runtime {self.runtime_name} cannot select delegate {delegate}")
            kwargs["experimental_op_resolver_type"] = (
                resolver.BUILTIN_REF
                if delegate == "reference"
                else resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
            )
        try:
            self.interpreter = module.Interpreter(**kwargs)
        except ValueError as error:
            raise ModelError(f"{model_path}: not a loadable TFLite model ({error})") from None
        inputs = self.interpreter.get_input_details()
        outputs = self.interpreter.get_output_details()
        for detail in list(inputs) + list(outputs):
            # A free batch dimension is how Keras exports; it runs as batch 1. Any other
            # free dimension leaves the input size undefined.
            signature = [int(d) for d in detail.get("shape_signature", detail["shape"])]
            if any(d < 0 for d in signature[1:]):
                raise ModelError(
                    f"{model_path}: tensor {detail['name']!r} has a dynamic shape "
                    f"{signature}; export the model with fixed shapes (batch 1)"
                )
        self.interpreter.allocate_tensors()
        self.input_details = inputs
        self.output_details = outputs
        self._inputs = [self._view(d) for d in inputs]
        self._outputs = [self._view(d) for d in outputs]
        self.output_nbytes = sum(v.nbytes for v in self._outputs)
        # LoadGen wants one contiguous response; a multi-output model gets its outputs
        # gathered into one buffer after each inference.
        self._gathered = (
            np.zeros(self.output_nbytes, dtype=np.uint8) if len(self._outputs) > 1 else None
        )
        first = self._outputs[0] if self._gathered is None else self._gathered
        self.output_address = first.ctypes.data
        self.sample_count = 0
        # The wrapper's invoke() first checks that no numpy array aliases the interpreter's
        # buffers (~0.2 us). Our raw views hold no such reference and tensors are never
        # resized, so the check guards nothing here; call the C++ Invoke directly. Holding
        # this bound method makes the wrapper's own invoke() refuse to run, so use only this.
        wrapped = getattr(self.interpreter, "_interpreter", None)
        self.invoke = getattr(wrapped, "Invoke", None) or self.interpreter.invoke

    def _view(self, detail: dict) -> np.ndarray:
        view = self.interpreter.tensor(detail["index"])()
        address, nbytes = view.ctypes.data, view.nbytes
        dtype, shape = view.dtype, view.shape
        del view
        return _raw_view(address, nbytes, dtype, shape)

    def describe(self) -> Dict[str, object]:
        def spec(detail: dict) -> Dict[str, object]:
            scale, zero_point = detail.get("quantization", (0.0, 0))
            return {
                "name": detail["name"],
                "shape": [int(d) for d in detail["shape"]],
                "dtype": np.dtype(detail["dtype"]).name,
                "scale": float(scale),
                "zero_point": int(zero_point),
            }

        return {
            "runtime": self.runtime_name,
            "runtime_version": self.runtime_version,
            "delegate": self.delegate,
            "threads": self.threads,
            "inputs": [spec(d) for d in self.input_details],
            "outputs": [spec(d) for d in self.output_details],
        }

    def set_samples(self, samples: Sequence[np.ndarray]) -> None:
        """Samples are one array per model input, each [N, *input_shape without batch]."""
        if len(samples) != len(self._inputs):
            raise ModelError(
                f"model has {len(self._inputs)} inputs but the data has {len(samples)} arrays"
            )
        per_input = []
        for array, view in zip(samples, self._inputs):
            if array.size // max(len(array), 1) != view.size:
                raise ModelError(
                    f"samples of shape {list(array.shape[1:])} do not fit input {list(view.shape)}"
                )
            flat = np.ascontiguousarray(array, dtype=view.dtype).reshape(len(array), -1)
            # Byte memoryviews copy ~3x faster than numpy slice assignment for small tensors.
            per_input.append([memoryview(row.view(np.uint8)) for row in flat])
        self._sample_bytes = per_input
        self.sample_count = len(per_input[0])
        self.infer = self._make_infer()

    def _make_infer(self) -> Callable[[int], None]:
        """infer(index): copy sample `index` into the input tensor(s) and run the model once.

        Built as a closure over locals: it is the body of every timed query.
        """
        invoke = self.invoke
        targets = [memoryview(v.reshape(-1).view(np.uint8)) for v in self._inputs]
        sources = self._sample_bytes
        gathered = self._gathered
        if len(targets) == 1 and gathered is None:
            target, source = targets[0], sources[0]

            def infer(index: int) -> None:
                target[:] = source[index]
                invoke()

            return infer
        pairs = list(zip(targets, sources))
        output_bytes = self.output_bytes

        def infer_general(index: int) -> None:
            for target, source in pairs:
                target[:] = source[index]
            invoke()
            if gathered is not None:
                gathered[...] = np.frombuffer(output_bytes(), dtype=np.uint8)

        return infer_general

    def infer(self, index: int) -> None:
        raise ModelError("set_samples() must be called before infer()")

    def output_bytes(self) -> bytes:
        """The current output tensor(s) as raw bytes, outputs concatenated in order."""
        return b"".join(v.tobytes() for v in self._outputs)

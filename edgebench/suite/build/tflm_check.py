"""Check that a model runs under TensorFlow Lite Micro and matches LiteRT bit for bit.

Why a separate process: TFLM aborts the whole process (SIGABRT, no Python
exception) on degenerate quantization parameters, e.g. a softmax input scale
too small for its fixed-point multiplier. The orchestrator runs

    python -m edgebench.suite.build.tflm_check MODEL EVAL_NPZ --samples N

and treats a non-zero exit or a missing result line as "does not run". On
success the last stdout line is a JSON object comparing TFLM's int8 outputs on
the first N eval samples with LiteRT's no-delegate builtin kernels
(``matches_litert_no_delegate``, ``max_abs_diff`` in LSB, ``differing_values``)
and with LiteRT's reference kernels (``matches_litert_reference_kernels``),
which are the ones TFLM's kernels mirror.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from edgebench.suite.build import litert


def run_tflm(model: Path, x_q: np.ndarray) -> np.ndarray:
    """Outputs of the TFLM interpreter for each int8 sample (no batch axis) of ``x_q``."""
    from tflite_micro import runtime

    interpreter = runtime.Interpreter.from_file(str(model))
    outputs = []
    for sample in x_q:
        interpreter.set_input(sample[None, ...], 0)
        interpreter.invoke()
        outputs.append(np.array(interpreter.get_output(0))[0])
    return np.stack(outputs)


def _compare(micro: np.ndarray, other: np.ndarray) -> tuple[bool, int, int]:
    """(identical, max |difference| in LSB, number of differing values)."""
    diff = np.abs(micro.astype(np.int32) - other.astype(np.int32))
    return bool(np.all(diff == 0)), int(diff.max()), int(np.count_nonzero(diff))


def check(model: Path, eval_npz: Path, samples: int) -> dict[str, Any]:
    """Run TFLM and LiteRT on the first ``samples`` eval inputs; compare the int8 outputs."""
    with np.load(eval_npz) as data:
        x_q = data["x"][:samples]
    micro = run_tflm(model, x_q)
    same, max_diff, differing = _compare(micro, litert.run_all(model, x_q, "builtin"))
    same_ref, max_diff_ref, _ = _compare(micro, litert.run_all(model, x_q, "reference"))
    return {
        "runs": True,
        "samples": len(x_q),
        "output_values": int(micro.size),
        "matches_litert_no_delegate": same,
        "max_abs_diff": max_diff,
        "differing_values": differing,
        "matches_litert_reference_kernels": same_ref,
        "max_abs_diff_reference_kernels": max_diff_ref,
    }


def main(argv: list[str] | None = None) -> int:
    """CLI (see the module docstring); prints the result as the last stdout line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model", type=Path)
    parser.add_argument("eval_npz", type=Path)
    parser.add_argument("--samples", type=int, default=16)
    args = parser.parse_args(argv)
    print(json.dumps(check(args.model, args.eval_npz, args.samples), sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""TFLM (what serial DUTs and the virtual MCU run) against LiteRT, on the bundled eval sets.

MLPerf Tiny's reference firmware runs TFLM, so a serial run's outputs are compared with
TFLM's; Linux devices run LiteRT. This prints how far apart the two are per benchmark: the
share of samples where the predicted class agrees (top-1 agreement; for the autoencoder,
where the anomaly-score ranking matters, the AUC each gives), and the largest difference in
output LSBs. Usage: python benchmarks/serial_reference_agreement.py [--limit N]
"""

from __future__ import annotations

import argparse

import numpy as np
from tflite_micro import runtime

from edgebench.agent.runtime import Engine
from edgebench.metrics.accuracy import reconstruction_scores, roc_auc
from edgebench.suite.benchmarks import bundled_benchmarks


def tflm_outputs(model: str, x: np.ndarray) -> np.ndarray:
    interpreter = runtime.Interpreter.from_file(model)
    outputs = []
    for sample in x:
        interpreter.set_input(sample[None], 0)
        interpreter.invoke()
        outputs.append(np.array(interpreter.get_output(0)).reshape(-1))
    return np.stack(outputs)


def litert_outputs(model: str, x: np.ndarray, delegate: str) -> np.ndarray:
    engine = Engine(model, delegate=delegate)
    engine.set_samples([x])
    outputs = []
    for index in range(len(x)):
        engine.infer(index)
        outputs.append(np.frombuffer(engine.output_bytes(), dtype=np.int8).copy())
    return np.stack(outputs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, help="first N samples of each set (default: all)")
    args = parser.parse_args()
    print("benchmark  samples  vs LiteRT  top-1 agreement  max |diff| (LSB)  differing samples")
    for name, bench in bundled_benchmarks().items():
        with np.load(bench.dataset_path) as data:
            x, y = data["x"][: args.limit], data["y"][: args.limit]
        reference = tflm_outputs(str(bench.model_path), x).astype(np.int16)
        for delegate in ("none", "xnnpack"):
            other = litert_outputs(str(bench.model_path), x, delegate).astype(np.int16)
            diff = np.abs(reference - other)
            if bench.metric == "auc":
                quant = [(bench.input.scale, bench.input.zero_point)]
                quant.append((bench.output.scale, bench.output.zero_point))
                auc = [roc_auc(reconstruction_scores(x, o, *quant), y) for o in (reference, other)]
                agreement = f"AUC {auc[0]:.4f} vs {auc[1]:.4f}"
            else:
                same = np.mean(np.argmax(reference, 1) == np.argmax(other, 1))
                agreement = f"{same * 100:.2f} %"
            print(
                f"{name:<10} {len(x):>7}  {delegate:<9}  {agreement:<15}  {int(diff.max()):>16}"
                f"  {int(np.any(diff > 0, axis=1).sum()):>17}"
            )


if __name__ == "__main__":
    main()

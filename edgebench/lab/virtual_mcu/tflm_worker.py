"""The TFLM worker: runs one model for the virtual MCU, in its own process.

TFLM checks some model properties with asserts that abort the whole process (a model with
degenerate quantization does it while allocating tensors), so it never runs inside the
virtual MCU itself. Requests and replies are pickled over stdin/stdout; C code printing to
stdout would corrupt that stream, so the protocol gets a private copy of fd 1 and fd 1 is
pointed at stderr. The worker exits when its parent closes stdin.

Request {"op": "load", "tensor": int8 array} sets the input; {"op": "invoke", "count": n}
runs n inferences and replies {"elapsed_ns": loop time, "output": output tensor}.
"""

from __future__ import annotations

import os
import pickle
import sys
import time

import numpy as np


def serve(model_path: str) -> None:
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    from tflite_micro import runtime

    interpreter = runtime.Interpreter.from_file(model_path)
    pickle.dump({"ready": True}, replies)
    replies.flush()
    requests = sys.stdin.buffer
    while True:
        try:
            request = pickle.load(requests)
        except EOFError:
            return
        if request["op"] == "load":
            interpreter.set_input(np.asarray(request["tensor"]), 0)
            reply: dict = {}
        else:
            start = time.perf_counter_ns()
            for _ in range(request["count"]):
                interpreter.invoke()
            elapsed = time.perf_counter_ns() - start
            reply = {"elapsed_ns": elapsed, "output": np.array(interpreter.get_output(0))}
        pickle.dump(reply, replies)
        replies.flush()


if __name__ == "__main__":
    serve(sys.argv[1])

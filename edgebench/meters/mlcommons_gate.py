"""The workload command edgebench gives MLCommons' power client: a gate held open by the run.

The client owns the measurement loop: it starts a phase on the power server, runs its `-w`
command in a shell, and stops the phase when the command exits. edgebench keeps its own run
loop (its devices, its results directory) by making that command this gate: it connects back
to the waiting edgebench meter (`mlcommons_power`), which then runs the workload on the
device and, once the run's LoadGen logs are in the client's `-L` folder, answers `done`; the
gate exits 0 and the client ends the phase. Any other answer, or a lost link, exits 1 with
the reason on stderr, which the client logs and turns into a failed session.

    python -m edgebench.meters.mlcommons_gate HOST:PORT TOKEN
"""

from __future__ import annotations

import json
import os
import socket
import sys

#: How long the gate tries to reach the waiting meter; the meter is listening before the
#: client starts, so this only bounds a meter that died.
CONNECT_TIMEOUT_S = 30.0
DONE = "done"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or ":" not in args[0]:
        print("usage: python -m edgebench.meters.mlcommons_gate HOST:PORT TOKEN", file=sys.stderr)
        return 2
    host, port = args[0].rsplit(":", 1)
    hello = {"token": args[1], "pid": os.getpid()}
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S) as link:
            link.settimeout(None)  # the run lasts as long as it lasts
            link.sendall(json.dumps(hello).encode() + b"\n")
            reply = link.makefile("r", encoding="utf-8").readline().strip()
    except OSError as error:
        print(
            f"edgebench gate: cannot reach the edgebench run at {args[0]}: {error}", file=sys.stderr
        )
        return 1
    if reply == DONE:
        return 0
    print(f"edgebench gate: {reply or 'the edgebench run went away mid-phase'}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())

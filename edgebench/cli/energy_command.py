"""`edgebench energy RUN`: recompute energy.json (and power.png) from a run's saved trace,
e.g. with another integration method or window policy; the trace itself is never changed."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..metrics.energy_integrate import METHODS
from ..runner.energy_step import ENERGY_FILE, WINDOW_POLICIES, compute_run_energy, load_inputs
from .render import print_json, stdout


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", type=Path, help="results/<run-id> of a run made with --meter")
    parser.add_argument(
        "--method",
        default="auto",
        choices=("auto", *METHODS),
        help="auto: trapezoid for power samples, sum for energy samples; mlperf-power: "
        "MLPerf Power's mean of positive watts x duration",
    )
    parser.add_argument(
        "--window",
        default="auto",
        choices=WINDOW_POLICIES,
        help="queries: first issue to last completion via clock.json; marks: MLPerf Tiny's "
        "last two timestamp marks per window; auto: marks for serial runs, else queries",
    )
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(handler=energy_command)


def energy_command(args: argparse.Namespace) -> int:
    inputs = load_inputs(args.run)
    energy = compute_run_energy(args.run, inputs, args.method, args.window)
    if args.json:
        print_json(energy)
        return 0 if energy.get("valid") else 1
    per = energy.get("energy_per_inference_j")
    bound = energy.get("energy_per_inference_uncertainty_j")
    lines = [f"{args.run / ENERGY_FILE} rewritten ({energy.get('label', 'no result')})"]
    if energy.get("method"):
        lines.append(f"  method {energy['method']}, timing tier {energy.get('tier')}")
    if per is not None:
        lines.append(f"  energy per inference {per * 1e6:.6g} uJ +- {(bound or 0) * 1e6:.3g} uJ")
    for key, label in (("average_power_w", "average power"), ("idle_power_w", "idle power")):
        if energy.get(key) is not None:
            lines.append(f"  {label} {energy[key]:.6g} W")
    verdict = "VALID" if energy.get("valid") else "INVALID: " + "; ".join(energy["reasons"])
    lines.append(f"  {verdict}")
    for line in lines:
        stdout.print(line, highlight=False, markup=False, soft_wrap=True)
    return 0 if energy.get("valid") else 1

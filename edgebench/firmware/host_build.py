"""Build firmware_bridges code for the host with the system C compiler.

The same portable core that runs on a microcontroller is compiled here so the kernels and the
command handling can be checked against TFLM and the host transport without a board.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from .model_to_c import CModel, write_model_source

FIRMWARE_ROOT = Path(__file__).resolve().parents[2] / "firmware_bridges"
CORE = FIRMWARE_ROOT / "core"
CFLAGS = ("-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic")


class BuildError(RuntimeError):
    """The C build failed or no compiler is installed; the message says which."""


def compiler() -> str:
    for name in ("cc", "gcc", "clang"):
        path = shutil.which(name)
        if path:
            return path
    raise BuildError("no C compiler found; install gcc (apt-get install gcc)")


def core_sources() -> list[Path]:
    return sorted(CORE.glob("*.c"))


def build_host_program(
    model: Path, model_id: str, main_sources: list[Path], out_dir: Path, name: str
) -> tuple[Path, CModel]:
    """Convert `model`, compile it with the core and `main_sources`; returns the executable."""
    out_dir.mkdir(parents=True, exist_ok=True)
    converted = write_model_source(model, model_id, out_dir / "model_data.c")
    executable = out_dir / name
    command = [
        compiler(),
        *CFLAGS,
        f"-I{CORE}",
        *map(str, core_sources()),
        str(out_dir / "model_data.c"),
        *map(str, main_sources),
        "-o",
        str(executable),
    ]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise BuildError(f"C build of {name} failed: {done.stderr.strip().splitlines()[0]}")
    return executable, converted

"""Build firmware_bridges code for the host with the system C compiler.

The same portable core that runs on a microcontroller is compiled here so the kernels and the
command handling can be checked against TFLM and the host transport without a board.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from .. import __version__
from .model_to_c import CModel, write_model_source

FIRMWARE_ROOT = Path(__file__).resolve().parents[2] / "firmware_bridges"
CORE = FIRMWARE_ROOT / "core"
POSIX_PORT = FIRMWARE_ROOT / "ports" / "posix"
CACHE_ENV = "EDGEBENCH_CACHE_DIR"
# No fused multiply-add: float results must round like the reference firmware's.
CFLAGS = ("-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic", "-ffp-contract=off")


class BuildError(RuntimeError):
    """The C build failed or no compiler is installed; the message says which."""


def compiler() -> str:
    for name in ("cc", "gcc", "clang"):
        path = shutil.which(name)
        if path:
            return path
    raise BuildError("no C compiler found; install gcc (apt-get install gcc)")


# The model runner alone (no command handling, no port): what a kernel check links.
KERNEL_SOURCES = ("eb_model.c", "eb_kernels.c")


def core_sources(kernels_only: bool = False) -> list[Path]:
    if kernels_only:
        return [CORE / name for name in KERNEL_SOURCES]
    return sorted(CORE.glob("*.c"))


def build_host_program(
    model: Path,
    model_id: str,
    main_sources: list[Path],
    out_dir: Path,
    name: str,
    build_id: str = "host",
    kernels_only: bool = False,
) -> tuple[Path, CModel]:
    """Convert `model`, compile it with the core (or only its kernels) and `main_sources`;
    returns the executable."""
    out_dir.mkdir(parents=True, exist_ok=True)
    converted = write_model_source(model, model_id, out_dir / "model_data.c")
    executable = out_dir / name
    command = [
        compiler(),
        *CFLAGS,
        f'-DEB_BUILD_ID="{build_id}"',
        f"-I{CORE}",
        *map(str, core_sources(kernels_only)),
        str(out_dir / "model_data.c"),
        *map(str, main_sources),
        "-o",
        str(executable),
    ]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise BuildError(f"C build of {name} failed: {done.stderr.strip().splitlines()[0]}")
    return executable, converted


def _sources_digest(model: Path, model_id: str) -> str:
    digest = hashlib.sha256(f"{__version__}\0{model_id}\0".encode())
    digest.update(model.read_bytes())
    for source in [*core_sources(), *sorted(CORE.glob("*.h")), *sorted(POSIX_PORT.glob("*.c"))]:
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()[:16]


def posix_bridge(model: Path, model_id: str) -> Path:
    """The POSIX port built for `model` (cached by the hash of everything that goes in, so a
    second run starts at once and a changed model or source rebuilds)."""
    digest = _sources_digest(model, model_id)
    root = os.environ.get(CACHE_ENV)
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "edgebench"
    out_dir = base / "firmware" / f"posix-{model_id}-{digest}"
    executable = out_dir / "eb-posix-bridge"
    if not executable.is_file():
        build_host_program(
            model, model_id, sorted(POSIX_PORT.glob("*.c")), out_dir, executable.name, digest
        )
    return executable

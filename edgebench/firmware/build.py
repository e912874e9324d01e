"""Compiling firmware_bridges code: the portable core, a converted model and one port.

Builds are cached by the hash of everything that goes into them (sources, model, model id,
toolchain flags, edgebench version), so a second run starts at once and any change rebuilds.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from .. import __version__
from .model_to_c import CModel, convert, render_c, write_model_source

FIRMWARE_ROOT = Path(__file__).resolve().parents[1] / "firmware_bridges"
CORE = FIRMWARE_ROOT / "core"
PORTS = FIRMWARE_ROOT / "ports"
CACHE_ENV = "EDGEBENCH_CACHE_DIR"
# The model runner alone (no command handling, no port): what a kernel check links.
KERNEL_SOURCES = ("eb_model.c", "eb_kernels.c")
# No fused multiply-add: float results must round like the reference firmware's.
COMMON_FLAGS = ("-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-ffp-contract=off")


class BuildError(RuntimeError):
    """The C build failed or its toolchain is missing; the message says which and the fix."""


def find_tool(names: Sequence[str], install_hint: str) -> str:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    raise BuildError(f"{names[0]} not found; install it ({install_hint})")


def core_sources(kernels_only: bool = False) -> list[Path]:
    if kernels_only:
        return [CORE / name for name in KERNEL_SOURCES]
    return sorted(CORE.glob("*.c"))


def compile_program(
    compiler: str, flags: Sequence[str], sources: Sequence[Path], output: Path
) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f"{output.name}.{os.getpid()}.partial")
    command = [compiler, *flags, f"-I{CORE}", *map(str, sources), "-o", str(partial)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or ["(no compiler output)"]
        first = next((line for line in lines if "error" in line), lines[0])
        raise BuildError(f"C build of {output.name} failed: {first}")
    os.replace(partial, output)  # never leave a half-written image where a cached one goes


def build_with_model(
    model: Path,
    model_id: str,
    compiler: str,
    flags: Sequence[str],
    port_sources: Sequence[Path],
    out_dir: Path,
    name: str,
    kernels_only: bool = False,
) -> tuple[Path, CModel]:
    """Convert `model` into out_dir/model_data.c and link it with the core and a port."""
    converted = write_model_source(model, model_id, out_dir / "model_data.c")
    output = out_dir / name
    sources = [*core_sources(kernels_only), out_dir / "model_data.c", *port_sources]
    compile_program(compiler, flags, sources, output)
    return output, converted


def build_key(model_id: str, model_source: str, *parts: str, files: Sequence[Path] = ()) -> str:
    """A build's identity: the generated model source (so a converter change counts too),
    what else decides the build (flags, a vendor command), the files compiled, and the
    edgebench version. Also the build id the image reports through eb-info."""
    digest = hashlib.sha256("\0".join([__version__, model_id, *parts, ""]).encode())
    digest.update(model_source.encode())
    for source in files:
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()[:16]


def write_source(out_dir: Path, model_source: str) -> Path:
    """Put an already rendered model source where a build reads it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "model_data.c"
    path.write_text(model_source)
    return path


def cached_image(
    prefix: str,
    model: Path,
    model_id: str,
    port_dirs: Sequence[Path],
    flags: Sequence[str],
    image_name: str,
    compiler: Callable[[], str],
) -> Path:
    """The image for this model and port (its own folder, then any it shares, such as
    ports/cortex-m), built once per distinct build key."""
    model_source = render_c(convert(model.read_bytes(), model_id))
    files = sorted(
        (p for p in [*CORE.iterdir(), *(f for d in port_dirs for f in d.iterdir())] if p.is_file()),
        key=lambda path: (path.name, str(path)),
    )
    key = build_key(model_id, model_source, " ".join(flags), files=files)
    out_dir = cache_root() / f"{prefix}-{model_id}-{key}"
    image = out_dir / image_name
    if not image.is_file():
        sources = [*core_sources(), write_source(out_dir, model_source)]
        sources += sorted(path for d in port_dirs for path in d.glob("*.c"))
        includes = [f"-I{d}" for d in port_dirs]
        compile_program(compiler(), (*flags, *includes, f'-DEB_BUILD_ID="{key}"'), sources, image)
    return image


def cache_root() -> Path:
    root = os.environ.get(CACHE_ENV)
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "edgebench"
    return base / "firmware"

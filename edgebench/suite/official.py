"""The official MLPerf Tiny benchmarks, run from a user's own copy of the models and data.

MLCommons may not redistribute the MLPerf Tiny evaluation files, so edgebench cannot bundle
them: users who obtained them from the working group point `--data-dir` at the folder the
MLPerf Tiny runners read (`DIR/<id>/y_labels.csv` with the sample files beside it). This
module turns that folder into an ordinary `Benchmark`: it finds the official `.tflite` model,
applies the exact conversion the MLPerf Tiny reference firmware applies in `th_load_tensor`,
and caches the result as the `.npz` every other part of edgebench already reads.

Only the official models (checked by sha256) make a closed-division benchmark; anything else
belongs in the open division, where `--model` already handles it.
"""

from __future__ import annotations

import csv
import hashlib
import os
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..agent.runtime import Engine
from .benchmarks import Benchmark, BenchmarkError, TensorSpec, sha256_file

LABELS_FILE = "y_labels.csv"
SOURCE = "MLPerf Tiny (official model and data)"
SCENARIOS = ("SingleStream", "MultiStream", "Server", "Offline")
MAX_PERFORMANCE_SAMPLES = 1024
CACHE_ENV = "EDGEBENCH_CACHE_DIR"
# Bump when the conversion changes, so caches written by an older edgebench are not reused.
CACHE_FORMAT = "edgebench.mlperf-tiny/2"
FLOAT32_BYTES = 4


@dataclass(frozen=True)
class OfficialSpec:
    """One official MLPerf Tiny benchmark: what the model is and how its files look."""

    id: str
    task: str
    model_names: tuple[str, ...]
    model_sha256: str
    sample_format: str  # "int8" | "uint8" | "float32le"
    sample_shape: tuple[int, ...]  # model input without the batch dimension
    sample_bytes: int  # one file (kws, ic, vww) or one window (ad)
    num_classes: int
    metric: str  # "top1" | "auc"
    target: float
    stride_bytes: int = 0  # ad only: the window step y_labels.csv states

    @property
    def windowed(self) -> bool:
        return self.sample_format == "float32le"


OFFICIAL: dict[str, OfficialSpec] = {
    spec.id: spec
    for spec in (
        OfficialSpec(
            id="kws01",
            task="keyword spotting, 12 classes (Speech Commands v2, DS-CNN)",
            model_names=("kws_ref_model.tflite",),
            model_sha256="aeea436800704fce17b17292e4412630ad856e9d777c044c64ef748a880bd0ae",
            sample_format="int8",
            sample_shape=(49, 10, 1),
            sample_bytes=490,
            num_classes=12,
            metric="top1",
            target=0.90,
        ),
        OfficialSpec(
            id="ic01",
            task="image classification, 10 classes (CIFAR-10, ResNet-8)",
            model_names=("pretrainedResnet_quant.tflite",),
            model_sha256="3c002613d1b2475eb51dd78dfb85a546c8ae658dee71cf6ade43b022fe205415",
            sample_format="uint8",
            sample_shape=(32, 32, 3),
            sample_bytes=3072,
            num_classes=10,
            metric="top1",
            target=0.85,
        ),
        OfficialSpec(
            id="vww01",
            task="visual wake words, person / no person (COCO 2014, MobileNetV1 0.25)",
            model_names=("vww_96_int8.tflite",),
            model_sha256="597a384c8c2c8a1276f04702f25013b7838f2f814f1ca7c174d295b73e3d6b7b",
            sample_format="uint8",
            sample_shape=(96, 96, 3),
            sample_bytes=27648,
            num_classes=2,
            metric="top1",
            target=0.80,
        ),
        OfficialSpec(
            id="ad01",
            task="anomaly detection, machine sound (ToyADMOS ToyCar, FC autoencoder)",
            model_names=("ad01_int8.tflite",),
            model_sha256="87cf24194ef93d1d9b11a591d805526b98008e351655d29883c825c9c106ba24",
            sample_format="float32le",
            sample_shape=(640,),
            sample_bytes=2560,
            num_classes=2,
            metric="auc",
            target=0.85,
            stride_bytes=512,
        ),
    )
}
OFFICIAL_IDS: tuple[str, ...] = tuple(OFFICIAL)


@dataclass(frozen=True)
class LabelRow:
    """One line of y_labels.csv; window columns are set for ad01 only."""

    file: str
    num_classes: int
    label: int
    window_bytes: int = 0
    stride_bytes: int = 0


# --- finding things -----------------------------------------------------------------------


def official_spec(name: str) -> OfficialSpec:
    if name not in OFFICIAL:
        raise BenchmarkError(
            f"unknown MLPerf Tiny benchmark {name!r}; known: {', '.join(OFFICIAL_IDS)}"
        )
    return OFFICIAL[name]


def labels_path(spec: OfficialSpec, data_dir: Path) -> Path:
    """`DIR/<id>/y_labels.csv`, or `DIR/y_labels.csv` when DIR is itself the `<id>` folder.

    The second form forgives pointing --data-dir one level too deep, but only when the
    folder's name says which benchmark it holds, so kws labels are never read as ic's.
    """
    nested = data_dir / spec.id / LABELS_FILE
    if nested.is_file():
        return nested
    direct = data_dir / LABELS_FILE
    if data_dir.name == spec.id and direct.is_file():
        return direct
    raise BenchmarkError(
        f"{spec.id}: no {LABELS_FILE} in {data_dir / spec.id}; copy the official MLPerf Tiny "
        f"{spec.id} evaluation files (y_labels.csv and its sample files) into that folder"
    )


def official_benchmarks_in(data_dir: Path) -> tuple[str, ...]:
    """Official ids whose y_labels.csv the data dir holds (models are not checked here)."""
    found = []
    for spec in OFFICIAL.values():
        try:
            labels_path(spec, data_dir)
        except BenchmarkError:
            continue
        found.append(spec.id)
    return tuple(found)


def _model_dirs(spec: OfficialSpec, data_dir: Path, labels: Path) -> list[Path]:
    dirs = [labels.parent, data_dir / spec.id, data_dir]
    unique: list[Path] = []
    for folder in dirs:
        if folder.is_dir() and folder.resolve() not in {d.resolve() for d in unique}:
            unique.append(folder)
    return unique


def find_model(spec: OfficialSpec, folders: Sequence[Path]) -> Path:
    """The official model: by its known file name, else any `.tflite` with its sha256.

    A file carrying the official name but other bytes is refused rather than skipped:
    a silently re-quantized model would otherwise be reported as a closed-division result.
    """
    misnamed: list[tuple[Path, str]] = []
    for folder in folders:
        for name in spec.model_names:
            path = folder / name
            if path.is_file():
                digest = sha256_file(path)
                if digest == spec.model_sha256:
                    return path
                misnamed.append((path, digest))
    for folder in folders:
        for path in sorted(folder.glob("*.tflite")):
            if path.name not in spec.model_names and sha256_file(path) == spec.model_sha256:
                return path
    if misnamed:
        path, digest = misnamed[0]
        raise BenchmarkError(
            f"{spec.id}: model {path} has sha256 {digest[:16]}..., which differs from the "
            f"official {spec.model_sha256[:16]}...; pass it with --model for the open division"
        )
    where = ", ".join(str(f) for f in folders) or "(no such folder)"
    raise BenchmarkError(
        f"{spec.id}: no official model found in {where}; looked for "
        f"{' or '.join(spec.model_names)} and any .tflite with sha256 {spec.model_sha256}"
    )


# --- y_labels.csv -------------------------------------------------------------------------


def read_labels(spec: OfficialSpec, path: Path) -> list[LabelRow]:
    """Parse y_labels.csv as the MLPerf Tiny runner does, refusing lines it would misread."""
    rows = []
    with open(path, newline="") as handle:
        for number, fields in enumerate(csv.reader(handle), start=1):
            fields = [f.strip() for f in fields]
            if not any(fields):
                continue
            rows.append(_parse_row(spec, path, number, fields))
    if not rows:
        raise BenchmarkError(f"{spec.id}: {path} lists no sample files")
    return rows


def _parse_row(spec: OfficialSpec, path: Path, number: int, fields: list[str]) -> LabelRow:
    wanted = 5 if spec.windowed else 3
    layout = "file,classes,label" + (",window_bytes,stride_bytes" if spec.windowed else "")
    if len(fields) < wanted:
        raise BenchmarkError(
            f"{spec.id}: {path} line {number} has {len(fields)} columns, expected {layout}"
        )
    try:
        numbers = [int(f) for f in fields[1:wanted]]
    except ValueError:
        raise BenchmarkError(
            f"{spec.id}: {path} line {number}: expected integers after the file name ({layout})"
        ) from None
    row = LabelRow(fields[0], *numbers)
    if row.num_classes != spec.num_classes or not 0 <= row.label < spec.num_classes:
        raise BenchmarkError(
            f"{spec.id}: {path} line {number}: class count {row.num_classes} / label "
            f"{row.label}, but {spec.id} has {spec.num_classes} classes (labels 0.."
            f"{spec.num_classes - 1}); is this another benchmark's y_labels.csv?"
        )
    if spec.windowed:
        _check_window(spec, path, number, row)
    return row


def _check_window(spec: OfficialSpec, path: Path, number: int, row: LabelRow) -> None:
    """The window must be exactly one model input; the stride whole float32 values."""
    if row.window_bytes != spec.sample_bytes:
        raise BenchmarkError(
            f"{spec.id}: {path} line {number}: window of {row.window_bytes} B, but the model "
            f"takes {spec.sample_bytes} B ({int(np.prod(spec.sample_shape))} float32 values)"
        )
    if row.stride_bytes <= 0 or row.stride_bytes % FLOAT32_BYTES:
        raise BenchmarkError(
            f"{spec.id}: {path} line {number}: stride {row.stride_bytes} B is not a positive "
            f"multiple of {FLOAT32_BYTES} B (one float32)"
        )


# --- sample files -------------------------------------------------------------------------


def sample_sizes(spec: OfficialSpec, folder: Path, rows: Sequence[LabelRow]) -> list[int]:
    """Size of every listed file; one error naming what is missing or mis-sized."""
    sizes: list[int | None] = []
    for row in rows:
        try:
            sizes.append((folder / row.file).stat().st_size)
        except OSError:
            sizes.append(None)
    missing = [row.file for row, size in zip(rows, sizes, strict=True) if size is None]
    if missing:
        raise BenchmarkError(
            f"{spec.id}: {len(missing)} of {len(rows)} sample files listed in {LABELS_FILE} are "
            f"missing from {folder} (first: {missing[0]}); copy the complete official data set"
        )
    checked = [int(s) for s in sizes if s is not None]
    wrong = [
        (row.file, size)
        for row, size in zip(rows, checked, strict=True)
        if not _size_ok(spec, size)
    ]
    if wrong:
        name, size = wrong[0]
        raise BenchmarkError(
            f"{spec.id}: {folder / name} is {size} B, expected {_size_rule(spec)} "
            f"({len(wrong)} file(s) with a wrong size); is this {spec.id}'s data?"
        )
    return checked


def _size_ok(spec: OfficialSpec, size: int) -> bool:
    if spec.windowed:
        return size >= spec.sample_bytes and size % FLOAT32_BYTES == 0
    return size == spec.sample_bytes


def _size_rule(spec: OfficialSpec) -> str:
    if spec.windowed:
        return f"a multiple of {FLOAT32_BYTES} B of at least {spec.sample_bytes} B (FP32LE)"
    return f"{spec.sample_bytes} B of {spec.sample_format}"


def uint8_to_int8(data: bytes) -> np.ndarray:
    """Pixels as the reference firmware feeds them: each uint8 byte minus 128."""
    return (np.frombuffer(data, dtype=np.uint8).astype(np.int16) - 128).astype(np.int8)


def ad_windows(data: bytes, window_bytes: int, stride_bytes: int) -> np.ndarray:
    """Float32 windows [n, window] cut exactly as MLPerf Tiny's runner cuts them.

    The runner takes `data[start:start + window]` for start = 0, stride, ... while the
    window fits; a tail shorter than one window is dropped.
    """
    values = np.frombuffer(data, dtype="<f4")
    width, step = window_bytes // FLOAT32_BYTES, stride_bytes // FLOAT32_BYTES
    if len(values) < width:
        return np.empty((0, width), dtype=np.float32)
    windows = np.lib.stride_tricks.sliding_window_view(values, width)[::step]
    return np.ascontiguousarray(windows, dtype=np.float32)


def quantize_int8(values: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """float32 -> int8 as the AD reference firmware's QuantizeFloatToInt8 does.

    That is `round(value / scale) + zero_point`, clamped to [-128, 127]: the division in
    float32 and C's round(), which rounds halves away from zero (numpy's round would send
    them to even). TFLite's own QUANTIZE kernel rounds the same way.
    """
    ratio = np.asarray(values, dtype=np.float32) / np.float32(scale)
    wide = ratio.astype(np.float64)
    rounded = np.trunc(wide + np.copysign(0.5, wide))
    return np.clip(rounded + zero_point, -128, 127).astype(np.int8)


def preprocess(
    spec: OfficialSpec, data: bytes, row: LabelRow, input_quant: tuple[float, int]
) -> np.ndarray:
    """One file's bytes -> int8 model inputs [k, *sample_shape] (k > 1 only for ad01)."""
    if spec.sample_format == "int8":
        samples = np.frombuffer(data, dtype=np.int8)[None]
    elif spec.sample_format == "uint8":
        samples = uint8_to_int8(data)[None]
    else:
        windows = ad_windows(data, row.window_bytes, row.stride_bytes)
        if not np.isfinite(windows).all():
            raise BenchmarkError(f"{spec.id}: {row.file} holds NaN or infinite values")
        samples = quantize_int8(windows, *input_quant)
    return samples.reshape((len(samples), *spec.sample_shape))


def convert(
    spec: OfficialSpec,
    folder: Path,
    rows: Sequence[LabelRow],
    input_quant: tuple[float, int],
) -> dict[str, np.ndarray]:
    """The evaluation set: `x`, `y`, and for ad01 `group` (the file index of each window)
    and `wire` (the raw float32 windows, which serial DUTs are sent and quantize themselves).

    ad01 keeps every window of every file, each labelled with its file's label: accuracy
    needs them all (scores are averaged per group), and performance draws from the same set.
    """
    inputs, labels, groups, wires = [], [], [], []
    for index, row in enumerate(rows):
        data = (folder / row.file).read_bytes()
        samples = preprocess(spec, data, row, input_quant)
        inputs.append(samples)
        labels.append(np.full(len(samples), row.label, dtype=np.int64))
        groups.append(np.full(len(samples), index, dtype=np.int64))
        if spec.windowed:
            wires.append(ad_windows(data, row.window_bytes, row.stride_bytes))
    arrays = {"x": np.concatenate(inputs), "y": np.concatenate(labels)}
    if spec.windowed:
        arrays["group"] = np.concatenate(groups)
        arrays["wire"] = np.concatenate(wires)
    return arrays


# --- cache --------------------------------------------------------------------------------


def default_cache_dir() -> Path:
    root = os.environ.get(CACHE_ENV)
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "edgebench"
    return base / "mlperf-tiny"


def cache_key(
    spec: OfficialSpec,
    labels: Path,
    rows: Sequence[LabelRow],
    sizes: Iterable[int],
    input_quant: tuple[float, int],
) -> str:
    """Digest of what the conversion depends on: the csv, the file sizes, the quantization.

    File contents are not hashed (that would cost as much as converting); an official data
    set does not change in place, and a damaged file usually shows up as a wrong size.
    """
    digest = hashlib.sha256()
    digest.update(f"{CACHE_FORMAT}\n{spec.id}\n{spec.model_sha256}\n".encode())
    digest.update(f"{input_quant[0]!r} {input_quant[1]}\n".encode())
    digest.update(labels.read_bytes())
    for row, size in zip(rows, sizes, strict=True):
        digest.update(f"\n{row.file}\t{size}".encode())
    return digest.hexdigest()[:16]


def _cached_count(path: Path) -> int | None:
    """Sample count of a usable cached set, or None when it must be (re)built."""
    if not path.is_file():
        return None
    try:
        with np.load(path) as data:
            if "x" not in data.files:
                return None
            return len(data["y"])
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write atomically, with fixed member order and timestamps.

    Atomic so an interrupted conversion never leaves a half file that a later run trusts;
    deterministic so the same data gives the same dataset sha256 on every machine. Stored,
    not deflated: the samples barely compress and the agent loads them on small boards.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=path.name + ".", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as raw, zipfile.ZipFile(raw, "w") as archive:
            for key in sorted(arrays):
                info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                info.external_attr = 0o644 << 16
                with archive.open(info, "w", force_zip64=True) as member:
                    array = np.ascontiguousarray(arrays[key])
                    np.lib.format.write_array(member, array, allow_pickle=False)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# --- the benchmark ------------------------------------------------------------------------


def _model_tensors(spec: OfficialSpec, model: Path) -> tuple[TensorSpec, TensorSpec]:
    description = Engine(str(model), delegate="none").describe()
    first_in = TensorSpec.from_dict(description["inputs"][0])
    first_out = TensorSpec.from_dict(description["outputs"][0])
    if first_in.shape[1:] != spec.sample_shape or first_in.dtype != "int8":
        raise BenchmarkError(
            f"{spec.id}: {model} takes {first_in.dtype} {list(first_in.shape)}, but the "
            f"official data is int8 {[1, *spec.sample_shape]}"
        )
    return first_in, first_out


def official_benchmark(name: str, data_dir: Path, cache_dir: Path | None = None) -> Benchmark:
    """The closed-division Benchmark for one official id, converting the data on first use."""
    spec = official_spec(name)
    data_dir = Path(data_dir).expanduser().absolute()
    labels = labels_path(spec, data_dir)
    rows = read_labels(spec, labels)
    folder = labels.parent
    sizes = sample_sizes(spec, folder, rows)
    model = find_model(spec, _model_dirs(spec, data_dir, labels))
    input_spec, output_spec = _model_tensors(spec, model)
    quant = (input_spec.scale, input_spec.zero_point)
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    dataset = root / f"{spec.id}-{cache_key(spec, labels, rows, sizes, quant)}.npz"
    count = _cached_count(dataset)
    reused = count is not None
    if count is None:
        arrays = convert(spec, folder, rows, quant)
        write_npz(dataset, arrays)
        count = len(arrays["y"])
    return Benchmark(
        name=spec.id,
        task=spec.task,
        model_path=model,
        model_sha256=spec.model_sha256,
        input=input_spec,
        output=output_spec,
        metric=spec.metric,
        target=spec.target,
        dataset_path=dataset,
        dataset_sha256=sha256_file(dataset),
        dataset_count=count,
        scenarios=SCENARIOS,
        performance_sample_count=min(count, MAX_PERFORMANCE_SAMPLES),
        division="closed",
        source=SOURCE,
        details={
            "official_id": spec.id,
            "labels": str(labels),
            "files": len(rows),
            "samples": count,
            "cache_reused": reused,
            "preprocessing": describe_preprocessing(spec),
        },
    )


def describe_preprocessing(spec: OfficialSpec) -> str:
    """One sentence for results and `edgebench benchmarks`: what was done to the files."""
    if spec.sample_format == "int8":
        return f"{spec.sample_bytes} B int8 files fed as they are"
    if spec.sample_format == "uint8":
        return f"{spec.sample_bytes} B uint8 HWC files, each byte minus 128 -> int8"
    return (
        "FP32LE files cut into windows (window and stride bytes from y_labels.csv), each "
        "quantized with the model's input scale and zero point, round half away from zero, "
        "clamped to int8; every window kept, grouped by file"
    )

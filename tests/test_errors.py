"""Bad input ends in one line that names the problem and the fix, never a traceback."""

from __future__ import annotations

import importlib.util
import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from edgebench.devices.profiles import ProfileError, load_profile
from edgebench.suite.benchmarks import BenchmarkError
from edgebench.suite.user_model import user_benchmark

from .ssh_fixtures import tmpfs
from .support import run_cli


def error_line(done) -> str:
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines, "no error message"
    return " ".join(lines)


def test_unknown_benchmark(tmp_path: Path) -> None:
    line = error_line(run_cli("run", "-b", "nope", cwd=tmp_path))
    assert "unknown benchmark 'nope'" in line
    assert "edgebench benchmarks" in line


def test_missing_model_file(tmp_path: Path) -> None:
    line = error_line(run_cli("run", "--model", "absent.tflite", cwd=tmp_path))
    assert "absent.tflite does not exist" in line


def test_file_that_is_not_a_tflite_model(tmp_path: Path) -> None:
    (tmp_path / "fake.tflite").write_bytes(b"this is not a flatbuffer at all")
    line = error_line(run_cli("run", "--model", "fake.tflite", cwd=tmp_path))
    assert "not a TFLite flatbuffer" in line


def test_unknown_scenario(ad_model: Path, tmp_path: Path) -> None:
    line = error_line(run_cli("run", "--model", str(ad_model), "-s", "Streaming", cwd=tmp_path))
    assert "unknown scenario 'Streaming'" in line


def test_accuracy_without_labels(ad_model: Path, tmp_path: Path) -> None:
    done = run_cli(
        "run", "--model", str(ad_model), "-s", "Offline", "-m", "accuracy", "--json", cwd=tmp_path
    )
    assert done.returncode == 1
    assert "no labelled evaluation set" in done.stderr


def test_model_whose_hash_differs(ad_model: Path, tmp_path: Path) -> None:
    copy = tmp_path / "ad.tflite"
    shutil.copy(ad_model, copy)
    benchmark = user_benchmark(copy)
    benchmark.verify()
    with open(copy, "r+b") as handle:
        handle.seek(-1, 2)
        last = handle.read(1)
        handle.seek(-1, 2)
        handle.write(bytes([last[0] ^ 0xFF]))
    with pytest.raises(BenchmarkError, match=r"has sha256 .* the manifest says"):
        replace(benchmark).verify()


def test_runtime_missing_names_the_install_command(ad_model: Path, tmp_path: Path) -> None:
    if importlib.util.find_spec("tflite_runtime") is not None:
        pytest.skip("tflite_runtime is installed here, so it cannot be missing")
    done = run_cli(
        "run",
        "--model",
        str(ad_model),
        "-s",
        "SingleStream",
        "--runtime",
        "tflite_runtime",
        "--json",
        cwd=tmp_path,
    )
    assert done.returncode == 1
    assert 'pip install tflite-runtime "numpy<2"' in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"transport": "local", "thread": 2}, "unknown key 'thread' for transport 'local'"),
        ({"transport": "local", "threads": "two"}, "key 'threads' must be int, got str"),
        ({"transport": "local", "threads": True}, "key 'threads' must be int, got bool"),
        ({"transport": "local", "delegate": "gpu"}, "key 'delegate' is 'gpu'; use one of"),
        ({"transport": "carrier-pigeon"}, "unknown transport 'carrier-pigeon'"),
    ],
)
def test_bad_profile_keys_name_file_key_and_type(
    content: dict, message: str, tmp_path: Path
) -> None:
    path = tmp_path / "board.yaml"
    path.write_text(yaml.safe_dump(content))
    with pytest.raises(Exception, match=message) as caught:
        load_profile(str(path))
    assert str(path) in str(caught.value) or "transport" in str(caught.value)


def test_unknown_device_lists_known_ones(tmp_path: Path) -> None:
    line = error_line(run_cli("run", "-d", "raspberry-pi-9", cwd=tmp_path))
    assert "unknown device 'raspberry-pi-9'" in line and "local" in line


def test_user_profiles_are_found_and_validated(tmp_path: Path) -> None:
    devices = tmp_path / "cfg" / "devices"
    devices.mkdir(parents=True)
    (devices / "pinned.yaml").write_text("transport: local\nthreads: 1\naffinity: [0]\n")
    (devices / "broken.yaml").write_text("transport: local\nthreds: 1\n")
    config = {"EDGEBENCH_CONFIG_DIR": str(tmp_path / "cfg")}
    done = run_cli("devices", "--json", cwd=tmp_path, env=config)
    assert done.returncode == 1  # one profile is broken
    rows = {row["name"]: row for row in json.loads(done.stdout)}
    assert rows["pinned"]["error"] is None
    assert "unknown key 'threds'" in rows["broken"]["error"]
    assert rows["local"]["error"] is None
    with pytest.raises(ProfileError, match="is not valid YAML"):
        (devices / "bad.yaml").write_text("transport: [local\n")
        load_profile(str(devices / "bad.yaml"))


def with_input_signature(source: Path, target: Path, signature: list[int]) -> Path:
    """Rewrite a model's first input shape signature (the flatbuffer, via LiteRT's schema)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(source.read_bytes(), 0)
    graph = model.subgraphs[0]
    graph.tensors[graph.inputs[0]].shapeSignature = signature
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    target.write_bytes(builder.Output())
    return target


def test_model_with_dynamic_shape_is_refused(kws_model: Path, tmp_path: Path) -> None:
    dynamic = with_input_signature(kws_model, tmp_path / "dyn.tflite", [1, -1, 10, 1])
    line = error_line(run_cli("run", "--model", str(dynamic), cwd=tmp_path))
    assert "has a dynamic shape [1, -1, 10, 1]" in line
    assert "fixed shapes" in line


def test_free_batch_dimension_is_accepted(kws_model: Path, tmp_path: Path) -> None:
    """Keras exports a free batch (-1); the official MLPerf Tiny models have it."""
    batch = with_input_signature(kws_model, tmp_path / "batch.tflite", [-1, 49, 10, 1])
    assert user_benchmark(batch).input.shape == (1, 49, 10, 1)


def test_results_disk_full_on_the_host_is_one_line(tmp_path):
    with tmpfs(tmp_path / "disk", 8 << 10) as disk:
        (disk / "filler").write_bytes(bytes(6 << 10))
        done = run_cli(
            "run", "-b", "kws", "-s", "SingleStream", "--duration", "1", "--results",
            str(disk / "res"), cwd=tmp_path, env={"COLUMNS": "1000"},
        )  # fmt: skip
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    (line,) = [text for text in done.stderr.splitlines() if text.strip()]
    assert "no space left on this machine's disk; free space" in line

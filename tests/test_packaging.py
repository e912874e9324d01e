"""The bundled models, evaluation sets and device profiles are found from an installed wheel."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from edgebench.suite.benchmarks import MANIFEST

from .support import REPO


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    [built] = out.glob("edgebench-*.whl")
    return built


def test_wheel_carries_suite_and_profiles(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "edgebench/device_profiles/local.yaml" in names
    assert "edgebench/suite/manifest.json" in names
    manifest = json.loads(MANIFEST.read_text())
    for entry in manifest["benchmarks"].values():
        assert f"edgebench/suite/{entry['model']['file']}" in names
        assert f"edgebench/suite/{entry['dataset']['file']}" in names


def test_installed_wheel_finds_its_data_outside_the_checkout(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", str(wheel)],
        check=True,
        capture_output=True,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    edgebench = venv / "bin" / "edgebench"
    listed = subprocess.run(
        [str(edgebench), "benchmarks", "--json"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        check=True,
    )
    names = {row["name"] for row in json.loads(listed.stdout)}
    assert {"kws", "ic", "vww", "ad"} <= names
    where = subprocess.run(
        [str(python), "-c", "import edgebench; print(edgebench.__file__)"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        check=True,
    )
    assert str(venv) in where.stdout
    devices = subprocess.run(
        [str(edgebench), "devices", "--json"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "local" in {row["name"] for row in json.loads(devices.stdout)}

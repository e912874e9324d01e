"""The native loop stands in for LoadGen where LoadGen cannot be installed, and says so."""

from __future__ import annotations

import statistics
from pathlib import Path

from .support import run_json


def hide_loadgen(tmp_path: Path) -> dict[str, str]:
    """A module that fails to import shadows the installed LoadGen, as on a bare board image."""
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "mlperf_loadgen.py").write_text("raise ImportError('not on this device')\n")
    return {"PYTHONPATH": str(shadow)}


def test_without_loadgen_the_native_loop_runs_and_says_so(ad_model: Path, tmp_path: Path) -> None:
    [result] = run_json(
        "--model",
        str(ad_model),
        "-s",
        "SingleStream",
        "--duration",
        "1",
        "--results",
        "r",
        cwd=tmp_path,
        env=hide_loadgen(tmp_path),
    )
    assert result["valid"] is True, result["reasons"]
    assert result["loop"] == "native"
    assert result["loadgen"] == "none (edgebench native loop)"
    run_dir = tmp_path / "r" / result["run_id"]
    assert not list(run_dir.glob("mlperf_log_*"))
    summary = (run_dir / "native_log_summary.txt").read_text()
    assert "loadgen: none (edgebench native loop)" in summary
    assert "MLPerf Results Summary" not in summary


def test_asking_for_loadgen_where_it_is_missing_names_the_fix(
    ad_model: Path, tmp_path: Path
) -> None:
    from .support import run_cli

    done = run_cli(
        "run",
        "--model",
        str(ad_model),
        "-s",
        "Offline",
        "--loop",
        "loadgen",
        "--json",
        cwd=tmp_path,
        env=hide_loadgen(tmp_path),
    )
    assert done.returncode == 1
    assert "pip install mlcommons-loadgen" in done.stderr


def test_native_and_loadgen_agree_on_p50(kws_model: Path, tmp_path: Path) -> None:
    """Interleaved repeats; the loops must agree within max(3 %, 2 us) (issue #2)."""
    medians: dict[str, list[float]] = {"native": [], "loadgen": []}
    for _ in range(3):
        for loop in ("native", "loadgen"):
            [result] = run_json(
                "--model",
                str(kws_model),
                "-s",
                "SingleStream",
                "--duration",
                "1.5",
                "--loop",
                loop,
                "--results",
                "r",
                cwd=tmp_path,
            )
            assert result["valid"] is True, result["reasons"]
            medians[loop].append(result["metrics"]["latency_ns"]["p50"])
    native = statistics.median(medians["native"])
    loadgen = statistics.median(medians["loadgen"])
    assert abs(native - loadgen) <= max(0.03 * loadgen, 2000), medians

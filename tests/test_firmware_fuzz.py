"""libFuzzer over the C bridge's command parser, with AddressSanitizer and UBSan: a fixed
number of executions from the committed seed corpus must end without a crash, an overrun or
undefined behaviour (the harness also requires that a command after any input is answered)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from edgebench.firmware.build import CORE, FIRMWARE_ROOT
from edgebench.firmware.model_to_c import write_model_source
from edgebench.suite.benchmarks import bundled_benchmarks

FUZZ = FIRMWARE_ROOT / "fuzz"
RUNS = 500_000


@pytest.mark.skipif(
    shutil.which("clang") is None, reason="clang is not installed (.ci/run installs it)"
)
def test_parser_survives_fuzzing(tmp_path):
    model = write_model_source(bundled_benchmarks()["ad"].model_path, "eb-ad", tmp_path / "m.c")
    assert model.wire_bytes == 640
    binary = tmp_path / "fuzz_bridge"
    build = subprocess.run(
        [
            "clang",
            "-g",
            "-O1",
            "-std=c99",
            "-fsanitize=fuzzer,address,undefined",
            "-fno-sanitize-recover=undefined",
            "-DEB_INFER_MAX=100",
            f"-I{CORE}",
            *map(str, sorted(CORE.glob("*.c"))),
            str(tmp_path / "m.c"),
            str(FUZZ / "fuzz_bridge.c"),
            "-o",
            str(binary),
        ],
        capture_output=True,
        text=True,
    )
    if build.returncode != 0 and "libclang_rt" in build.stderr:
        pytest.skip("clang's sanitizer runtimes are missing (apt-get install libclang-rt-14-dev)")
    assert build.returncode == 0, build.stderr
    found = tmp_path / "corpus"
    found.mkdir()
    run = subprocess.run(
        [binary, f"-runs={RUNS}", "-seed=1", "-max_len=2048", str(found), str(FUZZ / "corpus")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"Done {RUNS} runs" in run.stderr

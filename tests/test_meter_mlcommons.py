"""The MLPerf Power path: edgebench runs MLCommons' power client, which owns the measurement.

power-dev is not on PyPI, so these runs use edgebench.lab.power_client_stand_in (the client's
command line, phases, LoadGen-log choice and session layout, talking PTDaemon's protocol to
the emulator) on the local device; the agent writes its busy times into the activity file
the emulator turns into power, so the true energy is known.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from edgebench.devices.base import RunRecord
from edgebench.lab.power_model import ActivityTimeline, PowerModel
from edgebench.meters import mlcommons_gate
from edgebench.meters.base import MeterError
from edgebench.meters.mlcommons_power import (
    REQUIRED,
    SESSION_DIR,
    MlcommonsPowerMeter,
    analyzer_identity,
)
from edgebench.meters.profiles import load_meter_profile, open_meter
from edgebench.metrics.energy import LAB_LABEL
from edgebench.submission.tree import assemble

from .support import CLI, ctrl_c, processes_mentioning, run_cli, wait_for

IDLE_W, ACTIVE_W = 2.0, 5.0
STAND_IN = ["python", "-m", "edgebench.lab.power_client_stand_in"]


def stand_in_profile(path: Path, activity: Path, **extra: object) -> Path:
    profile = {
        "name": path.stem,
        "driver": "mlcommons-power",
        "client": STAND_IN,
        "ntp": "127.0.0.1",
        "label": "eb-test",
        "timeout_s": 30,
        "idle_s": 0.5,
        "clock_uncertainty_s": 0.002,
        "emulator": {"idle_w": IDLE_W, "active_w": ACTIVE_W, "activity": str(activity)},
        **extra,
    }
    path.write_text(yaml.safe_dump(profile))
    return path


def metered(root: Path, profile: Path, *args: str):
    activity = root / "activity.jsonl"
    return run_cli(
        "run", "-b", "kws", "-s", "SingleStream", "--meter", str(profile),
        "--results", str(root / "results"), "--json", *args,
        cwd=root, env={"EDGEBENCH_TEST_ACTIVITY_FILE": str(activity)},
    )  # fmt: skip


@pytest.fixture(scope="module")
def client_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("mlcommons-run")
    profile = stand_in_profile(root / "stand-in.yaml", root / "activity.jsonl")
    done = metered(root, profile, "-m", "performance", "--duration", "4")
    assert done.returncode == 0, done.stderr[-2000:]
    (result,) = json.loads(done.stdout)
    return root / "results" / result["run_id"], result


def test_client_session_is_kept_whole(client_run: tuple[Path, dict]) -> None:
    directory, _ = client_run
    (session,) = (directory / "power" / SESSION_DIR).iterdir()
    assert session.name.endswith("_eb-test")
    for folder, names in REQUIRED.items():
        for name in names:
            assert (session / folder / name).is_file(), f"{folder}/{name}"
    # The client kept the testing run's own LoadGen logs, byte for byte.
    for name in ("mlperf_log_detail.txt", "mlperf_log_summary.txt"):
        assert (session / "run_1" / name).read_bytes() == (directory / name).read_bytes()
        ranging = directory / "ranging" / name
        assert (session / "ranging" / name).read_bytes() == ranging.read_bytes()
    assert not (directory / "ranging" / "power" / "mlcommons-client" / "output").exists()
    for line in (session / "run_1" / "spl.txt").read_text().splitlines():
        assert line.count(",Mark,") == 1 and line.endswith(f"{session.name}_testing")


def test_energy_uses_mlperf_method_and_says_lab(client_run: tuple[Path, dict]) -> None:
    directory, result = client_run
    energy = json.loads((directory / "energy.json").read_text())
    assert result["valid"] and energy["valid"], energy["reasons"]
    assert energy["method"] == "mlperf-power" and energy["label"] == LAB_LABEL
    assert energy["meter"]["mlperf_power_valid"] is False
    assert "stand-in" in energy["meter"]["notes"]
    assert "identifies as 'EmulatedWT310" in energy["meter"]["notes"]  # from server.json
    assert energy["meter"]["model"].endswith("PTDaemon EmulatedWT310")
    # kws keeps the device busy: the mean power inside the window is near the active level,
    # and the energy follows from it as the activity file (the truth) says.
    assert ACTIVE_W - 0.5 < energy["average_power_w"] <= ACTIVE_W + 0.05
    timeline = ActivityTimeline(directory.parent.parent / "activity.jsonl", PowerModel(2, 5))
    timeline.refresh()
    _, issue, complete = RunRecord.load(directory).queries()
    truth = timeline.energy(int(issue.min()), int(complete.max())) / len(complete)
    assert energy["energy_per_inference_j"] == pytest.approx(truth, rel=0.1)


def test_submission_lays_out_the_session_as_mlperf_power_does(
    client_run: tuple[Path, dict], tmp_path: Path
) -> None:
    directory, _ = client_run
    assembly = assemble([directory], tmp_path / "sub", "Edgebench", "open")
    ((_, target),) = assembly.placed
    performance = target.parent
    assert target.name == "run_1" and performance.name == "performance"
    for folder, names in REQUIRED.items():
        for name in names:
            assert (performance / folder / name).is_file(), f"{folder}/{name}"
    assert (performance / "run_1" / "result.json").is_file()  # the run itself, beside them


def test_accuracy_runs_are_not_metered(tmp_path: Path) -> None:
    profile = stand_in_profile(tmp_path / "stand-in.yaml", tmp_path / "activity.jsonl")
    done = metered(tmp_path, profile, "-m", "accuracy")
    assert done.returncode == 0, done.stderr[-2000:]
    (result,) = json.loads(done.stdout)
    directory = tmp_path / "results" / result["run_id"]
    assert not (directory / "energy.json").exists() and not (directory / "ranging").exists()
    assert "meter not used in accuracy mode: energy is measured on performance runs" in " ".join(
        result["notes"]
    )


def test_native_loop_is_refused_with_the_fix(tmp_path: Path) -> None:
    """The client needs LoadGen's logs: a run without them fails in its ranging phase, with
    the fix, and its results directory says so."""
    profile = stand_in_profile(tmp_path / "stand-in.yaml", tmp_path / "activity.jsonl")
    done = metered(tmp_path, profile, "-m", "performance", "--duration", "0.5", "--loop", "native")
    assert done.returncode != 0
    fix = "MLCommons' client needs LoadGen's logs: run with --loop loadgen"
    assert fix in " ".join(done.stderr.split())
    (result_file,) = (tmp_path / "results").glob("*/result.json")
    result = json.loads(result_file.read_text())
    assert result["status"] == "failed" and fix in result["reasons"][0]


def test_ctrl_c_mid_session_ends_the_client_too(tmp_path: Path) -> None:
    """Interrupted in the testing phase: the run is marked incomplete and neither the client
    nor its gate outlives edgebench."""
    profile = stand_in_profile(tmp_path / "stand-in.yaml", tmp_path / "activity.jsonl")
    argv = [*CLI, "run", "-b", "kws", "-s", "SingleStream", "-m", "performance"]
    argv += ["--duration", "3", "--meter", str(profile), "--results", str(tmp_path / "res")]
    process = subprocess.Popen(argv, cwd=tmp_path, stderr=subprocess.PIPE, text=True)

    def testing() -> bool:
        # energy.json ("pending") is written in the testing phase, as its workload starts
        return wait_for(lambda: any((tmp_path / "res").glob("*/energy.json")), 60)

    stderr = ctrl_c(process, testing, "the run never reached its testing phase", timeout=60)
    assert process.returncode == 130, stderr
    (result_file,) = (tmp_path / "res").glob("*/result.json")
    assert json.loads(result_file.read_text())["status"] == "incomplete"
    assert wait_for(lambda: not processes_mentioning(str(tmp_path)), 10), "client left running"


def test_bad_profiles_and_unreachable_server_are_one_line_errors(tmp_path: Path) -> None:
    base = {"name": "m", "driver": "mlcommons-power", "ntp": "127.0.0.1", "client": STAND_IN}
    with pytest.raises(MeterError, match="ranging False: MLCommons' client always ranges"):
        MlcommonsPowerMeter({**base, "ranging": False})
    with pytest.raises(MeterError, match="label 'a b': letters, digits"):
        MlcommonsPowerMeter({**base, "label": "a b"})
    with pytest.raises(MeterError, match="ntp None: set the NTP server"):
        MlcommonsPowerMeter({k: v for k, v in base.items() if k != "ntp"})
    meter = MlcommonsPowerMeter({**base, "port": 9})  # discard port: nothing listens
    with pytest.raises(MeterError, match=r"cannot reach the MLCommons power server at 127\.0"):
        meter.open()


@pytest.mark.parametrize(
    ("client", "message"),
    [
        (["/nonexistent/pc"], r"cannot start the MLCommons power client '/nonexistent/pc'"),
        (["python", "-c", "1/0"], r"client exited before the ranging phase began \(.*Zero"),
    ],
    ids=["missing-program", "client-dies"],
)
def test_client_that_cannot_run_is_a_one_line_error(
    tmp_path: Path, client: list[str], message: str
) -> None:
    profile = stand_in_profile(tmp_path / "c.yaml", tmp_path / "activity.jsonl", client=client)
    with open_meter(str(profile)) as meter, pytest.raises(MeterError, match=message):
        meter.start(tmp_path / "ranging" / "power", "ranging")


@pytest.mark.parametrize(
    ("identify", "valid"),
    [("YokogawaWT310,version=1.11.1", True), ("EmulatedWT310,version=0", False), (None, True)],
)
def test_claim_needs_the_real_client_and_a_yokogawa(
    tmp_path: Path, identify: str | None, valid: bool
) -> None:
    """Not a stand-in client, and the analyzer the server logged is one MLPerf accepts."""
    session = tmp_path / "session"
    (session / "power").mkdir(parents=True)
    messages = [{"cmd": "Identify", "reply": identify}] if identify else []
    (session / "power" / "server.json").write_text(json.dumps({"ptd_messages": messages}))
    assert analyzer_identity(session) == identify
    meter = MlcommonsPowerMeter(
        {"name": "m", "driver": "mlcommons-power", "ntp": "x", "client": ["power_client"]}
    )
    meter._analyzer = analyzer_identity(session)  # what _collect sets from the session
    assert meter.describe().mlperf_power_valid is valid


def test_bundled_profiles_validate() -> None:
    assert load_meter_profile("mlcommons-power")["ntp"]
    assert load_meter_profile("virtual-mlcommons-power")["client"][-1].endswith("stand_in")


def test_gate_usage_and_a_vanished_run() -> None:
    assert mlcommons_gate.main([]) == 2
    assert mlcommons_gate.main(["127.0.0.1:9", "token"]) == 1


def test_probe_opens_without_recording(tmp_path: Path) -> None:
    """A probe cannot hand the client LoadGen logs: it opens the meter and describes it."""
    done = run_cli("meters", "probe", "virtual-mlcommons-power", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["recorded"].startswith("nothing") and "stand-in" in report["notes"]


def test_a_failed_session_leaves_the_meter_ready_for_the_next_run(tmp_path: Path) -> None:
    profile = stand_in_profile(tmp_path / "p.yaml", tmp_path / "activity.jsonl")
    with open_meter(str(profile)) as meter:
        meter.start(tmp_path / "first" / "power", "ranging")
        with pytest.raises(MeterError, match=r"left no mlperf_log_detail\.txt"):
            meter.stop()  # no run wrote LoadGen logs there
        meter.start(tmp_path / "second" / "power", "ranging")  # a fresh client and session
        assert (tmp_path / "second" / "power" / "mlcommons-client" / "command.txt").is_file()
    assert not processes_mentioning(str(tmp_path / "second"))

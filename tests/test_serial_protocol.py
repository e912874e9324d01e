"""The host side of MLPerf Tiny's command set: formatting, parsing, framing, fuzzing.

Link-level tests talk to a real pty pair; the far end is a scripted responder (a thread on
the master side answering each `%`-terminated command with fixed bytes), enough to drive the
parser through every reply shape. End-to-end behaviour against the virtual MCU is in
test_serial_device.py.
"""

from __future__ import annotations

import base64
import os
import threading
import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgebench.devices.base import DeviceError
from edgebench.devices.serial import SerialDevice
from edgebench.devices.serial_dut import Dut
from edgebench.devices.serial_link import BaudMismatch, DutLink, DutLog, DutReset, DutTimeout
from edgebench.devices.serial_port import find_port, open_port
from edgebench.protocol import tiny_commands as cmd
from edgebench.protocol import tiny_replies as rp
from edgebench.protocol.tiny_models import TINY_MODELS, model_for_benchmark
from edgebench.suite.benchmarks import BenchmarkError

# --- replies --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "kind", "value"),
    [
        (b"m-ready\r\n", rp.READY, None),
        (b"m-name-dut-[unspecified]\r\n", rp.NAME, "unspecified"),
        (b"m-profile-[ULPMark for tinyML Firmware V0.0.1]\r\n", rp.PROFILE, None),
        (b"m-model-[kws01]\r\n", rp.MODEL, "kws01"),
        (b"m-timestamp-mode-energy\r\n", rp.TIMESTAMP_MODE, "energy"),
        (b"m-init-done\r\n", rp.INIT_DONE, None),
        (b"m-lap-us-4294967295\r\n", rp.LAP, 4294967295),
        (b"m-[Expecting 490 bytes]\r\n", rp.EXPECTING, 490),
        (b"m-load-done\r\n", rp.LOAD_DONE, None),
        (b"m-buffer-00-7f-ff\r\n", rp.BUFFER, b"\x00\x7f\xff"),
        (b"m-warmup-start-10\r\n", rp.WARMUP_START, 10),
        (b"m-warmup-done\r\n", rp.WARMUP_DONE, None),
        (b"m-infer-start-200\r\n", rp.INFER_START, 200),
        (b"m-infer-done\r\n", rp.INFER_DONE, None),
        (b"m-results-[0.000,0.996,0.004]\r\n", rp.RESULTS, (0.0, 0.996, 0.004)),
        (b"m-results-[12.345]\n", rp.RESULTS, (12.345,)),
        (b"m-ext-[db64:1024]\r\n", rp.EXTENSIONS, "db64:1024"),
        (b"e-[Unknown command: foo]\r\n", rp.ERROR, "Unknown command: foo"),
        (b"m-dut-passthrough(name)\r\n", rp.PASSTHROUGH, "name"),
        (b"  help         : Print this information\r\n", rp.TEXT, None),
    ],
)
def test_every_reply_shape_is_classified(line: bytes, kind: str, value: object) -> None:
    reply = rp.classify(line)
    assert reply.kind == kind
    if value is not None:
        assert reply.value == value


def test_relayed_lines_are_unwrapped_and_marked() -> None:
    reply = rp.classify(b"[dut]: m-lap-us-123\r\n")
    assert (reply.kind, reply.value, reply.via_dut) == (rp.LAP, 123, True)


@pytest.mark.parametrize(
    "line",
    [b"m-results-[0.1,0.2\r\n", b"m-results-[]\r\n", b"m-results-[nan]\r\n", b"m-lap-us-12x\r\n"],
)
def test_damaged_payload_lines_are_garbled_not_parsed(line: bytes) -> None:
    assert rp.classify(line).kind == rp.GARBLED


def test_noise_in_front_of_a_message_is_dropped_and_counted() -> None:
    reply = rp.classify(b"\xfe\x81\x00m-ready\r\n")
    assert (reply.kind, reply.noise) == (rp.READY, 3)
    junk = rp.classify(b"\x8f\x91\xfe\xa0")
    assert junk.kind == rp.GARBLED and junk.noise == 4


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_classify_never_raises(data: bytes) -> None:
    reply = rp.classify(data)
    assert reply.kind in rp.KINDS


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=20), st.integers(16, 256))
def test_fuzz_splitter_loses_nothing_and_stays_bounded(chunks: list[bytes], limit: int) -> None:
    splitter = rp.LineSplitter(max_line=limit)
    lines = [line for chunk in chunks for line in splitter.feed(chunk)]
    assert b"".join(lines) + splitter.pending == b"".join(chunks)
    assert len(splitter.pending) <= limit
    assert all(line.endswith(b"\n") or len(line) > limit for line in lines)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [b"m-ready", b"m-lap-us-5", b"m-results-[0.5,0.5]", b"e-[x]", b"m-infer-done"]
        ),
        max_size=10,
    ),
    st.binary(max_size=40),
)
def test_fuzz_valid_lines_survive_garbage_between_them(lines: list[bytes], junk: bytes) -> None:
    stream = b"".join(junk.replace(b"\n", b"") + b"\r\n" + line + b"\r\n" for line in lines)
    splitter = rp.LineSplitter()
    kinds = [rp.classify(line).kind for line in splitter.feed(stream)]
    wanted = [rp.classify(line).kind for line in lines]
    assert [k for k in kinds if k not in (rp.TEXT, rp.GARBLED)][: len(wanted)] == wanted


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=120))
def test_fuzz_extension_parsing_never_raises(text: str) -> None:
    extensions = cmd.Extensions.parse(text)
    framing = cmd.choose_framing(extensions, via_interface=False)
    assert framing.chunk_bytes > 0


# --- commands and framing -------------------------------------------------------------------


def test_commands_are_terminated_by_percent_without_newlines() -> None:
    assert cmd.encode(cmd.infer(200, 1)) == b"infer 200 1%"
    assert cmd.encode(cmd.db_load(490)) == b"db load 490%"
    assert cmd.encode(cmd.passthrough(cmd.name())) == b"dut name%"
    for bad in ("a%b", "name\r", "x" * 80):
        with pytest.raises(cmd.CommandError):
            cmd.encode(bad)
    with pytest.raises(cmd.CommandError):
        cmd.infer(0, 1)


@pytest.mark.parametrize(
    ("announced", "via", "name", "chunk"),
    [("", False, "hex", 31), ("", True, "hex", 26), ("db64", False, "db64", 54),
     ("db64:1024", False, "db64", 762), ("db64:1024", True, "hex", 26)],
)  # fmt: skip
def test_framing_fits_the_buffer_and_carries_the_bytes(
    announced: str, via: bool, name: str, chunk: int
) -> None:
    framing = cmd.choose_framing(cmd.Extensions.parse(announced), via)
    assert (framing.name, framing.chunk_bytes) == (name, chunk)
    data = bytes(np.random.default_rng(1).integers(0, 256, 1000, dtype=np.uint8))
    commands = framing.commands(data)
    assert commands[0].endswith(f"db load {len(data)}")
    body = [c.removeprefix(framing.prefix) for c in commands[1:]]
    if name == "hex":
        back = b"".join(bytes.fromhex(c.removeprefix("db ")) for c in body)
    else:
        back = b"".join(base64.b64decode(c.removeprefix("db64 ")) for c in body)
    assert back == data
    assert all(len(cmd.encode(c, framing.limit)) <= framing.limit for c in commands)


def test_payload_efficiency_of_hex_and_base64() -> None:
    hex_framing = cmd.choose_framing(cmd.Extensions(), False)
    b64_framing = cmd.choose_framing(cmd.Extensions.parse("db64"), False)
    assert 0.45 < hex_framing.efficiency(27648) < 0.48  # 31 B in 66 characters
    assert b64_framing.efficiency(27648) > 0.65
    assert hex_framing.wire_bytes(490) == len("db load 490%") + 15 * 66 + len("db %") + 2 * 25


# --- models and wire formats ----------------------------------------------------------------


def test_model_ids_keep_official_and_bundled_apart() -> None:
    assert model_for_benchmark("kws").model_id == "eb-kws"
    assert model_for_benchmark("kws01").model_id == "kws01"
    assert model_for_benchmark("eb-ad").benchmark == "ad"
    with pytest.raises(BenchmarkError, match="no MLPerf Tiny model id"):
        model_for_benchmark("resnet50")


def test_wire_formats_round_trip_to_the_int8_tensor() -> None:
    rng = np.random.default_rng(2)
    x = rng.integers(-128, 128, (32, 32, 3), dtype=np.int8)
    ic = TINY_MODELS["ic01"]
    wire = ic.to_wire(x)
    assert np.frombuffer(wire, np.uint8)[0] == int(x.flat[0]) + 128
    assert np.array_equal(ic.to_tensor(wire, 1 / 255, -128, x.shape), x)
    kws = TINY_MODELS["eb-kws"]
    assert np.array_equal(kws.to_tensor(kws.to_wire(x), 0.1, 0, x.shape), x)
    ad = TINY_MODELS["ad01"]
    window = rng.normal(size=640).astype(np.float32)
    tensor = ad.to_tensor(ad.to_wire(window), 0.05, 10, (1, 640))
    assert tensor.dtype == np.int8 and tensor.shape == (1, 640)
    with pytest.raises(ValueError, match="FP32LE"):
        ad.to_wire(x)
    with pytest.raises(ValueError, match="needs 2560"):
        ad.to_tensor(b"\0" * 10, 0.05, 10, (1, 640))


# --- the link over a real pty -----------------------------------------------------------------

Script = Callable[[str], bytes]


class Responder:
    """The far end of a pty: answers each `%`-terminated command with script(command)."""

    def __init__(self, script: Script) -> None:
        self.master, slave = os.openpty()
        self.path = os.ttyname(slave)
        os.close(slave)
        self.script = script
        self.commands: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        buffer = b""
        while not self._stop.is_set():
            try:
                data = os.read(self.master, 4096)
            except OSError:
                time.sleep(0.01)
                continue
            buffer += data
            while b"%" in buffer:
                line, _, buffer = buffer.partition(b"%")
                text = line.decode("ascii", "replace")
                self.commands.append(text)
                answer = self.script(text)
                if answer:
                    os.write(self.master, answer)

    def close(self) -> None:
        self._stop.set()
        os.close(self.master)


class ReferenceDut:
    """A well-behaved kws01 DUT in performance timing, answering like the reference firmware."""

    def __init__(self) -> None:
        self.expected = self.loaded = 0

    def __call__(self, command: str) -> bytes:
        if command == "name":
            return b"m-name-dut-[pty responder]\r\nm-ready\r\n"
        if command == "profile":
            profile = b"m-profile-[ULPMark for tinyML Firmware V0.0.1]\r\n"
            return profile + b"m-model-[kws01]\r\nm-ready\r\n"
        if command == "help":
            return b"help : this\r\nm-ready\r\n"
        if command.startswith("db load"):
            self.expected, self.loaded = int(command.split()[2]), 0
            return f"m-[Expecting {self.expected} bytes]\r\nm-ready\r\n".encode()
        if command.startswith("db "):
            self.loaded += len(command[3:]) // 2
            done = self.loaded >= self.expected
            return b"m-load-done\r\nm-ready\r\n" if done else b"m-ready\r\n"
        if command.startswith("infer"):
            n = int(command.split()[1])
            laps = f"m-lap-us-1000\r\nm-lap-us-{1000 + 50 * n}\r\n"
            return (
                f"m-warmup-start-1\r\nm-warmup-done\r\nm-infer-start-{n}\r\n{laps}"
                "m-infer-done\r\nm-results-[0.100,0.900]\r\nm-ready\r\n"
            ).encode()
        if command == "results":
            return b"m-results-[0.100,0.900]\r\nm-ready\r\n"
        return f"e-[Unknown command: {command}]\r\nm-ready\r\n".encode()


def standard(command: str) -> bytes:
    """One shared reference DUT per test (reset by the responder fixture)."""
    return _REFERENCE(command)


_REFERENCE = ReferenceDut()


@pytest.fixture
def responder() -> Iterator[Callable[[Script], Responder]]:
    made: list[Responder] = []

    def make(script: Script) -> Responder:
        _REFERENCE.__init__()
        made.append(Responder(script))
        return made[-1]

    yield make
    for item in made:
        item.close()


def _dut(path: str, interface: str = "none", timeout: float = 2.0) -> Dut:
    return Dut(DutLink(open_port(path, 115200), interface, DutLog()), timeout)


def test_identify_load_and_infer_against_a_scripted_dut(responder, tmp_path) -> None:
    far = responder(standard)
    dut = _dut(far.path)
    dut.link.log.attach(tmp_path / "dut_log.txt")
    identity = dut.identify(boot_timeout=0.2)
    assert (identity.name, identity.model) == ("pty responder", "kws01")
    sent = dut.load(bytes(40), cmd.choose_framing(identity.extensions, False))
    assert sent == len("db load 40%") + len("db " + "00" * 31 + "%") + len("db " + "00" * 9 + "%")
    result = dut.infer(10, 1, timeout=2.0)
    assert (result.elapsed_us, result.results) == (500, [0.1, 0.9])
    assert result.host_start_mono is not None and result.host_done_mono >= result.host_sent_mono
    log = (tmp_path / "dut_log.txt").read_text().splitlines()
    assert any(line.endswith("> infer 10 1%") for line in log)
    assert any(line.endswith("< m-lap-us-1500") for line in log)
    dut.link.close()


def test_timeout_names_the_command_and_shows_the_partial_line(responder) -> None:
    far = responder(lambda c: standard(c) if c != "infer 1 0" else b"m-warmup-st")
    dut = _dut(far.path, timeout=0.5)
    dut.identify(0.1)
    with pytest.raises(DutTimeout, match=r"after `infer 1 0%`.*unfinished line 'm-warmup-st'"):
        dut.infer(1, 0, timeout=0.5)


def test_boot_banner_mid_command_is_a_reset(responder) -> None:
    banner = b"m-timestamp-mode-performance\r\nm-init-done\r\nm-ready\r\n"
    far = responder(
        lambda c: b"m-warmup-start-1\r\n" + banner if c.startswith("infer") else standard(c)
    )
    dut = _dut(far.path)
    dut.identify(0.1)
    with pytest.raises(DutReset, match="rebooted during `infer 5 1%`"):
        dut.infer(5, 1, timeout=2.0)


def test_garbage_and_truncated_results_are_survived(responder) -> None:
    def script(command: str) -> bytes:
        if command.startswith("infer"):
            return (
                b"\xff\xfe\x00junk\r\nm-lap-us-1\r\nm-lap-us-11\r\nm-results-[0.1,0.\r\nm-ready\r\n"
            )
        return b"\x9c\x83" + standard(command)

    far = responder(script)
    dut = _dut(far.path)
    assert dut.identify(0.1).name == "pty responder"
    result = dut.infer(1, 0, timeout=2.0)
    assert result.results == [0.1, 0.9]  # re-read with results%
    assert far.commands[-1] == "results"
    assert any("unreadable" in note for note in result.notes)


def test_wrong_baud_is_named(responder) -> None:
    noise = bytes(range(0x80, 0x100)) * 2
    far = responder(lambda c: noise)
    dut = _dut(far.path, timeout=0.4)
    with pytest.raises(BaudMismatch, match=r"115200 baud.*set `baud:`"):
        dut.identify(0.1)


def test_dut_errors_are_reported_with_the_command(responder) -> None:
    far = responder(
        lambda c: (
            b"e-[Not enough memory]\r\nm-ready\r\n" if c.startswith("db load") else standard(c)
        )
    )
    dut = _dut(far.path)
    dut.identify(0.1)
    with pytest.raises(DeviceError, match=r"refused `db load 40%`: e-\[Not enough memory\]"):
        dut.load(bytes(40), cmd.choose_framing(cmd.Extensions(), False))


def test_passthrough_through_an_io_manager(responder) -> None:
    def board(command: str) -> bytes:
        assert command.startswith("dut "), command
        inner = command.removeprefix("dut ")
        relayed = b"".join(b"[dut]: " + line + b"\r\n" for line in standard(inner).splitlines())
        return f"m-dut-passthrough({inner})\r\nm-ready\r\n".encode() + relayed

    far = responder(board)
    dut = _dut(far.path, interface="io-manager")
    assert dut.identify(0.1).model == "kws01"
    framing = cmd.choose_framing(cmd.Extensions.parse("db64"), via_interface=True)
    dut.load(bytes(30), framing)
    assert far.commands[-3:] == ["dut db load 30", "dut db " + "00" * 26, "dut db " + "00" * 4]
    assert dut.infer(4, 1, timeout=2.0).elapsed_us == 200


# --- ports ------------------------------------------------------------------------------------


def test_missing_port_is_one_line_with_the_fix(tmp_path) -> None:
    with pytest.raises(DeviceError, match=r"does not exist; plug the board in"):
        open_port(str(tmp_path / "ttyACM9"), 115200)


def test_busy_port_is_named(responder) -> None:
    far = responder(standard)
    holder = open_port(far.path, 115200)
    try:
        with pytest.raises(DeviceError, match="is busy"):
            open_port(far.path, 115200)
    finally:
        holder.close()
    open_port(far.path, 115200).close()  # free again once released


class _Port:
    def __init__(self, device: str, vid: int, pid: int, serial_number: str) -> None:
        self.device, self.vid, self.pid, self.serial_number = device, vid, pid, serial_number


def test_discovery_by_usb_identity() -> None:
    ports = [
        _Port("/dev/ttyACM0", 0x0483, 0x374B, "A1"),
        _Port("/dev/ttyACM1", 0x0483, 0x374B, "B2"),
    ]
    assert find_port(None, "B2", ports) == "/dev/ttyACM1"
    with pytest.raises(DeviceError, match="2 serial ports match"):
        find_port("0483:374b", None, ports)
    with pytest.raises(DeviceError, match="no serial port matches usb 1234:5678"):
        find_port("1234:5678", None, ports)
    with pytest.raises(DeviceError, match="VID:PID in hex"):
        find_port("stlink", None, ports)


def test_a_cut_line_does_not_swallow_the_ready_behind_it() -> None:
    damaged, ready = rp.classify_line(b"m-results-[0.1m-ready\r\n")
    assert (damaged.kind, ready.kind) == (rp.GARBLED, rp.READY)
    relayed = rp.classify_line(b"[dut]: m-resum-ready\r\n")
    assert [r.kind for r in relayed] == [rp.GARBLED, rp.READY] and relayed[1].via_dut
    assert [r.kind for r in rp.classify_line(b"m-ready\r\n")] == [rp.READY]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_classify_line_never_raises(data: bytes) -> None:
    assert 1 <= len(rp.classify_line(data)) <= 2


def test_fuzz_the_link_never_hangs_on_any_answer(responder) -> None:
    """Whatever bytes come back (or none), a command returns or raises within its deadline."""
    answers: list[bytes] = [b""]
    far = responder(lambda command: answers[0])
    link = DutLink(open_port(far.path, 115200), "none", DutLog())
    timeout = 0.05

    @settings(max_examples=60, deadline=None)
    @given(st.binary(max_size=120), st.booleans())
    def check(data: bytes, acknowledge: bool) -> None:
        answers[0] = data + (b"\r\nm-ready\r\n" if acknowledge else b"")
        started = time.monotonic()
        try:
            replies = link.command("name", timeout)
        except DeviceError:
            replies = None
        link.drain(0.01, 0.5)  # leftovers of this example stay out of the next
        assert time.monotonic() - started < timeout + 2.0
        special = (b"m-ready", b"m-init-done", b"m-timestamp-mode-")  # ack, reboot banner
        if acknowledge and not any(word in data for word in special):
            assert replies is not None  # noise never costs the acknowledgement

    check()
    link.close()


def test_a_dut_without_a_model_id_is_refused(responder, tmp_path) -> None:
    def old_firmware(command: str) -> bytes:
        if command == "profile":
            return b"m-profile-[ULPMark for tinyML Firmware V0.0.1]\r\nm-ready\r\n"
        return standard(command)

    far = responder(old_firmware)
    device = SerialDevice({"name": "old", "port": far.path, "timeout": 1, "boot_timeout": 0.1})
    device.expect(model_for_benchmark("kws01"))
    with device, pytest.raises(DeviceError, match=r"reports no model id \(no m-model-\[...\]"):
        device.deploy(tmp_path / "model.tflite", None)

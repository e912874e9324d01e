"""Linux hwmon power rails (INA2xx, INA3221, ...) read from sysfs, here or on an SSH device.

Boards such as the Jetson Orin Nano carry their own power monitor (an INA3221 on I2C) and
expose it through the kernel's hwmon class: per chip a directory with `name`, and per channel N
`inN_input` (bus voltage, mV), `currN_input` (mA), `powerN_input` (uW, INA2xx only) and
`inN_label` (rail name, INA3221) (kernel Documentation/hwmon/ina2xx.rst, ina3221.rst). A rail's
power is `powerN_input` where the chip has it, else `currN_input` x `inN_input` (mA x mV = uW).
The trace holds the sum of the chosen rails in W; choose rails that do not contain each
other (on the Orin Nano VDD_IN is the module total and includes the others).

One sampler serves both places: a small Python program (SAMPLER below) run as a subprocess
here, or through an SSH exec channel on the device, so the code tested locally is the code
the device runs. It lists the chips, then answers the agent's clock protocol (a bare newline
-> its CLOCK_MONOTONIC in ns) so the host can measure the device's clock offset, then on
`start` reads the files every period and streams `seq t_before_ns t_after_ns value...` lines
(t = the device's clock around the reads), until `stop`. Sequence numbers count ticks, so
ticks the sampler missed (a loaded device) are gaps in the trace, not silently stretched time.

Times: local samples are already in this host's CLOCK_MONOTONIC (trace clock "monotonic",
uncertainty = half the read duration). Device samples are mapped to it with the offset
measured when recording starts; a second measurement at stop bounds the drift, and the
trace's clock_uncertainty_s states the larger of the two (plus the read duration), which the
energy code adds to every window edge.

Inferred (not stated by the sources): the INA chips update their registers every
`update_interval` ms (ina2xx default ~1-2 ms x averaging; INA3221 similar), so sampling faster
than that repeats readings; the rate is the profile's `rate_hz`, not checked against the chip.
Each read re-opens the file, as sysfs attributes report a fresh value per open+read.
"""

from __future__ import annotations

import contextlib
import json
import selectors
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..metrics.clock_mapping import ClockAnchor, ClockChannel, ClockError
from ..metrics.power_trace import PowerTrace, PowerTraceWriter
from .base import Meter, MeterError, MeterInfo
from .recording import Recording
from .registry import register

SYSFS_ROOT = "/sys/class/hwmon"
DEFAULT_RATE_HZ = 10.0
CLOCK_ROUNDS = 50
#: Samples are handed to the trace in batches of at most this long.
BATCH_S = 0.2
#: The device program. Python 3.6+, standard library only: JetPack and Raspberry Pi OS have it.
SAMPLER = r"""
import json, os, sys, threading, time
root = sys.argv[1]
out = sys.stdout
def chips():
    found = []
    for entry in sorted(os.listdir(root)):
        folder = os.path.join(root, entry)
        try:
            with open(os.path.join(folder, "name")) as handle:
                name = handle.read().strip()
            files = sorted(os.listdir(folder))
        except OSError:
            continue
        labels = {}
        for f in files:
            if f.endswith("_label"):
                with open(os.path.join(folder, f)) as handle:
                    labels[f] = handle.read().strip()
        found.append({"dir": folder, "name": name, "files": files, "labels": labels})
    return found
def read(path):
    with open(path) as handle:
        return handle.read().strip().replace(" ", "_") or "?"
def sample(period_ns, files, stop):
    tick, due, flushed = 0, time.monotonic_ns(), time.monotonic()
    while not stop.is_set():
        t0 = time.monotonic_ns()
        try:
            values = [read(f) for f in files]
        except OSError as error:
            out.write("! %s\n" % error)
            out.flush()
            return
        out.write("%d %d %d %s\n" % (tick, t0, time.monotonic_ns(), " ".join(values)))
        if time.monotonic() - flushed > 0.05:
            out.flush()
            flushed = time.monotonic()
        due += period_ns
        now = time.monotonic_ns()
        if now > due:
            missed = (now - due) // period_ns + 1
            tick, due = tick + missed, due + missed * period_ns
        tick += 1
        stop.wait(max(0.0, (due - time.monotonic_ns()) / 1e9))
    out.flush()
try:
    inventory = chips()
except OSError as error:
    inventory = {"error": str(error)}
out.write(json.dumps({"chips": inventory}) + "\n")
resolution = max(1, round(time.clock_getres(time.CLOCK_MONOTONIC) * 1e9))
out.write("edgebench-clock/1 resolution_ns=%d\n" % resolution)
out.flush()
worker, stop = None, threading.Event()
for line in sys.stdin:
    line = line.strip()
    if not line:
        out.write("%d\n" % time.monotonic_ns())
        out.flush()
    elif line.startswith("start "):
        request = json.loads(line[6:])
        stop.clear()
        job = (int(request["period_ns"]), request["files"], stop)
        worker = threading.Thread(target=sample, args=job)
        worker.start()
    elif line == "stop":
        stop.set()
        if worker is not None:
            worker.join()
        out.write("end\n")
        out.flush()
stop.set()
"""


class _Link(ABC):
    """A line-oriented pipe to the sampler: file-like enough for ClockChannel (write, flush,
    readline), plus readline with a deadline for the reader thread."""

    def __init__(self, where: str, timeout_s: float) -> None:
        self.where = where
        self.timeout_s = timeout_s
        self._buffer = b""

    @abstractmethod
    def _recv(self, timeout_s: float) -> bytes | None:
        """Bytes available within the timeout; None on timeout; b"" at end of stream."""

    @abstractmethod
    def write(self, data: bytes) -> None: ...

    def flush(self) -> None:
        """Writes are unbuffered: nothing to flush (ClockChannel calls it)."""
        return

    def stderr_tail(self) -> str:
        return ""

    @abstractmethod
    def close(self) -> None: ...

    def readline(self, timeout_s: float | None = None) -> bytes:
        """One line (b"" at the end of the stream); TimeoutError when nothing came in time."""
        deadline = time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)
        while b"\n" not in self._buffer:
            data = self._recv(max(0.0, deadline - time.monotonic()))
            if data is None:
                raise TimeoutError(f"{self.where}: the sampler sent nothing in time")
            if not data:
                line, self._buffer = self._buffer, b""
                return line
            self._buffer += data
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line + b"\n"


class _ProcessLink(_Link):
    """The sampler as a subprocess on this host."""

    def __init__(self, python: str, root: str, timeout_s: float) -> None:
        super().__init__(f"hwmon sampler ({root})", timeout_s)
        try:
            self.process = subprocess.Popen(
                [python, "-c", SAMPLER, root],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        except OSError as error:
            raise MeterError(
                f"{self.where} did not start: {python} ({error.strerror}); set python: in the "
                "meter profile to a Python 3 interpreter"
            ) from None
        assert self.process.stdout is not None and self.process.stdin is not None
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.process.stdout, selectors.EVENT_READ)

    def _recv(self, timeout_s: float) -> bytes | None:
        if not self._selector.select(timeout_s):
            return None
        return self.process.stdout.read1(65536)  # type: ignore[union-attr]

    def write(self, data: bytes) -> None:
        try:
            self.process.stdin.write(data)  # type: ignore[union-attr]
            self.process.stdin.flush()  # type: ignore[union-attr]
        except (BrokenPipeError, ValueError):
            raise EOFError(f"{self.where} has exited") from None

    def stderr_tail(self) -> str:
        if self.process.poll() is None or self.process.stderr is None:
            return ""
        lines = self.process.stderr.read().decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else ""

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.process.stdin.close()  # type: ignore[union-attr]
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._selector.close()
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


class _SshLink(_Link):
    """The sampler on an SSH device, over one exec channel."""

    def __init__(self, device: str, python: str, root: str, timeout_s: float) -> None:
        # Imported here: paramiko and the device profiles are needed only for SSH rails, and
        # every meter driver module is imported whenever any meter is looked up.
        from ..devices.base import DeviceError
        from ..devices.profiles import load_profile
        from ..devices.ssh_config import load_ssh_config, resolve_profile
        from ..devices.ssh_connect import SSH_ERRORS, connect, shell_join

        try:
            profile = load_profile(device)
            if profile.get("transport") != "ssh":
                raise MeterError(
                    f"hwmon device {device!r} is not an SSH device (transport "
                    f"{profile.get('transport')!r}); leave device: out to read this host's rails"
                )
            config = load_ssh_config(profile.get("ssh_config"))
            target = resolve_profile(profile, config)
            self.client, self._jumps = connect(
                target,
                str(profile.get("name", device)),
                config=config,
                trust_new=bool(profile.get("trust_new_host_key", False)),
                ask_password=bool(profile.get("password")),
            )
        except DeviceError as error:
            raise MeterError(f"hwmon on {device}: {error}") from None
        super().__init__(f"hwmon sampler on {target.label} ({root})", timeout_s)
        python = python or str(profile.get("python") or "python3")
        try:
            self.channel = self.client.get_transport().open_session()  # type: ignore[union-attr]
            self.channel.exec_command(shell_join([python, "-c", SAMPLER, root]))
        except SSH_ERRORS as error:
            self.close()
            raise MeterError(f"{self.where}: cannot start the sampler ({error})") from None

    def _recv(self, timeout_s: float) -> bytes | None:
        self.channel.settimeout(max(timeout_s, 1e-3))
        try:
            return self.channel.recv(65536)
        except TimeoutError:
            return None
        except OSError:
            return b""

    def write(self, data: bytes) -> None:
        try:
            self.channel.sendall(data)
        except OSError:
            raise EOFError(f"{self.where}: the SSH channel closed") from None

    def stderr_tail(self) -> str:
        if not self.channel.recv_stderr_ready():
            return ""
        lines = self.channel.recv_stderr(65536).decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else ""

    def close(self) -> None:
        for closable in (getattr(self, "channel", None), self.client, *reversed(self._jumps)):
            if closable is not None:
                with contextlib.suppress(Exception):
                    closable.close()


@register
class HwmonMeter(Meter):
    """Linux hwmon power rails (INA2xx / INA3221) via sysfs, on this host or an SSH device."""

    driver = "hwmon"
    tested_against = "emulator (fake sysfs tree; loopback sshd for the SSH path)"
    profile_keys: ClassVar[dict[str, type | tuple[type, ...]]] = {
        "sysfs_root": str,
        "chip": str,
        "rails": list,
        "rate_hz": (int, float),
        "device": str,
        "python": str,
        "timeout_s": (int, float),
    }

    def __init__(self, profile: dict[str, Any]) -> None:
        super().__init__(profile)
        self.root = str(profile.get("sysfs_root", SYSFS_ROOT))
        self.chip = profile.get("chip")
        self.wanted = [str(rail) for rail in profile.get("rails") or []]
        self.rate_hz = float(profile.get("rate_hz", DEFAULT_RATE_HZ))
        self.device = profile.get("device")
        self.timeout_s = float(profile.get("timeout_s", 5.0))
        self._require("rate_hz", self.rate_hz, 0 < self.rate_hz <= 10000, " not in (0, 10000]")
        self._link: _Link | None = None
        self._chip: dict[str, Any] | None = None
        self.rails: list[_Rail] = []
        self._anchor: ClockAnchor | None = None
        self._clock: ClockChannel | None = None
        self._recording: _Stream | None = None

    @property
    def remote(self) -> bool:
        return self.device is not None

    # -- connection ------------------------------------------------------------------------
    def open(self) -> None:
        if self._link is not None:
            return
        python = str(self.profile.get("python") or "")
        if self.remote:
            self._link = _SshLink(str(self.device), python, self.root, self.timeout_s)
        else:
            self._link = _ProcessLink(python or sys.executable, self.root, self.timeout_s)
        try:
            inventory = self._inventory()
            self._chip = self._pick_chip(inventory)
            self.rails = self._pick_rails(self._chip)
            self._clock = ClockChannel(self._link, self._link, text=False)
            self._anchor = self._measure_clock()
        except MeterError:
            self.close()
            raise
        except (ClockError, TimeoutError, EOFError) as error:
            where = self._link.where
            self.close()
            raise MeterError(f"{where}: no usable answer ({error}); check the device") from None

    def _inventory(self) -> list[dict[str, Any]]:
        assert self._link is not None
        line = self._link.readline()
        try:
            inventory = json.loads(line)["chips"]
        except (ValueError, KeyError, TypeError):
            why = self._link.stderr_tail() or line.decode(errors="replace").strip() or "no output"
            raise MeterError(
                f"{self._link.where} did not start ({why}); check python on the device"
            ) from None
        if isinstance(inventory, dict):
            raise MeterError(
                f"{self._link.where}: cannot list {self.root} ({inventory['error']}); is this "
                "Linux with hwmon, or is sysfs_root: wrong?"
            )
        return inventory

    def _pick_chip(self, chips: list[dict[str, Any]]) -> dict[str, Any]:
        names = ", ".join(c["name"] for c in chips) or "none"
        for chip in chips:
            if (self.chip is None and _channels(chip)) or chip["name"] == self.chip:
                return chip
        wanted = f"named {self.chip!r}" if self.chip else "with current or power readings"
        raise MeterError(
            f"no hwmon chip {wanted} under {self.root} (found: {names}); load the sensor's "
            "driver (e.g. modprobe ina3221) or fix chip: in the meter profile"
        )

    def _pick_rails(self, chip: dict[str, Any]) -> list[_Rail]:
        channels = _channels(chip)
        if not channels:
            raise MeterError(
                f"hwmon chip {chip['name']} at {chip['dir']} has no curr*/power* readings; "
                "pick another chip: in the meter profile"
            )
        rails = [_Rail.of(chip, n) for n in channels]
        if not self.wanted:
            return rails
        chosen = []
        for want in self.wanted:
            match = [r for r in rails if want in (r.label, str(r.channel))]
            if not match:
                known = ", ".join(f"{r.channel}={r.label}" for r in rails)
                raise MeterError(
                    f"hwmon chip {chip['name']} has no rail {want!r} (rails: {known}); fix "
                    "rails: in the meter profile"
                )
            chosen.append(match[0])
        return chosen

    def _measure_clock(self) -> ClockAnchor:
        if not self.remote:  # the sampler reads this host's CLOCK_MONOTONIC
            return ClockAnchor.identity()
        assert self._clock is not None
        return self._clock.measure(CLOCK_ROUNDS)

    def close(self) -> None:
        self._abandon_recording()
        if self._link is not None:
            self._link.close()
            self._link = None

    # -- description -----------------------------------------------------------------------
    def describe(self) -> MeterInfo:
        chip = self._chip["name"] if self._chip else self.chip or "?"
        where = f"on device {self.device}" if self.remote else "on this host"
        rails = [f"{r.label} ({'power' if r.power else 'curr x in'})" for r in self.rails]
        return MeterInfo(
            driver=self.driver,
            model=f"Linux hwmon {chip}",
            serial=self._chip["dir"] if self._chip else None,
            sample_rate_hz=self.rate_hz,
            ranges=rails,
            accuracy=dict(self.profile.get("accuracy") or {}),
            records_marks=False,
            notes=f"sum of rails {', '.join(r.label for r in self.rails)} read from sysfs "
            f"{where}; the device's own monitor, polled (costs the device CPU)",
        )

    # -- recording -------------------------------------------------------------------------
    def start(self, directory: Path, phase: str = "testing") -> None:
        self._check_can_start(self._link is not None)
        assert self._link is not None and self._anchor is not None
        writer = PowerTraceWriter(
            Path(directory),
            "power",
            self.describe().to_dict(),
            clock="monotonic",
            clock_uncertainty_s=self._anchor.bound_ns / 1e9,
        )
        fix = f"check the sensor{' and the SSH link' if self.remote else ''}, then rerun"
        self._recording = _Stream(writer, self._link, self.rails, self._anchor, self.rate_hz, fix)
        files = [f for rail in self.rails for f in rail.files]
        request = {"period_ns": round(1e9 / self.rate_hz), "files": files}
        try:
            self._link.write(("start " + json.dumps(request) + "\n").encode())
        except EOFError as error:
            self._recording.fail(str(error))
        self._recording.begin()

    def stop(self) -> PowerTrace:
        stream = self._take_recording()
        if stream.failure is None:
            try:
                assert self._link is not None
                self._link.write(b"stop\n")
            except EOFError as error:
                stream.fail(str(error))
            stream.await_end(self.timeout_s)
        if stream.failure is None and self.remote:
            try:
                stream.writer.meta["clock_uncertainty_s"] = self._drift_bound(stream)
            except (ClockError, TimeoutError, EOFError) as error:
                stream.fail(f"clock re-measurement failed ({error})")
                raise MeterError(f"{stream.failure}; trace kept, status stopped") from None
        return stream.finish()

    def _drift_bound(self, stream: _Stream) -> float:
        """The bound on mapped times over the recording: the samples used the first offset;
        a second anchor now shows how far the device clock moved since."""
        assert self._clock is not None and self._anchor is not None
        first = self._anchor
        self._anchor = later = self._clock.measure(CLOCK_ROUNDS)
        moved = abs(later.offset_ns - first.offset_ns)
        stream.writer.meta["device_clock"] = {
            "anchors": [first.to_dict(), later.to_dict()],
            "offset_change_ns": moved,
        }
        return (max(first.bound_ns, moved + later.bound_ns) + stream.max_read_ns / 2) / 1e9


class _Rail:
    """One channel's files: power (uW) alone, or current (mA) and bus voltage (mV)."""

    def __init__(self, channel: int, label: str, files: list[str], power: bool) -> None:
        self.channel = channel
        self.label = label
        self.files = files
        self.power = power

    @classmethod
    def of(cls, chip: dict[str, Any], n: int) -> _Rail:
        names = set(chip["files"])
        labels = chip["labels"]
        label = labels.get(f"in{n}_label") or labels.get(f"curr{n}_label") or f"channel {n}"
        folder = chip["dir"]
        if f"power{n}_input" in names:
            return cls(n, label, [f"{folder}/power{n}_input"], True)
        return cls(n, label, [f"{folder}/curr{n}_input", f"{folder}/in{n}_input"], False)


def _channels(chip: dict[str, Any]) -> list[int]:
    """Channels with power, or current plus bus voltage, in channel order."""
    names = set(chip["files"])
    found = []
    for name in names:
        for prefix in ("power", "curr"):
            number = name.removeprefix(prefix).removesuffix("_input")
            if name.startswith(prefix) and name.endswith("_input") and number.isdigit():
                n = int(number)
                if prefix == "power" or f"in{n}_input" in names:
                    found.append(n)
    return sorted(set(found))


class _Stream(Recording):
    """One recording: sampler lines -> W samples on this host's monotonic clock."""

    reader_name = "hwmon-reader"

    def __init__(
        self,
        writer: PowerTraceWriter,
        link: _Link,
        rails: list[_Rail],
        anchor: ClockAnchor,
        rate_hz: float,
        fix: str,
    ) -> None:
        super().__init__(writer, fix)
        self.link = link
        self.rails = rails
        self.offset_ns = anchor.offset_ns  # device - host
        self.period_ns = 1e9 / rate_hz
        self.width = sum(len(r.files) for r in rails)
        self.max_read_ns = 0
        self._next_tick = 0
        self._times: list[float] = []
        self._values: list[float] = []
        self._last_flush = time.monotonic()

    def begin(self) -> None:
        if self.failure is None:
            super().begin()

    def await_end(self, timeout_s: float) -> None:
        """Wait for the sampler's `end` after `stop`; one that never comes fails the run."""
        if not self.halt(timeout_s + 1.0):
            self.fail(f"{self.link.where} did not confirm stop within {timeout_s:g} s")

    def _run(self) -> None:
        # Silence longer than this is a dead sampler (a tick never takes more than the
        # period plus the read, and the sampler flushes every 50 ms).
        patience = self.link.timeout_s + 2 * self.period_ns / 1e9
        while self.failure is None:
            try:
                raw = self.link.readline(patience)
            except TimeoutError:
                self.fail(f"{self.link.where} stopped answering ({patience:g} s silent)")
                return
            line = raw.decode(errors="replace").strip()
            if not raw:
                why = self.link.stderr_tail()
                self.fail(f"{self.link.where} ended" + (f" ({why})" if why else ""))
                return
            if line == "end":
                self._flush()
                return
            if line.startswith("!"):
                self.fail(f"{self.link.where}: sensor read failed: {line[1:].strip()}")
                return
            with self._lock:  # close() may have ended the recording meanwhile
                if self.failure is not None:
                    return
                self._take(line)
                if time.monotonic() - self._last_flush >= BATCH_S:
                    self._flush()

    def _take(self, line: str) -> None:
        fields = line.split()
        try:
            tick, t0, t1 = int(fields[0]), int(fields[1]), int(fields[2])
            raw = [float(v) for v in fields[3:]]
            if len(raw) != self.width or t1 < t0:
                raise ValueError
        except (ValueError, IndexError):
            self.writer.event(self._host_s(None), "message", f"garbage from sampler: {line!r}")
            return
        host_t = self._host_s((t0 + t1) / 2)
        if tick != self._next_tick:
            missed = tick - self._next_tick
            self.writer.event(host_t, "gap", f"sampler missed {missed} tick(s) (device busy?)")
        self._next_tick = tick + 1
        self.max_read_ns = max(self.max_read_ns, t1 - t0)
        total_uw = 0.0
        k = 0
        for rail in self.rails:
            if rail.power:
                total_uw += raw[k]
            else:
                total_uw += raw[k] * raw[k + 1]  # mA x mV = uW
            k += len(rail.files)
        self._times.append(host_t)
        self._values.append(total_uw * 1e-6)

    def _host_s(self, device_ns: float | None) -> float:
        if device_ns is None:
            return self._times[-1] if self._times else self.writer.last_time or 0.0
        return (device_ns - self.offset_ns) / 1e9

    def _flush(self) -> None:
        with self._lock:
            if self._times and not self.writer.closed:
                self.writer.append(np.asarray(self._values), times=np.asarray(self._times))
                if self.writer.meta["clock_uncertainty_s"] is not None:
                    stated = max(self.writer.meta["clock_uncertainty_s"], self.max_read_ns / 2e9)
                    self.writer.meta["clock_uncertainty_s"] = stated
            self._times, self._values = [], []
            self._last_flush = time.monotonic()

"""Qoitech Otii Arc/Ace through the Otii 3 application's TCP server (JSON over TCP).

The Otii app (or the headless otii_server) owns the instrument and records into a project;
automation talks to it on TCP port 1905 with one JSON object per CRLF-terminated line
(Qoitech's client, qoitech/otii-tcp-client-python, is the reference for every message
shape; research/power_and_peers.md §A2). We do not depend on that client: the protocol is
small, and our reader must stream into a PowerTrace while the recording runs.

Sequence: greeting (an "information" message) -> otii_login and otii_reserve_license of an
Automation license when the profile names a user (Otii 3 requires both for scripting) ->
otii_get_devices -> arc_add_to_project -> the active project (or otii_create_project) ->
arc_set_main_voltage, arc_enable_channel mc, mv and the mark input (i1/i2), arc_set_main on.
start(): project_start_recording, project_get_last_recording; a reader thread then polls
recording_get_channel_data_count and fetches the new index range of each channel with
recording_get_channel_data (at most 40 000 values a request, as Qoitech's client does), so
the trace grows during the run and a dead server leaves what was fetched. stop():
project_stop_recording, a last fetch, then close the trace.

Times are seconds from the recording's start in the instrument's clock (trace clock
"meter"): each analog answer carries the time of its first sample and the interval; GPI
answers carry a timestamp per level change, which become "timestamp" marks (falling when the
level goes low, MLPerf Tiny's convention). Samples are current x main voltage (mc, mv).

Inferred (Qoitech documents the commands through its client's code, not every field): analog
answers' "interval" key (we fall back to 1 / the channel's sample rate), and that a GPI
channel's first entry is its level at 0 s. The password is read from the environment
variable the profile names (`password_env`), never from the profile itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..metrics.power_trace import PowerTrace, PowerTraceWriter
from .base import Meter, MeterError, MeterInfo
from .line_socket import LineSocket
from .recording import Recording
from .registry import register

DEFAULT_PORT = 1905
CHUNK = 40_000
POLL_S = 0.2
MARK_INPUTS = ("i1", "i2")
#: Arc main current: 5 nA resolution below 20 mA (Elektor review, research §A2); no
#: accuracy figure is assumed: the profile states one if the user has it.
ARC_RATE_HZ = 4000.0


class _Connection(LineSocket):
    """Request/answer over the server's JSON lines; thread-safe (one request at a time)."""

    def __init__(self, host: str, port: int, timeout_s: float) -> None:
        fix = "start the Otii 3 app with its TCP server on (or otii_server), and check host/port"
        super().__init__(
            host, port, timeout_s, f"Otii server at {host}:{port}", unreachable_fix=fix
        )
        self._lock = threading.Lock()
        self._next_id = 0
        greeting = self._message()
        if greeting.get("type") != "information":
            raise MeterError(f"{self.where} greeted with {greeting!r}; is it an Otii server?")

    def _message(self) -> dict[str, Any]:
        """The next message from the server; MeterError on silence or a closed socket."""
        line = self.read_line()
        try:
            message = json.loads(line)
        except ValueError:
            raise MeterError(f"{self.where} sent garbage: {line[:60]!r}") from None
        if not isinstance(message, dict):
            raise MeterError(f"{self.where} sent a non-object message: {line[:60]!r}")
        return message

    def request(self, cmd: str, **data: Any) -> dict[str, Any]:
        """The answer's data; MeterError naming the command and the server's reason."""
        with self._lock:
            self._next_id += 1
            trans_id = str(self._next_id)
            message = {"type": "request", "cmd": cmd, "data": data, "trans_id": trans_id}
            self.send_line(json.dumps(message))
            while True:
                answer = self._message()
                kind = answer.get("type")
                if kind in ("information", "progress") or answer.get("trans_id") != trans_id:
                    continue  # unsolicited notes, or the late answer to a timed-out request
                if kind == "error":
                    why = (answer.get("data") or {}).get("message", "")
                    raise MeterError(
                        f"{self.where} refused {cmd}: {answer.get('errorcode')}: {why}"
                    )
                return answer.get("data") or {}


@register
class OtiiMeter(Meter):
    """Qoitech Otii Arc/Ace via the Otii 3 TCP server (current x voltage, GPI marks)."""

    driver = "otii"
    emulator_module = "edgebench.lab.otii_emulator"
    tested_against = "emulator (edgebench.lab.otii_emulator on loopback TCP)"
    profile_keys: ClassVar[dict[str, type | tuple[type, ...]]] = {
        "host": str,
        "port": int,
        "username": str,
        "password_env": str,
        "device": str,
        "voltage": (int, float),
        "mark_input": (str, type(None)),
        "timeout_s": (int, float),
    }

    def __init__(self, profile: dict[str, Any]) -> None:
        super().__init__(profile)
        self.host = str(profile.get("host", "127.0.0.1"))
        self.port = int(profile.get("port", DEFAULT_PORT))
        self.voltage = float(profile.get("voltage", 3.3))
        self.mark_input = profile.get("mark_input", "i1")
        self.timeout_s = float(profile.get("timeout_s", 5.0))
        marks_ok = self.mark_input in (*MARK_INPUTS, None)
        self._require("mark_input", self.mark_input, marks_ok, "; use i1, i2 or null")
        self._link: _Connection | None = None
        self._license: int | None = None
        self.device: dict[str, Any] = {}
        self.project: int | None = None
        self.rate_hz = ARC_RATE_HZ
        self._recording: _Stream | None = None

    # -- connection ------------------------------------------------------------------------
    def open(self) -> None:
        if self._link is not None:
            return
        address = self._start_emulator()
        if address is not None:
            self.host, _, port = address.rpartition(":")
            self.port = int(port)
        try:
            self._link = _Connection(self.host, self.port, self.timeout_s)
            self._login()
            self._set_up()
        except MeterError:
            self.close()
            raise

    def _login(self) -> None:
        assert self._link is not None
        user = self.profile.get("username")
        if not user:
            return
        variable = str(self.profile.get("password_env", "OTII_PASSWORD"))
        if variable not in os.environ:
            raise MeterError(
                f"meter {self.name}: set the Otii password in ${variable} (the profile's "
                f"password_env) for user {user}"
            )
        self._link.request("otii_login", username=user, password=os.environ[variable])
        licenses = self._link.request("otii_get_licenses").get("licenses", [])
        for entry in licenses:
            addons = {a.get("id") for a in entry.get("addons") or []}
            if entry.get("available") and "Automation" in addons:
                self._link.request("otii_reserve_license", license_id=entry["id"])
                self._license = entry["id"]
                return
        raise MeterError(
            f"no free Otii license with the Automation add-on for {user} "
            f"({len(licenses)} license(s) listed); return it elsewhere or buy the add-on"
        )

    def _set_up(self) -> None:
        link = self._link
        assert link is not None
        devices = link.request("otii_get_devices", timeout=self.timeout_s).get("devices", [])
        wanted = self.profile.get("device")
        found = [
            d
            for d in devices
            if d.get("type") in ("Arc", "Ace")
            and wanted in (None, d.get("name"), d.get("device_id"))
        ]
        if not found:
            listed = ", ".join(f"{d.get('name')} ({d.get('device_id')})" for d in devices)
            want = f" named {wanted!r}" if wanted else ""
            raise MeterError(
                f"{link.where} has no Arc/Ace{want} (devices: {listed or 'none'}); connect it "
                "and check it shows in the Otii app"
            )
        self.device = found[0]
        device_id = self.device["device_id"]
        # Otii >= 3.5.2 wants the device added to the project explicitly; older servers do
        # not know the command and add it themselves, so a refusal here is no failure.
        with contextlib.suppress(MeterError):
            link.request("arc_add_to_project", device_id=device_id)
        project = link.request("otii_get_active_project").get("project_id", -1)
        if project == -1:
            project = link.request("otii_create_project")["project_id"]
        self.project = project
        link.request("arc_set_main_voltage", device_id=device_id, value=self.voltage)
        for channel in ("mc", "mv", *([self.mark_input] if self.mark_input else [])):
            link.request("arc_enable_channel", device_id=device_id, channel=channel, enable=True)
        rate = link.request("arc_get_channel_samplerate", device_id=device_id, channel="mc")
        self.rate_hz = float(rate.get("value", ARC_RATE_HZ))
        link.request("arc_set_main", device_id=device_id, enable=True)

    def close(self) -> None:
        self._abandon_recording(self.timeout_s + 5.0)
        if self._link is not None:
            with contextlib.suppress(MeterError):
                if self.device:
                    self._link.request(
                        "arc_set_main", device_id=self.device["device_id"], enable=False
                    )
                if self._license is not None:
                    self._link.request("otii_return_license", license_id=self._license)
                    self._link.request("otii_logout")
            self._link.close()
            self._link = None
        self._stop_emulator()

    # -- description -----------------------------------------------------------------------
    def describe(self) -> MeterInfo:
        notes = [f"main output at {self.voltage:g} V"]
        if self.mark_input:
            notes.append(f"marks: GPI {self.mark_input} level changes in the recording's time")
        notes += self._emulated_note("Otii server and Arc")
        return MeterInfo(
            driver=self.driver,
            model=f"Qoitech Otii {self.device.get('type', 'Arc/Ace')}",
            serial=self.device.get("device_id"),
            sample_rate_hz=self.rate_hz,
            ranges=["autorange (main current)"],
            accuracy=dict(self.profile.get("accuracy") or {}),
            records_marks=self.mark_input is not None,
            notes="; ".join(notes),
        )

    # -- recording -------------------------------------------------------------------------
    def start(self, directory: Path, phase: str = "testing") -> None:
        """Start an Otii recording and stream it into a trace; `phase` is ignored."""
        self._check_can_start(self._link is not None)
        self._link.request("project_start_recording", project_id=self.project)
        last = self._link.request("project_get_last_recording", project_id=self.project)
        writer = PowerTraceWriter(
            Path(directory),
            "current_voltage",
            {**self.describe().to_dict(), "recording": last},
            sample_period_s=1.0 / self.rate_hz,
            clock="meter",
        )
        self._recording = _Stream(
            writer, self._link, self.device["device_id"], last["recording_id"], self.mark_input
        )
        self._recording.begin()

    def stop(self) -> PowerTrace:
        stream = self._take_recording()
        stream.halt(self.timeout_s + 5.0)
        if stream.failure is None:
            try:
                assert self._link is not None
                self._link.request("project_stop_recording", project_id=self.project)
                stream.poll()
            except MeterError as error:
                stream.fail(str(error))
        return stream.finish()


class _Stream(Recording):
    """One Otii recording fetched as it grows: mc x mv samples, GPI marks."""

    reader_name = "otii-reader"
    poll_s = POLL_S

    def __init__(
        self,
        writer: PowerTraceWriter,
        link: _Connection,
        device_id: str,
        recording_id: int,
        mark_input: str | None,
    ) -> None:
        super().__init__(writer, "check the Otii app and rerun")
        self.link = link
        self.ids = {"device_id": device_id, "recording_id": recording_id}
        self.mark_input = mark_input
        self.period = float(writer.meta["sample_period_s"])
        self.fetched = 0  # analog samples fetched (both channels)
        self.marks_seen = 0
        self.level: bool | None = None

    def poll(self) -> None:
        """Everything the server holds beyond what was fetched."""
        with self._lock:
            if self.failure is not None:
                return
            counts = [self._count(c) for c in ("mc", "mv")]
            available = min(counts)
            while self.fetched < available:
                count = min(CHUNK, available - self.fetched)
                self._take(self._fetch("mc", count), self._fetch("mv", count))
            if self.mark_input:
                self._marks()

    def _count(self, channel: str) -> int:
        data = self.link.request("recording_get_channel_data_count", channel=channel, **self.ids)
        return int(data["count"])

    def _fetch(self, channel: str, count: int, index: int | None = None) -> dict[str, Any]:
        """`count` samples of `channel` from `index` on (analog ones: from those fetched)."""
        index = self.fetched if index is None else index
        return self.link.request(
            "recording_get_channel_data", channel=channel, index=index, count=count, **self.ids
        )

    def _take(self, current: dict[str, Any], voltage: dict[str, Any]) -> None:
        amps = _numbers(current["values"])
        volts = _numbers(voltage["values"])
        n = min(len(amps), len(volts))
        if n == 0:
            raise MeterError(f"{self.link.where} returned no samples at index {self.fetched}")
        start = float(current["timestamp"])
        period = float(current.get("interval") or self.period)
        good = np.isfinite(amps[:n]) & np.isfinite(volts[:n])
        if not good.all():
            self.writer.event(
                start, "message", f"{int((~good).sum())} non-numeric sample(s) from Otii dropped"
            )
        index = np.flatnonzero(good)
        values = np.column_stack([amps[:n][good], volts[:n][good]])
        breaks = np.flatnonzero(np.diff(index) != 1) + 1
        for run, positions in zip(np.split(values, breaks), np.split(index, breaks), strict=True):
            if len(positions):
                self.writer.append(run, start=start + positions[0] * period)
        self.fetched += n

    def _marks(self) -> None:
        assert self.mark_input is not None
        total = self._count(self.mark_input)
        if total <= self.marks_seen:
            return
        data = self._fetch(self.mark_input, total - self.marks_seen, self.marks_seen)
        for entry in data.get("values", []):
            level = bool(entry["value"])
            if self.level is not None and level != self.level:
                edge = "rising" if level else "falling"
                self.writer.mark(float(entry["timestamp"]), "timestamp", edge)
            self.level = level
        self.marks_seen = total


def _numbers(values: list[Any]) -> np.ndarray:
    """JSON numbers as floats; anything else (null, text) becomes NaN."""
    return np.array(
        [v if isinstance(v, int | float) and not isinstance(v, bool) else np.nan for v in values],
        dtype=np.float64,
    )

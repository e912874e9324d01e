"""A Qoitech Otii 3 TCP server stand-in on loopback, with one emulated Arc measuring a
virtual device.

It speaks the server's JSON protocol as Qoitech's own client uses it (qoitech/
otii-tcp-client-python: otii_connection.py, otii.py, arc.py, project.py, recording.py): one
JSON object per message, terminated by CRLF; requests {"type": "request", "cmd", "data",
"trans_id"}; answers {"type": "response", "cmd", "trans_id", "data"} or {"type": "error",
"cmd", "trans_id", "errorcode", "data": {"message"}}; an unsolicited {"type": "information"}
greeting on connect. Commands: otii_login / otii_logout / otii_get_licenses /
otii_reserve_license / otii_return_license, otii_get_devices, arc_add_to_project,
otii_get_active_project, otii_create_project, arc_set_main_voltage, arc_set_main,
arc_enable_channel, arc_get_channel_samplerate, project_start_recording /
project_stop_recording, project_get_last_recording, recording_get_channel_data_count,
recording_get_channel_data.

Channels: "mc" main current (A; the mean over each sample period of the activity file's
idle/active current, plus noise, at 5 nA resolution), "mv" main voltage (the set voltage),
"i1" the GPI1 input (the activity file's timestamp pin). Analog data answers carry
"timestamp" (s from the recording's start, of the first returned sample: the middle of its
period) and "interval" (s); digital ones a list of {"timestamp", "value"} level changes
starting with the level at 0 s.

Inferred (our reading; Qoitech's docs do not show every field): the greeting's fields
(here {"type": "information", "info": "connected"}), the analog answer's "interval" key and
"data_type", the error codes' wording, and that samples become readable ~20 ms after their
period ends.

Faults for tests: --stop-answering-after S (after S s of recording, requests get no answer),
--garbage-every N (every Nth analog answer carries a null sample), --devices 0.
"""

from __future__ import annotations

import argparse
import json
import socketserver
import sys
import threading
import time
from typing import Any

import numpy as np

from .emulator_serving import emulator_parser, serve_tcp
from .power_model import ActivityTimeline, PowerModel

DEVICE = {"device_id": "emulated-arc-0001", "name": "Arc", "type": "Arc"}
LICENSE = {
    "id": 4711, "type": "Pro", "available": True, "reserved_to": "", "hostname": "",
    "addons": [{"id": "Automation", "attributes": None}],
}  # fmt: skip
RESOLUTION_A = 5e-9
LAG_S = 0.02
ANALOG = ("mc", "mv")
DIGITAL = ("i1", "i2")


class OtiiError(Exception):
    """An error answer: (errorcode, message)."""


class Server:
    """The Otii application's state behind the TCP port (one project, one Arc)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = np.random.default_rng(args.seed)
        # The model is in amps: the Arc's main channel measures current.
        self.model = PowerModel(args.idle_a, args.active_a, args.noise_a, RESOLUTION_A)
        self.timeline = ActivityTimeline(args.activity, self.model)
        self.logged_in = args.username is None
        self.reserved = args.username is None
        self.voltage = 3.3
        self.main = False
        self.enabled: set[str] = set()
        self.project: int | None = None
        self.recordings: list[dict[str, Any]] = []
        self.responses = 0
        self.lock = threading.Lock()

    @property
    def silent(self) -> bool:
        after = self.args.stop_answering_after
        if after is None or not self.recordings:
            return False
        return time.monotonic_ns() - self.recordings[0]["start_ns"] >= after * 1e9

    def handle(self, cmd: str, data: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            if cmd not in ("otii_login", "otii_get_licenses", "otii_reserve_license"):
                if not self.logged_in:
                    raise OtiiError("Not logged in", "log in first (otii_login)")
                if not self.reserved and cmd != "otii_logout":
                    raise OtiiError("No license", "reserve an Automation license first")
            handler = getattr(self, f"_{cmd}", None)
            if handler is None:
                raise OtiiError("Unknown command", f"unknown command {cmd}")
            return handler(data) or {}

    # -- users and licenses --------------------------------------------------------------
    def _otii_login(self, data: dict[str, Any]) -> None:
        if (data.get("username"), data.get("password")) != (self.args.username, self.args.password):
            raise OtiiError("Login failed", "invalid username or password")
        self.logged_in = True

    def _otii_logout(self, data: dict[str, Any]) -> None:
        self.logged_in = self.args.username is None

    def _otii_get_licenses(self, data: dict[str, Any]) -> dict[str, Any]:
        if not self.logged_in:
            raise OtiiError("Not logged in", "log in first (otii_login)")
        return {"licenses": [{**LICENSE, "available": not self.reserved}]}

    def _otii_reserve_license(self, data: dict[str, Any]) -> None:
        if data.get("license_id") != LICENSE["id"]:
            raise OtiiError("License not found", f"no license {data.get('license_id')}")
        self.reserved = True

    def _otii_return_license(self, data: dict[str, Any]) -> None:
        self.reserved = self.args.username is None

    # -- devices ---------------------------------------------------------------------------
    def _otii_get_devices(self, data: dict[str, Any]) -> dict[str, Any]:
        return {"devices": [DEVICE] if self.args.devices else []}

    def _device(self, data: dict[str, Any]) -> None:
        if not self.args.devices or data.get("device_id") != DEVICE["device_id"]:
            raise OtiiError("Invalid device", f"no device {data.get('device_id')!r}")

    def _arc_add_to_project(self, data: dict[str, Any]) -> None:
        self._device(data)

    def _arc_set_main_voltage(self, data: dict[str, Any]) -> None:
        self._device(data)
        value = float(data["value"])
        if not 0.5 <= value <= 5.0:
            raise OtiiError("Invalid value", "main voltage must be 0.5..5 V")
        self.voltage = value

    def _arc_set_main(self, data: dict[str, Any]) -> None:
        self._device(data)
        self.main = bool(data["enable"])

    def _arc_enable_channel(self, data: dict[str, Any]) -> None:
        self._device(data)
        if data["channel"] not in (*ANALOG, *DIGITAL):
            raise OtiiError("Invalid channel", f"channel {data['channel']!r} is not emulated")
        (self.enabled.add if data["enable"] else self.enabled.discard)(data["channel"])

    def _arc_get_channel_samplerate(self, data: dict[str, Any]) -> dict[str, Any]:
        self._device(data)
        return {"value": self.args.rate}

    # -- projects and recordings -----------------------------------------------------------
    def _otii_get_active_project(self, data: dict[str, Any]) -> dict[str, Any]:
        return {"project_id": -1 if self.project is None else self.project}

    def _otii_create_project(self, data: dict[str, Any]) -> dict[str, Any]:
        self.project = 1
        return {"project_id": self.project}

    def _project(self, data: dict[str, Any]) -> None:
        if self.project is None or data.get("project_id") != self.project:
            raise OtiiError("Invalid project", f"no project {data.get('project_id')!r}")

    def _project_start_recording(self, data: dict[str, Any]) -> None:
        self._project(data)
        if self.recordings and self.recordings[-1]["stop_ns"] is None:
            raise OtiiError("Recording", "a recording is already running")
        self.timeline.refresh()
        number = len(self.recordings) + 1
        self.recordings.append({
            "recording_id": number, "name": f"Recording {number}",
            "start_ns": time.monotonic_ns(), "stop_ns": None,
            "channels": set(self.enabled), "main": self.main, "voltage": self.voltage,
        })  # fmt: skip

    def _project_stop_recording(self, data: dict[str, Any]) -> None:
        self._project(data)
        if self.recordings and self.recordings[-1]["stop_ns"] is None:
            self.recordings[-1]["stop_ns"] = time.monotonic_ns()

    def _project_get_last_recording(self, data: dict[str, Any]) -> dict[str, Any]:
        self._project(data)
        if not self.recordings:
            return {"recording_id": -1}
        last = self.recordings[-1]
        return {"recording_id": last["recording_id"], "name": last["name"]}

    def _recording(self, data: dict[str, Any]) -> dict[str, Any]:
        self._device(data)
        number = data.get("recording_id")
        if not isinstance(number, int) or not 1 <= number <= len(self.recordings):
            raise OtiiError("Invalid recording", f"no recording {number!r}")
        recording = self.recordings[number - 1]
        if data.get("channel") not in recording["channels"]:
            raise OtiiError("Invalid channel", f"channel {data.get('channel')!r} not recorded")
        return recording

    def _available(self, recording: dict[str, Any]) -> int:
        end = recording["stop_ns"] or time.monotonic_ns() - int(LAG_S * 1e9)
        return max(0, int((end - recording["start_ns"]) * self.args.rate / 1e9))

    def _edges(self, recording: dict[str, Any]) -> list[dict[str, Any]]:
        self.timeline.refresh()
        start = recording["start_ns"]
        end = recording["stop_ns"] or time.monotonic_ns() - int(LAG_S * 1e9)
        level = bool(self.timeline.pin.at(np.array([start]))[0] > 0.5)
        edges = [{"timestamp": 0.0, "value": level}]
        for t_ns, value in self.timeline.pin.changes(start, end):
            if bool(value > 0.5) != edges[-1]["value"]:
                edges.append({"timestamp": (t_ns - start) / 1e9, "value": bool(value > 0.5)})
        return edges

    def _recording_get_channel_data_count(self, data: dict[str, Any]) -> dict[str, Any]:
        recording = self._recording(data)
        if data["channel"] in DIGITAL:
            return {"count": len(self._edges(recording))}
        return {"count": self._available(recording)}

    def _recording_get_channel_data(self, data: dict[str, Any]) -> dict[str, Any]:
        recording = self._recording(data)
        index, count = int(data["index"]), int(data["count"])
        if data["channel"] in DIGITAL:
            return {"data_type": "digital", "values": self._edges(recording)[index : index + count]}
        available = self._available(recording)
        if index < 0 or count < 0 or index + count > available:
            raise OtiiError("Invalid range", f"index {index} + count {count} > {available}")
        period_ns = 1e9 / self.args.rate
        edges = recording["start_ns"] + np.round(np.arange(index, index + count + 1) * period_ns)
        if data["channel"] == "mv":
            values = np.full(count, recording["voltage"] if recording["main"] else 0.0)
        else:
            self.timeline.refresh()
            amps = self.timeline.level.means(edges.astype(np.int64))
            values = self.model.reading(amps if recording["main"] else np.zeros(count), self.rng)
        listed: list[float | None] = [float(v) for v in values]
        self.responses += 1
        if self.args.garbage_every and self.responses % self.args.garbage_every == 0 and count:
            listed[0] = None
        return {
            "data_type": "analog",
            "timestamp": (index + 0.5) / self.args.rate,
            "interval": 1.0 / self.args.rate,
            "values": listed,
        }


class Handler(socketserver.StreamRequestHandler):
    server: TcpServer

    def handle(self) -> None:
        self._send({"type": "information", "info": "connected"})
        for raw in self.rfile:
            line = raw.decode("utf-8", errors="replace").strip()
            if not line:
                continue
            state = self.server.state
            if state.silent:
                continue
            try:
                request = json.loads(line)
                cmd, trans_id = request["cmd"], request.get("trans_id")
            except (ValueError, KeyError, TypeError):
                self._send(_error(None, None, "Invalid JSON", line))
                continue
            try:
                data = state.handle(cmd, request.get("data") or {})
                answer = {"type": "response", "cmd": cmd, "trans_id": trans_id, "data": data}
            except OtiiError as error:
                answer = _error(cmd, trans_id, *error.args)
            except (KeyError, ValueError, TypeError) as error:
                answer = _error(cmd, trans_id, "Invalid data", repr(error))
            self._send(answer)

    def _send(self, message: dict[str, Any]) -> None:
        self.wfile.write((json.dumps(message) + "\r\n").encode())
        self.wfile.flush()


def _error(cmd: str | None, trans_id: str | None, code: str, message: str) -> dict[str, Any]:
    return {"type": "error", "cmd": cmd, "trans_id": trans_id, "errorcode": code,
            "data": {"message": message}}  # fmt: skip


class TcpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, state: Server) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.state = state


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = emulator_parser(__doc__.splitlines()[0], "a", idle=0.5e-3, active=5e-3)
    parser.add_argument("--rate", type=int, default=4000, help="samples/s (Arc: 4000)")
    parser.add_argument("--username", help="require this login (and a license reservation)")
    parser.add_argument("--password", default="")
    parser.add_argument("--stop-answering-after", type=float, metavar="S")
    parser.add_argument("--devices", type=int, default=1, help="0: no instrument connected")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    server = TcpServer(Server(parse_args(argv)))
    host, port = server.server_address[:2]
    return serve_tcp(server, f"{host}:{port}")


if __name__ == "__main__":
    sys.exit(main())

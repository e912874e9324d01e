"""Headless Chromium driven over the DevTools protocol on a pipe (--remote-debugging-pipe):
no WebDriver, no websocket library, no network port. Chromium reads NUL-terminated JSON
commands on fd 3 and writes replies and events on fd 4.

Used by the publishing tests to load the static site the way a reader would, collect console
errors and uncaught exceptions, and evaluate JavaScript against the page (clicks included).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-pipe",
)


def find_chromium() -> str | None:
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


class BrowserError(RuntimeError):
    """Chromium did not answer, or answered a command with an error."""


class Browser:
    """One headless Chromium and one page; `errors` collects what the console reported."""

    def __init__(self, executable: str, timeout: float = 60.0) -> None:
        self.timeout = timeout
        self.errors: list[str] = []
        self.events: list[dict[str, Any]] = []
        self._profile = tempfile.mkdtemp(prefix="edgebench-chromium-")
        self._next_id = 0
        self._buffer = b""
        to_child, self._write_fd = os.pipe()
        self._read_fd, from_child = os.pipe()

        def wire_fds() -> None:
            """In the child: our pipe ends become its fds 3 and 4 (moved out of the way first,
            in case either already is 3 or 4)."""
            high_in = fcntl.fcntl(to_child, fcntl.F_DUPFD, 10)
            high_out = fcntl.fcntl(from_child, fcntl.F_DUPFD, 10)
            os.dup2(high_in, 3)
            os.dup2(high_out, 4)

        self.process = subprocess.Popen(
            [executable, *FLAGS, f"--user-data-dir={self._profile}", "about:blank"],
            preexec_fn=wire_fds,
            pass_fds=(3, 4),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_child)
        os.close(from_child)
        target = self.command("Target.createTarget", {"url": "about:blank"})["targetId"]
        attached = self.command("Target.attachToTarget", {"targetId": target, "flatten": True})
        self.session = attached["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.command(f"{domain}.enable", session=True)

    def command(self, method: str, params: dict | None = None, session: bool = False) -> dict:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        os.write(self._write_fd, json.dumps(message).encode() + b"\0")
        reply = self._wait(lambda m: m.get("id") == message["id"])
        if "error" in reply:
            raise BrowserError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def open(self, path: Path) -> None:
        """Navigate to a local file and wait for its load event."""
        self.events.clear()
        self.command("Page.navigate", {"url": path.resolve().as_uri()}, session=True)
        self._wait(lambda m: m.get("method") == "Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        result = self.command(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=True
        )
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def settle(self, seconds: float = 0.3) -> None:
        """Read events for a moment, so errors raised after the load are collected too."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self._read(deadline - time.monotonic())

    def _wait(self, wanted) -> dict:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            for message in self._read(deadline - time.monotonic()):
                if wanted(message):
                    return message
        raise BrowserError(f"Chromium did not answer within {self.timeout} s")

    def _read(self, timeout: float) -> list[dict]:
        ready, _, _ = select.select([self._read_fd], [], [], max(timeout, 0))
        if not ready:
            return []
        chunk = os.read(self._read_fd, 1 << 20)
        if not chunk:
            raise BrowserError("Chromium closed the DevTools pipe (it exited)")
        self._buffer += chunk
        *complete, self._buffer = self._buffer.split(b"\0")
        messages = [json.loads(part) for part in complete if part]
        for message in messages:
            self._note(message)
        return messages

    def _note(self, message: dict) -> None:
        method, params = message.get("method"), message.get("params") or {}
        if method:
            self.events.append(message)
        if method == "Runtime.exceptionThrown":
            self.errors.append(json.dumps(params.get("exceptionDetails"))[:500])
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            self.errors.append(json.dumps(params.get("args"))[:500])
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            self.errors.append(str(params["entry"].get("text")))

    def close(self) -> None:
        with contextlib.suppress(BrowserError, OSError):
            self.command("Browser.close")
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._write_fd)
        os.close(self._read_fd)
        shutil.rmtree(self._profile, ignore_errors=True)

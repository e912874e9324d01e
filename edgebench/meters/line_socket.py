"""A TCP connection to an instrument server that speaks in lines (PTDaemon, the Otii server).

Both drivers need the same things from the socket: a deadline on every reply, and each way
the link can fail (unreachable, silent, reset, closed) as one line naming the server, so a
meter that stops answering mid-run reads the same whichever it is. The drivers keep only
their protocol on top: PTDaemon's text commands, Otii's JSON requests.
"""

from __future__ import annotations

import contextlib
import socket

from .base import MeterError


class LineSocket:
    """Lines to and from `where` (e.g. "PTDaemon at host:port"): sent ending in CR LF, as
    both servers expect; read up to LF with any CR dropped, so a bare LF is accepted too."""

    def __init__(
        self,
        host: str,
        port: int,
        timeout_s: float,
        where: str,
        *,
        unreachable_fix: str,
    ) -> None:
        self.where = where
        self.timeout_s = timeout_s
        self._buffer = b""
        try:
            self.sock = socket.create_connection((host, port), timeout=timeout_s)
        except OSError as error:
            raise MeterError(
                f"cannot reach {where} ({error.strerror or error}); {unreachable_fix}"
            ) from None

    def send_line(self, text: str) -> None:
        try:
            self.sock.sendall(text.encode() + b"\r\n")
        except OSError as error:
            raise MeterError(f"{self.where}: connection lost ({error})") from None

    def read_line(self) -> bytes:
        """The next line without its separator; MeterError on silence or a lost link."""
        while b"\n" not in self._buffer:
            try:
                data = self.sock.recv(1 << 20)
            except TimeoutError:
                raise MeterError(
                    f"{self.where} stopped answering ({self.timeout_s:g} s silent)"
                ) from None
            except OSError as error:
                raise MeterError(f"{self.where}: connection lost ({error})") from None
            if not data:
                raise MeterError(f"{self.where} closed the connection")
            self._buffer += data
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.rstrip(b"\r")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

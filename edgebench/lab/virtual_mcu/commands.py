"""Turning UART bytes into commands the way MLPerf Tiny's reference firmware does.

The firmware's receive interrupt appends characters to an 80-character buffer until `%`;
characters past the end are dropped (the command is silently truncated), and C string
handling ends the command at a NUL byte. Tokens are separated by single spaces (strtok with
" "), numbers are read with atoi (leading digits, else 0). The one edgebench extension with
a bigger buffer is `db64`, whose lines may be EXT_CMD_SIZE long.
"""

from __future__ import annotations

import re

TERMINATOR = ord("%")
CMD_SIZE = 80
EXT_CMD_SIZE = 1024
EXT_PREFIX = b"db64 "
INT_MAX = 2**31 - 1
_ATOI = re.compile(r"[ \t\n\v\f\r]*([+-]?[0-9]+)")


class LineAssembler:
    """ee_serial_callback: feed bytes, get each complete command line."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, byte: int) -> bytes | None:
        if byte == TERMINATOR:
            line = bytes(self._buffer)
            self._buffer.clear()
            size = EXT_CMD_SIZE if line.startswith(EXT_PREFIX) else CMD_SIZE
            return line[:size].split(b"\0", 1)[0]
        if len(self._buffer) < EXT_CMD_SIZE:
            self._buffer.append(byte)
        return None

    def clear(self) -> None:
        self._buffer.clear()


def tokens(line: bytes) -> list[str]:
    return [token for token in line.decode("latin-1").split(" ") if token]


def atoi(text: str) -> int:
    """C's atoi, clamped to int: '12ab' -> 12, 'ab' -> 0, '-3' -> -3."""
    match = _ATOI.match(text)
    if match is None:
        return 0
    return max(-INT_MAX - 1, min(INT_MAX, int(match.group(1))))


def printable(text: str) -> str:
    """Control characters echoed in an error become '?', so an echoed CR/LF can never
    split a reply line (reference firmware echoes them raw)."""
    return "".join(c if " " <= c < "\x7f" or c > "\x9f" else "?" for c in text)

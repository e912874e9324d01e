"""DUT -> host: bytes split into lines, each line classified into a typed reply.

Serial links deliver noise: boot chatter, bytes from a wrong baud rate, a line cut by a reset.
Nothing here raises on such input: every line becomes a `Reply`, and what cannot be read is a
`GARBLED` reply that keeps its text, so the caller decides (ignore, retry, refuse) and the raw
log still shows what came. Stray non-printable bytes in front of a well-formed message are
dropped (counted in `noise`), since that is how line noise and a half-sent previous line look.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

MAX_LINE = 1 << 16  # longer runs without a newline are cut and classified as garbled
DUT_PREFIX = "[dut]: "  # lines an interface board relays from the DUT
READY_TEXT = "m-ready"

READY = "ready"
NAME = "name"
PROFILE = "profile"
MODEL = "model"
TIMESTAMP_MODE = "timestamp-mode"
INIT_DONE = "init-done"
LAP = "lap-us"
EXPECTING = "expecting"
LOAD_DONE = "load-done"
BUFFER = "buffer"
WARMUP_START = "warmup-start"
WARMUP_DONE = "warmup-done"
INFER_START = "infer-start"
INFER_DONE = "infer-done"
RESULTS = "results"
EXTENSIONS = "extensions"
ERROR = "error"
PASSTHROUGH = "passthrough"
TEXT = "text"
GARBLED = "garbled"

#: Kinds a DUT prints only while booting: seen mid-run, the DUT has reset.
BANNER_KINDS = (TIMESTAMP_MODE, INIT_DONE)


def _int(text: str) -> int:
    return int(text)


def _floats(text: str) -> tuple[float, ...]:
    values = tuple(float(v) for v in text.split(","))
    if not all(v == v and abs(v) != float("inf") for v in values):
        raise ValueError("non-finite result")
    return values


def _hex_bytes(text: str) -> bytes:
    return bytes.fromhex(text.replace("-", ""))


def _same(text: str) -> str:
    return text


def _none(_: str) -> None:
    return None


# (kind, full-match pattern, converter of group 1). Patterns match whole lines and payloads
# are bracketed, so a truncated line never parses as a shorter valid one.
_PATTERNS: tuple[tuple[str, re.Pattern[str], Any], ...] = tuple(
    (kind, re.compile(pattern), convert)
    for kind, pattern, convert in (
        (READY, READY_TEXT, _none),
        (NAME, r"m-name-dut-\[([^\]]*)\]", _same),
        (PROFILE, r"m-profile-\[([^\]]*)\]", _same),
        (MODEL, r"m-model-\[([^\]]*)\]", _same),
        (TIMESTAMP_MODE, r"m-timestamp-mode-(performance|energy)", _same),
        (INIT_DONE, r"m-init-done", _none),
        (LAP, r"m-lap-us-(\d{1,20})", _int),
        (EXPECTING, r"m-\[Expecting (\d{1,12}) bytes\]", _int),
        (LOAD_DONE, r"m-load-done", _none),
        (BUFFER, r"m-buffer((?:-[0-9a-fA-F]{2})*)", _hex_bytes),
        (WARMUP_START, r"m-warmup-start-(\d{1,12})", _int),
        (WARMUP_DONE, r"m-warmup-done", _none),
        (INFER_START, r"m-infer-start-(\d{1,12})", _int),
        (INFER_DONE, r"m-infer-done", _none),
        (RESULTS, r"m-results-\[([-+0-9.eE, ]*)\]", _floats),
        (EXTENSIONS, r"m-ext-\[([^\]]*)\]", _same),
        (ERROR, r"e-\[(.*)\]", _same),
        (PASSTHROUGH, r"m-dut-passthrough\((.*)\)", _same),
    )
)
KINDS = (*(kind for kind, _, _ in _PATTERNS), TEXT, GARBLED)
# Message starts, used to find a message behind leading noise.
_STARTS = re.compile(r"m-|e-\[|\[dut\]: ")
# Prefixes of kinds with a payload: a line that starts so but does not parse is damaged.
_STRICT = ("m-results-", "m-lap-us-", "m-model-", "m-name-dut-", "m-profile-", "m-infer-")


@dataclass(frozen=True)
class Reply:
    """One line from the DUT (or the interface board in front of it).

    `value` depends on `kind`: str for NAME/PROFILE/MODEL/TIMESTAMP_MODE/EXTENSIONS/ERROR/
    PASSTHROUGH/TEXT/GARBLED, int for LAP/EXPECTING/WARMUP_START/INFER_START, a tuple of
    floats for RESULTS, bytes for BUFFER, None otherwise.
    """

    kind: str
    value: Any
    text: str  # the printable text the reply was read from
    via_dut: bool = False  # relayed by an interface board (`[dut]: ` prefix)
    noise: int = 0  # non-printable bytes dropped from the line
    received: float = 0.0  # host time.monotonic() when the line ended (set by the reader)

    @property
    def is_banner(self) -> bool:
        return self.kind in BANNER_KINDS


def printable(raw: bytes) -> tuple[str, int]:
    """The line's printable ASCII text and how many other bytes it held (CR/LF excluded)."""
    body = raw.rstrip(b"\r\n")
    text = "".join(chr(b) for b in body if 0x20 <= b < 0x7F or b == 0x09)
    return text, len(body) - len(text)


def classify(raw: bytes) -> Reply:
    """One raw line (with or without its CR/LF) -> a Reply. Never raises."""
    text, noise = printable(raw)
    if len(raw) > MAX_LINE:
        return Reply(GARBLED, text[:200], text[:200], noise=noise)
    text = text.strip()
    reply = _parse(text, noise)
    if reply.kind in (TEXT, GARBLED) and noise:
        found = _STARTS.search(text)
        if found and found.start() > 0:
            behind = _parse(text[found.start() :], noise)
            if behind.kind not in (TEXT, GARBLED):
                return behind
        return Reply(GARBLED, text, text, noise=noise)
    return reply


def classify_line(raw: bytes) -> list[Reply]:
    """Like classify, but a damaged line that ends in `m-ready` gives two replies.

    A line cut short loses its CR/LF, so the `m-ready` that follows lands on the same line;
    the acknowledgement must still count, or the host would wait for it forever.
    """
    reply = classify(raw)
    if reply.kind in (TEXT, GARBLED) and reply.text.endswith(READY_TEXT):
        head = reply.text[: -len(READY_TEXT)]
        if head.strip():
            damaged = Reply(GARBLED, head, head, reply.via_dut, reply.noise)
            return [damaged, Reply(READY, None, READY_TEXT, reply.via_dut)]
    return [reply]


def _parse(text: str, noise: int) -> Reply:
    via_dut = text.startswith(DUT_PREFIX)
    body = text[len(DUT_PREFIX) :].strip() if via_dut else text
    for kind, pattern, convert in _PATTERNS:
        match = pattern.fullmatch(body)
        if match is None:
            continue
        try:
            value = convert(match.group(1)) if match.groups() else None
        except ValueError:
            return Reply(GARBLED, body, text, via_dut, noise)
        return Reply(kind, value, text, via_dut, noise)
    if body.startswith(_STRICT):
        return Reply(GARBLED, body, text, via_dut, noise)
    return Reply(TEXT, body, text, via_dut, noise)


class LineSplitter:
    """Incremental bytes -> complete lines (split at LF); bounded memory on endless noise."""

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self._pending = bytearray()
        self._max = max_line

    def feed(self, data: bytes) -> list[bytes]:
        self._pending += data
        lines: list[bytes] = []
        while True:
            end = self._pending.find(b"\n")
            if end < 0:
                break
            lines.append(bytes(self._pending[: end + 1]))
            del self._pending[: end + 1]
        if len(self._pending) > self._max:
            lines.append(bytes(self._pending))
            self._pending.clear()
        return lines

    @property
    def pending(self) -> bytes:
        """A partial line not yet ended (shown in timeouts: it is often the clue)."""
        return bytes(self._pending)

"""Host -> DUT commands of MLPerf Tiny's command set, and the tensor-loading framings.

Firmware parses a command when it sees `%`; it keeps at most 80 characters (`EE_CMD_SIZE`),
so every command here is checked against that limit before it is sent, instead of being
silently cut by the DUT's ISR. A CR or LF would end up in the next command's buffer, so no
command ever carries one.

Tensors travel as `db load N` followed by chunks. The compatible framing is hex (`db HH..`,
31 bytes per command, 26 through an interface board whose own buffer is shorter); a DUT that
announces the `db64` extension in its `help` output takes base64 chunks instead, which carry
three payload bytes in four characters rather than one in two.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field

TERMINATOR = "%"
COMMAND_BUFFER = 80  # EE_CMD_SIZE: the DUT keeps this many characters, the terminator included
HEX_CHUNK_DIRECT = 31  # bytes per `db` command when talking to the DUT itself
HEX_CHUNK_PASSTHROUGH = 26  # ... and through an interface board's `dut ` prefix
DEFAULT_WARMUPS = 10  # what the DUT assumes when `infer N` has no W
PASSTHROUGH_PREFIX = "dut "
DB64 = "db64"
MODE = "mode"
_SAFE = re.compile(r"^[ -$&-~]*$")  # printable ASCII without '%'


class CommandError(ValueError):
    """A command that the DUT would misread (too long, or holding a terminator)."""


def encode(command: str, limit: int = COMMAND_BUFFER) -> bytes:
    """The bytes to write for one command: the text, then `%` (never CR/LF)."""
    if not _SAFE.match(command):
        raise CommandError(f"command {command[:40]!r} holds '%', a control or non-ASCII char")
    if len(command) + 1 > limit:
        raise CommandError(
            f"command {command[:40]!r}... is {len(command) + 1} characters with its '%', "
            f"the DUT keeps only {limit}"
        )
    return (command + TERMINATOR).encode("ascii")


def name() -> str:
    return "name"


def profile() -> str:
    return "profile"


def help_() -> str:
    return "help"


def results() -> str:
    return "results"


def db_load(size: int) -> str:
    if size <= 0:
        raise CommandError(f"db load needs a positive byte count, got {size}")
    return f"db load {size}"


def infer(iterations: int, warmups: int) -> str:
    """`infer N W`; W is always written (the DUT would assume 10 otherwise)."""
    if iterations < 1 or warmups < 0:
        raise CommandError(f"infer needs N >= 1 and W >= 0, got N={iterations} W={warmups}")
    return f"infer {iterations} {warmups}"


def mode(timing: str) -> str:
    """`mode performance|energy`: the timing switch of firmware announcing `m-ext-[mode]`."""
    return f"mode {timing}"


def passthrough(command: str) -> str:
    """The same command sent through an EEMBC IO manager or MLCommons interface board."""
    return PASSTHROUGH_PREFIX + command


@dataclass(frozen=True)
class Extensions:
    """What the firmware announced beyond the standard set (`m-ext-[...]` lines in `help`).

    Each line names one extension and its parameter, `name value` (`name:value` and
    `name=value` are read too; commas separate several). The parameter of `db64` is the
    longest command the DUT accepts, in characters; `mode` switches the timestamp mode
    (performance | energy) at run time.
    """

    tokens: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Extensions:
        tokens: dict[str, str] = {}
        for item in text.split(","):
            key, _, value = re.sub(r"[:=]", " ", item).strip().partition(" ")
            if key:
                tokens[key] = value.strip()
        return cls(tokens)

    def merged(self, other: Extensions) -> Extensions:
        return Extensions({**self.tokens, **other.tokens})

    @property
    def db64(self) -> bool:
        return DB64 in self.tokens

    def command_limit(self, name: str) -> int:
        """Longest command the DUT takes for extension `name` (80 unless it said more)."""
        value = self.tokens.get(name, "")
        return int(value) if value.isdigit() and 8 < int(value) < 1 << 20 else COMMAND_BUFFER

    def to_list(self) -> list[str]:
        return [f"{k} {v}" if v else k for k, v in sorted(self.tokens.items())]


@dataclass(frozen=True)
class Framing:
    """How a tensor is cut into `db` commands, and what that costs on the wire."""

    name: str  # "hex" | "db64"
    chunk_bytes: int
    limit: int = COMMAND_BUFFER
    prefix: str = ""  # "dut " through an interface board

    def commands(self, data: bytes) -> list[str]:
        """`db load N` then the chunks; each is one command answered by `m-ready`."""
        chunks = [data[i : i + self.chunk_bytes] for i in range(0, len(data), self.chunk_bytes)]
        if self.name == "hex":
            body = [f"db {chunk.hex()}" for chunk in chunks]
        else:
            body = [f"{DB64} {base64.b64encode(chunk).decode('ascii')}" for chunk in chunks]
        return [self.prefix + db_load(len(data)), *(self.prefix + c for c in body)]

    def wire_bytes(self, size: int) -> int:
        """Characters the host sends to load `size` bytes, terminators included."""
        return sum(len(c) + 1 for c in self.commands(bytes(size)))

    def efficiency(self, size: int) -> float:
        """Payload bytes / wire bytes for one tensor of `size` bytes (0..1)."""
        return size / self.wire_bytes(size)


def choose_framing(extensions: Extensions, via_interface: bool) -> Framing:
    """db64 when the firmware announced it (and the DUT is reached directly), hex otherwise.

    Interface boards forward `dut` commands through their own, shorter line buffer and know
    nothing of extensions, so the compatible framing is kept there.
    """
    if via_interface:
        return Framing("hex", HEX_CHUNK_PASSTHROUGH, prefix=PASSTHROUGH_PREFIX)
    if extensions.db64:
        limit = extensions.command_limit(DB64)
        room = limit - len(DB64) - 2  # the space and the terminator
        chunk = (room // 4) * 3
        if chunk > 0:
            return Framing(DB64, chunk, limit)
    return Framing("hex", HEX_CHUNK_DIRECT)

"""DUT operations of MLPerf Tiny's command set on top of a DutLink: identify, load, infer.

These are the primitives the MLPerf Tiny run method is built from; each checks the replies
the reference firmware gives (`m-[Expecting N bytes]`, `m-load-done`, two `m-lap-us-` around
the timed loop, `m-results-[...]`) and turns anything else into a one-line error naming the
command, instead of a silently wrong number.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from ..protocol import tiny_commands as cmd
from ..protocol import tiny_replies as rp
from .base import DeviceError
from .serial_link import BOOT_QUIET_S, DutLink, DutReset, DutTimeout

LAP_WRAP_US = 1 << 32  # `%lu` of a 32-bit microsecond counter wraps after 71.6 minutes
IDENTIFY_ATTEMPTS = 3  # as MLPerf Tiny's runner retries name/profile


@dataclass
class DutIdentity:
    """Who answered: `name%`, `profile%` and the extensions listed by `help%`."""

    name: str | None = None
    profile: str | None = None
    model: str | None = None
    timestamp_mode: str | None = None  # from the boot banner or the `mode` switch
    extensions: cmd.Extensions = field(default_factory=cmd.Extensions)


@dataclass
class InferResult:
    """One `infer N W`: the DUT's laps and results, and the host's view of the window."""

    iterations: int
    warmups: int
    laps_us: list[int]
    results: list[float] | None
    host_sent_unix: float
    host_sent_mono: float
    host_start_mono: float | None  # `m-infer-start` received
    host_done_mono: float  # `m-infer-done` (or m-ready) received
    notes: list[str] = field(default_factory=list)

    @property
    def elapsed_us(self) -> int | None:
        """DUT time between the two timestamps (None in energy timing: no laps)."""
        if len(self.laps_us) < 2:
            return None
        return (self.laps_us[-1] - self.laps_us[-2]) % LAP_WRAP_US

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["elapsed_us"] = self.elapsed_us
        return data


class Dut:
    """The DUT behind a link; methods map one to one onto MLPerf Tiny commands."""

    def __init__(self, link: DutLink, timeout: float) -> None:
        self.link = link
        self.timeout = timeout
        self.identity = DutIdentity()

    def identify(self, boot_timeout: float) -> DutIdentity:
        """Wait out a boot in progress, then `name%`, `profile%`, `help%`."""
        self._boot_lines(self.link.drain(BOOT_QUIET_S, boot_timeout))
        identity = self.identity
        for reply in self._retrying(cmd.name()):
            if reply.kind == rp.NAME:
                identity.name = reply.value
        for reply in self._retrying(cmd.profile()):
            if reply.kind == rp.PROFILE:
                identity.profile = reply.value
            elif reply.kind == rp.MODEL:
                identity.model = reply.value
        for reply in self._retrying(cmd.help_()):
            if reply.kind == rp.EXTENSIONS:
                identity.extensions = identity.extensions.merged(cmd.Extensions.parse(reply.value))
        if identity.name is None:
            raise DeviceError(
                f"the device on {self.link.where} answers but not with m-name-dut-[...]; is it "
                f"running MLPerf Tiny firmware (or is `interface:` in the profile wrong)?"
            )
        return identity

    def _boot_lines(self, replies: list[rp.Reply]) -> None:
        for reply in replies:
            if reply.kind == rp.TIMESTAMP_MODE:
                self.identity.timestamp_mode = reply.value

    def _retrying(self, command: str) -> list[rp.Reply]:
        """A handshake command, repeated when a boot (reset on port open) swallowed it."""
        for attempt in range(IDENTIFY_ATTEMPTS):
            try:
                replies = self.link.command(command, self.timeout)
            except DutReset:
                self._boot_lines(self.link.drain(BOOT_QUIET_S, self.timeout))
                continue
            except DutTimeout:
                if attempt == IDENTIFY_ATTEMPTS - 1:
                    raise
                continue
            self._boot_lines(replies)
            return replies
        raise DutTimeout(
            f"the DUT on {self.link.where} kept rebooting during `{command}%`; check its supply"
        )

    def set_timing(self, timing: str) -> bool:
        """Switch the timestamp mode at run time, where the firmware offers `mode`.

        MLPerf Tiny fixes the mode when the firmware is built (EE_CFG_ENERGY_MODE), a known
        source of "too few timestamps" runs; firmware announcing `m-ext-[mode]` avoids the
        rebuild. Returns False when the firmware has no such switch (nothing is sent).
        """
        if cmd.MODE not in self.identity.extensions.tokens:
            return False
        replies = self._checked(cmd.mode(timing), mode_reply=True)
        now = [r.value for r in replies if r.kind == rp.TIMESTAMP_MODE]
        if now != [timing]:
            raise DeviceError(
                f"the DUT did not switch to {timing} timing (`mode {timing}%` answered "
                f"{[r.text for r in replies]}); flash the {timing} build instead"
            )
        self.identity.timestamp_mode = timing
        return True

    def _checked(
        self,
        command: str,
        timeout: float | None = None,
        mode_reply: bool = False,
        limit: int = cmd.COMMAND_BUFFER,
    ) -> list[rp.Reply]:
        replies = self.link.command(command, timeout or self.timeout, mode_reply, limit)
        for reply in replies:
            if reply.kind == rp.ERROR:
                raise DeviceError(f"the DUT refused `{command[:40]}%`: e-[{reply.value}]")
        return replies

    def load(self, data: bytes, framing: cmd.Framing) -> int:
        """`db load N` and the chunks; returns the characters sent (for payload efficiency)."""
        commands = framing.commands(data)
        load, chunks = commands[0], commands[1:]
        if framing.prefix:  # the link adds the interface prefix itself
            load, chunks = load[len(framing.prefix) :], [c[len(framing.prefix) :] for c in chunks]
        replies = self._checked(load)
        expecting = [r.value for r in replies if r.kind == rp.EXPECTING]
        if expecting and expecting[0] != len(data):
            raise DeviceError(
                f"the DUT expects {expecting[0]} bytes after `{load}%`, not {len(data)}; "
                f"its MAX_DB_INPUT_SIZE is too small for this model's input"
            )
        done = False
        for chunk in chunks:
            replies = self._checked(chunk, limit=framing.limit)
            done = any(r.kind == rp.LOAD_DONE for r in replies) or done
        if not done:
            raise DeviceError(
                f"the DUT did not confirm the {len(data)}-byte load (no m-load-done after the "
                f"last `{framing.name}` chunk); the bytes were lost on the line or the firmware "
                f"buffer is smaller than the input"
            )
        return sum(len(c) + 1 for c in commands)

    def infer(self, iterations: int, warmups: int, timeout: float) -> InferResult:
        command = cmd.infer(iterations, warmups)
        sent_unix, sent_mono = time.time(), time.monotonic()
        replies = self._checked(command, timeout)
        started = [r.received for r in replies if r.kind == rp.INFER_START]
        finished = [r.received for r in replies if r.kind == rp.INFER_DONE]
        laps = [r.value for r in replies if r.kind == rp.LAP]
        results = [r for r in replies if r.kind == rp.RESULTS]
        garbled = [r.text for r in replies if r.kind == rp.GARBLED]
        notes = [f"unreadable line {text[:60]!r}" for text in garbled]
        values = list(results[-1].value) if results else None
        if values is None:
            values = self.results()
            notes.append("m-results missing or damaged after infer; read again with results%")
        return InferResult(
            iterations=iterations,
            warmups=warmups,
            laps_us=laps,
            results=values,
            host_sent_unix=sent_unix,
            host_sent_mono=sent_mono,
            host_start_mono=started[0] if started else None,
            host_done_mono=finished[-1] if finished else time.monotonic(),
            notes=notes,
        )

    def results(self) -> list[float]:
        """`results%`: the last result vector, printed again."""
        found = [r for r in self._checked(cmd.results()) if r.kind == rp.RESULTS]
        if not found:
            raise DeviceError(
                f"no readable m-results-[...] from the DUT on {self.link.where}, also not after "
                f"`results%`; the line is damaged (noise, or a baud rate at its limit)"
            )
        return list(found[-1].value)

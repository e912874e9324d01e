"""Device clock -> host clock: NTP-style offset estimation, drift, and an honest error bound.

The per-query times arrive in the device's clock; meters and the host time things in the host's
CLOCK_MONOTONIC. Energy windows can only be cut once both are on one timeline, and only as
precisely as the mapping is known, so every mapping carries a bound, not a guess.

One exchange is: host reads t_send, asks the device for its time, the device answers T, host
reads t_recv. Whatever the delays in each direction, T was read between t_send and t_recv, so
the true offset (device - host) lies in [T - t_recv, T - t_send]: a hard interval of width one
round trip. Its midpoint is the classic NTP estimate; half the round trip bounds its error,
even for badly asymmetric delays. Of N rounds the fastest are kept and their intervals
intersected (each widened by the largest plausible drift over its distance in time from the
reference round), which can only tighten the bound below half the best round trip.

Two such anchors, before and after a run, give the drift and a linear mapping between them.
Between the anchors the bound is the interpolation of the anchors' bounds plus an allowance
for the clocks' rates wandering (temperature, NTP slewing); beyond them it grows with the
distance, so a time far from both anchors is honestly known less well. A mapping from one
anchor alone assumes the worst plausible drift.

Tiers (written into clock.json, consumed by the energy work):
  same-clock   the device is the host (one CLOCK_MONOTONIC): identity, zero error
  round-trip   estimated by the exchanges above (SSH devices, a shifted local test clock)
  meter-marks  the meter recorded the device's timestamp marks (serial DUTs); set by that code
"""

from __future__ import annotations

import contextlib
import io
import math
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import IO, Any

import numpy as np

TIERS = ("same-clock", "round-trip", "meter-marks")
#: The clock server's greeting (edgebench/agent/clock.py HELLO; not imported: the agent is
#: a separate package on the device, and this is the wire protocol's constant).
HELLO = "edgebench-clock/1"
DEFAULT_ROUNDS = 200
DEFAULT_KEEP = 0.1
#: The largest rate difference assumed where none was measured. Linux slews CLOCK_MONOTONIC by
#: at most 500 ppm (the kernel's NTP frequency limit); crystals are within ~100 ppm.
MAX_DRIFT_PPM = 500.0
#: Allowed change of the rate difference during a run (a board warming its crystal, NTP
#: adjusting either side); the linear mapping between two anchors cannot see it.
WANDER_PPM = 5.0
HELLO_LINES = 100

Exchange = Callable[[], tuple[int, int, int]]


class ClockError(RuntimeError):
    """The device's clock could not be measured; the message says why and what to check."""


def host_resolution_ns() -> int:
    return max(1, round(time.clock_getres(time.CLOCK_MONOTONIC) * 1e9))


@dataclass(frozen=True)
class ClockAnchor:
    """The offset (device - host) at one host instant, with a hard bound on its error."""

    host_ns: int
    offset_ns: float
    bound_ns: float
    rounds: int = 0
    best_round_trip_ns: int | None = None
    same_clock: bool = False
    note: str = ""

    @classmethod
    def identity(cls, host_ns: int | None = None) -> ClockAnchor:
        """The device reads the host's own clock: nothing to estimate."""
        return cls(time.monotonic_ns() if host_ns is None else host_ns, 0.0, 0.0, same_clock=True)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClockAnchor:
        return cls(**data)


def anchor_from_rounds(
    rounds: Sequence[tuple[int, int, int]],
    keep: float = DEFAULT_KEEP,
    device_resolution_ns: int = 1,
    max_drift_ppm: float = MAX_DRIFT_PPM,
) -> ClockAnchor:
    """One anchor from (host_send_ns, device_ns, host_receive_ns) exchanges; see module doc."""
    if not rounds:
        raise ClockError("no clock exchanges to estimate from")
    for send, _, receive in rounds:
        if receive < send:
            raise ClockError(f"host clock went backwards in an exchange ({send} > {receive})")
    ordered = sorted(rounds, key=lambda r: r[2] - r[0])
    kept = ordered[: max(1, math.ceil(keep * len(ordered)))]
    best_send, best_device, best_receive = kept[0]
    reference = (best_send + best_receive) // 2
    low, high = -math.inf, math.inf
    for send, device, receive in kept:
        widen = max_drift_ppm * 1e-6 * abs((send + receive) / 2 - reference)
        low = max(low, device - receive - widen)
        high = min(high, device - send + widen)
    note = ""
    if low > high:  # a stepped clock or a drift beyond max_drift_ppm: trust only the best round
        low, high = best_device - best_receive, best_device - best_send
        note = "round intervals disagree (clock stepped?); used the best round alone"
    return ClockAnchor(
        host_ns=reference,
        offset_ns=(low + high) / 2,
        bound_ns=(high - low) / 2 + device_resolution_ns + host_resolution_ns(),
        rounds=len(rounds),
        best_round_trip_ns=best_receive - best_send,
        note=note,
    )


def estimate_offset(
    exchange: Exchange,
    rounds: int = DEFAULT_ROUNDS,
    keep: float = DEFAULT_KEEP,
    device_resolution_ns: int = 1,
    max_drift_ppm: float = MAX_DRIFT_PPM,
) -> ClockAnchor:
    """Run `rounds` exchanges back to back and turn them into one anchor."""
    samples = [exchange() for _ in range(rounds)]
    return anchor_from_rounds(samples, keep, device_resolution_ns, max_drift_ppm)


@dataclass
class ClockMapping:
    """host_ns = f(device_ns) with its error bound; written as the run's clock.json.

    offset_ns is device - host at reference_host_ns (the first anchor); drift_ppm is how much
    faster the device clock runs; uncertainty_ns bounds the error anywhere between the anchors
    (use uncertainty_at() for a given time, which also covers times outside them).
    """

    tier: str
    offset_ns: float
    drift_ppm: float
    uncertainty_ns: float
    rounds: int
    best_round_trip_ns: int | None
    method: str
    reference_host_ns: int = 0
    drift_uncertainty_ppm: float = 0.0
    wander_ppm: float = WANDER_PPM
    max_drift_ppm: float = MAX_DRIFT_PPM
    anchors: list[ClockAnchor] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.tier not in TIERS:
            raise ValueError(f"clock tier {self.tier!r}: expected one of {', '.join(TIERS)}")

    @classmethod
    def identity(cls) -> ClockMapping:
        return cls.from_anchors(ClockAnchor.identity())

    @classmethod
    def from_anchors(
        cls,
        before: ClockAnchor,
        after: ClockAnchor | None = None,
        channel: str = "",
        wander_ppm: float = WANDER_PPM,
        max_drift_ppm: float = MAX_DRIFT_PPM,
    ) -> ClockMapping:
        """The mapping from an anchor taken before the run and (if it could be) one after."""
        anchors = [a for a in (before, after) if a is not None]
        if all(a.same_clock for a in anchors):
            return cls(
                "same-clock", 0.0, 0.0, 0.0, 0, None,
                "the device reads the host's CLOCK_MONOTONIC: identity mapping, no error",
                reference_host_ns=before.host_ns, wander_ppm=0.0, max_drift_ppm=0.0,
                anchors=anchors,
            )  # fmt: skip
        rounds = sum(a.rounds for a in anchors)
        trips = [a.best_round_trip_ns for a in anchors if a.best_round_trip_ns is not None]
        best = min(trips) if trips else None
        via = f" over {channel}" if channel else ""
        kept = f"fastest {DEFAULT_KEEP:.0%} of each anchor's rounds"
        if after is None or after.host_ns == before.host_ns:
            return cls(
                "round-trip", before.offset_ns, 0.0, before.bound_ns, rounds, best,
                f"NTP-style round trips{via} before the run only ({kept}); drift not "
                f"measured: the bound grows by {max_drift_ppm:g} ppm of the time from the anchor",
                reference_host_ns=before.host_ns, drift_uncertainty_ppm=max_drift_ppm,
                wander_ppm=wander_ppm, max_drift_ppm=max_drift_ppm, anchors=anchors,
            )  # fmt: skip
        span = after.host_ns - before.host_ns
        drift = (after.offset_ns - before.offset_ns) / span * 1e6
        return cls(
            "round-trip", before.offset_ns, drift,
            max(before.bound_ns, after.bound_ns) + wander_ppm * 1e-6 * abs(span), rounds, best,
            f"NTP-style round trips{via} before and after the run ({kept}, intervals "
            "intersected); offset at the first anchor, drift from the two anchors, bound = "
            "anchors' bounds interpolated + wander allowance, growing beyond the anchors",
            reference_host_ns=before.host_ns,
            drift_uncertainty_ppm=(before.bound_ns + after.bound_ns) / abs(span) * 1e6,
            wander_ppm=wander_ppm, max_drift_ppm=max_drift_ppm, anchors=anchors,
        )  # fmt: skip

    @property
    def reference_device_ns(self) -> float:
        return self.reference_host_ns + self.offset_ns

    def offset_at(self, host_ns: Any) -> Any:
        """device - host at a host time (scalar or array)."""
        return self.offset_ns + self.drift_ppm * 1e-6 * (
            np.asarray(host_ns) - self.reference_host_ns
        )

    def to_host_ns(self, device_ns: Any) -> Any:
        """Host CLOCK_MONOTONIC ns (float) for device ns (scalar or array)."""
        elapsed = np.asarray(device_ns, dtype=np.float64) - self.reference_device_ns
        return self.reference_host_ns + elapsed / (1.0 + self.drift_ppm * 1e-6)

    def uncertainty_at(self, device_ns: Any) -> Any:
        """The error bound (ns) of to_host_ns at a device time; grows away from the anchors."""
        return self.uncertainty_at_host(self.to_host_ns(device_ns))

    def uncertainty_at_host(self, host_ns: Any) -> Any:
        host = np.asarray(host_ns, dtype=np.float64)
        if self.tier == "same-clock":
            return np.zeros_like(host)[()]
        if not self.anchors:  # a mapping read from a file without its anchors: no better answer
            return np.full_like(host, self.uncertainty_ns)[()]
        first = self.anchors[0]
        if len(self.anchors) == 1:
            return (first.bound_ns + self.max_drift_ppm * 1e-6 * np.abs(host - first.host_ns))[()]
        last = self.anchors[-1]
        weight = (host - first.host_ns) / (last.host_ns - first.host_ns)
        nearest = np.minimum(np.abs(host - first.host_ns), np.abs(host - last.host_ns))
        return (
            np.abs(1.0 - weight) * first.bound_ns
            + np.abs(weight) * last.bound_ns
            + 2.0 * self.wander_ppm * 1e-6 * nearest
        )[()]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["anchors"] = [a.to_dict() for a in self.anchors]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClockMapping:
        fields = dict(data)
        fields["anchors"] = [ClockAnchor.from_dict(a) for a in fields.get("anchors") or []]
        return cls(**fields)


class ClockChannel:
    """The host end of the agent's `--clock` protocol over any pair of file objects.

    Works with binary or text files that have write/flush/readline: subprocess pipes here,
    an SSH channel's stdin/stdout (paramiko ChannelFile) for SSH devices. The greeting line is
    awaited first, so interpreter start-up and login-shell chatter never count as a round trip.
    """

    def __init__(self, to_device: IO[Any], from_device: IO[Any], text: bool | None = None) -> None:
        self._to = to_device
        self._from = from_device
        text = isinstance(to_device, io.TextIOBase) if text is None else text
        self._request: Any = "\n" if text else b"\n"
        self.resolution_ns = self._await_hello()

    def _await_hello(self) -> int:
        for _ in range(HELLO_LINES):
            line = self._from.readline()
            if not line:
                raise ClockError("the device's clock server closed before greeting")
            if isinstance(line, bytes):
                line = line.decode(errors="replace")
            if line.startswith(HELLO):
                fields = dict(p.split("=", 1) for p in line.split()[1:] if "=" in p)
                return max(1, int(fields.get("resolution_ns", 1)))
        raise ClockError(f"no {HELLO!r} greeting in the first {HELLO_LINES} lines")

    def exchange(self) -> tuple[int, int, int]:
        """One round: (host_send_ns, device_ns, host_receive_ns)."""
        now, write, flush, readline = (
            time.monotonic_ns,
            self._to.write,
            self._to.flush,
            self._from.readline,
        )
        send = now()
        write(self._request)
        flush()
        line = readline()
        receive = now()
        try:
            return send, int(line), receive
        except ValueError:
            raise ClockError(f"the clock server answered {line!r}, not a time in ns") from None

    def measure(
        self, rounds: int = DEFAULT_ROUNDS, keep: float = DEFAULT_KEEP, **kwargs: Any
    ) -> ClockAnchor:
        return estimate_offset(self.exchange, rounds, keep, self.resolution_ns, **kwargs)


def measure_subprocess(
    command: Sequence[str],
    env: dict[str, str] | None = None,
    rounds: int = DEFAULT_ROUNDS,
    keep: float = DEFAULT_KEEP,
    timeout: float = 30.0,
) -> ClockAnchor:
    """Start a `--clock` server (e.g. `python -m edgebench.agent --clock`), take one anchor."""
    with subprocess.Popen(
        list(command),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    ) as process:
        assert process.stdin is not None and process.stdout is not None
        try:
            return ClockChannel(process.stdin, process.stdout).measure(rounds, keep)
        except (ClockError, OSError) as error:
            process.kill()
            tail = (process.stderr.read() if process.stderr else b"").decode(errors="replace")
            last = tail.strip().splitlines()[-1:] or ["no error output"]
            raise ClockError(
                f"clock measurement via {command[0]} failed: {error}; {last[0]}"
            ) from None
        finally:
            with contextlib.suppress(OSError):
                process.stdin.close()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()

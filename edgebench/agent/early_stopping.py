"""MLPerf LoadGen's early-stopping criterion, re-derived with the standard library only.

The model (MLPerf Inference rules, "Early Stopping Criterion"; LoadGen ``early_stopping.cc``):
each query independently meets the latency bound with probability ``p`` (the target
percentile). Having seen ``t`` over-latency queries, ``h(t)`` is the smallest number of
under-latency queries such that a system that *just* misses the percentile would show at most
``t`` over-latency queries in ``h + t`` trials with probability below ``1 - c``::

    P[Binomial(h + t, 1 - p) <= t] < 1 - c        (c = 0.99, tolerance d = 0)

LoadGen evaluates the left side as a regularized incomplete beta (lgamma + a 2F1 series) inside
a cached binary search over ``h``. Here the binomial CDF is summed term by term from a
saddle-point log-pmf (Loader's method: Stirling remainders and a stable deviance term), which
keeps ~1e-14 relative accuracy without scipy, even for n around 1e8.

Two identities keep everything fast. Because the CDF above decreases as ``h`` grows,
``n >= h(t) + t`` holds exactly when ``P[Binomial(n, 1 - p) <= t] < 1 - c``. So:

* SingleStream/MultiStream: the largest ``t`` with ``n >= h(t) + t`` (LoadGen's linear scan
  over ``t``) is the largest ``t`` whose binomial CDF at fixed ``n`` stays below ``1 - c``:
  one binary search over ``t`` on a single distribution.
* Server: with ``t`` over-latency queries the run passes iff that same CDF is below ``1 - c``.

Every search starts from a normal-approximation bracket, so a call costs a handful of CDF
evaluations even at n = 1e8.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from statistics import NormalDist
from typing import List, Optional, Sequence

CONFIDENCE = 0.99
TOLERANCE = 0.0
# The percentile LoadGen also estimates in SingleStream, so MultiStream can be inferred.
MULTISTREAM_PERCENTILE = 0.99

_LOG_2PI = math.log(2.0 * math.pi)
_HALF_LOG_2PI = 0.5 * _LOG_2PI
# Coefficients of the Stirling-series remainder log(n!) - log(sqrt(2 pi n) (n/e)^n).
_S0, _S1, _S2, _S3, _S4 = 1 / 12, 1 / 360, 1 / 1260, 1 / 1680, 1 / 1188
_NEGLIGIBLE = 1e-17


def _stirling_remainder(n: float) -> float:
    """log(n!) minus Stirling's approximation; the series is exact to double precision above 15."""
    if n <= 15.0:
        return math.lgamma(n + 1.0) - (n + 0.5) * math.log(n) + n - _HALF_LOG_2PI
    nn = n * n
    if n > 500.0:
        return (_S0 - _S1 / nn) / n
    if n > 80.0:
        return (_S0 - (_S1 - _S2 / nn) / nn) / n
    if n > 35.0:
        return (_S0 - (_S1 - (_S2 - _S3 / nn) / nn) / nn) / n
    return (_S0 - (_S1 - (_S2 - (_S3 - _S4 / nn) / nn) / nn) / nn) / n


def _deviance(x: float, mean: float) -> float:
    """x*log(x/mean) + mean - x without the cancellation that ruins it when x is near mean."""
    if abs(x - mean) < 0.1 * (x + mean):
        v = (x - mean) / (x + mean)
        total = (x - mean) * v
        term = 2.0 * x * v
        v2 = v * v
        j = 1
        while True:
            term *= v2
            updated = total + term / (2 * j + 1)
            if updated == total:
                return updated
            total = updated
            j += 1
    return x * math.log(x / mean) + mean - x


def binomial_log_pmf(k: int, n: int, w: float) -> float:
    """log P[Binomial(n, w) = k], accurate to ~1e-14 relative even for n ~ 1e9."""
    if k < 0 or k > n:
        return -math.inf
    q = 1.0 - w
    if k == 0:
        return n * math.log1p(-w)
    if k == n:
        return n * math.log(w)
    main = (
        _stirling_remainder(n)
        - _stirling_remainder(k)
        - _stirling_remainder(n - k)
        - _deviance(k, n * w)
        - _deviance(n - k, n * q)
    )
    return main - 0.5 * (_LOG_2PI + math.log(k) + math.log1p(-k / n))


def _sum_down(k: int, n: int, w: float) -> float:
    """Sum of P[X = j] for j = k, k-1, ..., 0, stopping once the rest is negligible."""
    log_term = binomial_log_pmf(k, n, w)
    if log_term < -745.0:
        return 0.0
    term = math.exp(log_term)
    total = term
    odds = (1.0 - w) / w
    j = k
    while j > 0:
        ratio = j / (n - j + 1) * odds
        term *= ratio
        total += term
        j -= 1
        # Below the mode the ratios only shrink, so the rest is bounded by a geometric series.
        if ratio < 1.0 and term * ratio / (1.0 - ratio) <= _NEGLIGIBLE * total:
            break
    return total


def _sum_up(k: int, n: int, w: float) -> float:
    """Sum of P[X = j] for j = k, k+1, ..., n (the upper tail), stopping when negligible."""
    log_term = binomial_log_pmf(k, n, w)
    if log_term < -745.0:
        return 0.0
    term = math.exp(log_term)
    total = term
    odds = w / (1.0 - w)
    j = k
    while j < n:
        ratio = (n - j) / (j + 1) * odds
        term *= ratio
        total += term
        j += 1
        if ratio < 1.0 and term * ratio / (1.0 - ratio) <= _NEGLIGIBLE * total:
            break
    return total


def binomial_cdf(k: int, n: int, w: float) -> float:
    """P[Binomial(n, w) <= k], summing whichever tail is the small one."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    if w <= 0.0:
        return 1.0
    if w >= 1.0:
        return 0.0
    if k <= n * w:
        return min(1.0, _sum_down(k, n, w))
    return max(0.0, 1.0 - _sum_up(k + 1, n, w))


def _passes(n: int, t: int, percentile: float) -> bool:
    """n >= h(t) + t, i.e. t over-latency queries out of n are few enough at confidence c."""
    return binomial_cdf(t, n, 1.0 - (percentile - TOLERANCE)) < 1.0 - CONFIDENCE


_Z = NormalDist().inv_cdf(1.0 - CONFIDENCE)


def _bracket_search(lo: int, hi: int, good, low_limit: int, high_limit: int) -> int:
    """Largest x in [low_limit, high_limit] with good(x) True, given good is monotone (True
    then False); returns low_limit - 1 if none. lo/hi are a guess, widened until they bracket."""
    lo = max(low_limit, min(lo, high_limit))
    hi = max(lo, min(hi, high_limit))
    step = max(1, hi - lo)
    while lo > low_limit and not good(lo):
        hi = lo
        lo = max(low_limit, lo - step)
        step *= 2
    if not good(lo):
        return low_limit - 1
    step = max(1, hi - lo)
    while hi < high_limit and good(hi):
        lo = hi
        hi = min(high_limit, hi + step)
        step *= 2
    if good(hi):
        return hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if good(mid):
            lo = mid
        else:
            hi = mid
    return lo


@lru_cache(maxsize=4096)
def max_overlatency_queries(n: int, percentile: float) -> int:
    """Largest t with n >= h(t) + t, or -1 when n is too small even for t = 0."""
    if n <= 0:
        return -1
    w = 1.0 - (percentile - TOLERANCE)
    sigma = math.sqrt(n * w * (1.0 - w))
    skew = (1.0 - 2.0 * w) / sigma if sigma > 0 else 0.0
    guess = n * w + sigma * (_Z + (_Z * _Z - 1.0) * skew / 6.0) - 0.5
    spread = 8 + int(0.05 * sigma)
    center = int(guess)
    return _bracket_search(
        center - spread, center + spread, lambda t: _passes(n, t, percentile), 0, n
    )


@lru_cache(maxsize=4096)
def min_passing_queries(t: int, percentile: float) -> int:
    """h(t): the fewest under-latency queries that, next to t over-latency ones, pass."""
    if t < 0:
        raise ValueError(f"over-latency count must be >= 0, got {t}")
    w = 1.0 - (percentile - TOLERANCE)
    # Normal approximation: t = N w + z sqrt(N w (1 - w)), solved for sqrt(N).
    a, b = w, _Z * math.sqrt(w * (1.0 - w))
    root = (-b + math.sqrt(b * b + 4.0 * a * t)) / (2.0 * a)
    guess = max(1, int(root * root) - t)
    spread = 8 + int(0.05 * math.sqrt(guess + t))
    # "h fails" is monotone (True then False) in h; the answer is one past the last failure.
    upper = max(4 * (guess + spread) + 64, 2 * guess)
    last_fail = _bracket_search(
        guess - spread, guess + spread, lambda h: not _passes(h + t, t, percentile), 1, upper
    )
    while last_fail == upper:  # the bound was too tight; only conceivable for extreme inputs
        upper *= 2
        last_fail = _bracket_search(
            upper // 2, upper, lambda h: not _passes(h + t, t, percentile), 1, upper
        )
    return max(1, last_fail + 1)


def min_queries(percentile: float) -> int:
    """Queries needed before any early-stopping estimate exists: h(1) + 1 (64 at p90)."""
    return min_passing_queries(1, percentile) + 1


def _percent(percentile: float) -> str:
    return f"{percentile * 100:.1f}"


@dataclass
class EarlyStopping:
    """Outcome of the criterion for one run, with LoadGen-style summary lines."""

    met: bool
    queries: int
    percentile: float
    overlatency_kept: int = 0  # t: the estimate is sorted[n - t]
    estimate_ns: Optional[int] = None
    lines: List[str] = field(default_factory=list)
    reason: str = ""  # one line for result_invalid_reasons when not met

    @property
    def discarded(self) -> int:
        return max(0, self.overlatency_kept - 1)


def latency_estimate(sorted_latencies: Sequence[int], percentile: float) -> EarlyStopping:
    """SingleStream/MultiStream: the percentile estimate after discarding t - 1 highest."""
    n = len(sorted_latencies)
    needed = min_queries(percentile)
    t = max_overlatency_queries(n, percentile)
    if t < 1:
        reason = (
            f"Only processed {n} queries. Need to process at least {needed} queries "
            f"for early stopping."
        )
        lines = [
            f" * Only processed {n} queries.",
            f" * Need to process at least {needed} queries for early stopping.",
        ]
        return EarlyStopping(False, n, percentile, 0, None, lines, reason)
    estimate = int(sorted_latencies[n - t])
    lines = [
        f" * Processed at least {needed} queries ({n}).",
        f" * Would discard {t - 1} highest latency queries.",
        f" * Early stopping {_percent(percentile)}th percentile estimate: {estimate}",
    ]
    return EarlyStopping(True, n, percentile, t, estimate, lines)


def secondary_estimate(sorted_latencies: Sequence[int], percentile: float) -> EarlyStopping:
    """SingleStream's extra p99 estimate (for inferring MultiStream); never invalidates a run."""
    n = len(sorted_latencies)
    t = max_overlatency_queries(n, percentile)
    if t < 1:
        lines = [
            f" * Not enough queries processed for {_percent(percentile)}th percentile",
            " early stopping estimate (would need to process at",
            f" least {min_queries(percentile)} total queries).",
        ]
        return EarlyStopping(False, n, percentile, 0, None, lines)
    estimate = int(sorted_latencies[n - t])
    lines = [f" * Early stopping {_percent(percentile)}th percentile estimate: {estimate}"]
    return EarlyStopping(True, n, percentile, t, estimate, lines)


def server_check(queries: int, overlatency: int, percentile: float) -> EarlyStopping:
    """Server: with `overlatency` queries over the bound, valid iff n >= h(t) + t."""
    if queries > 0 and _passes(queries, overlatency, percentile):
        return EarlyStopping(True, queries, percentile, overlatency, None, [" * Run successful."])
    more = min_passing_queries(overlatency, percentile) + overlatency - queries
    lines = [
        " * Run unsuccessful.",
        f" * Processed {queries} queries.",
        f" * Would need to run at least {more} more queries,",
        " with the run being successful if every additional",
        " query were under latency.",
    ]
    reason = (
        f"Early stopping not met: {overlatency} of {queries} queries over the latency bound; "
        f"would need at least {more} more queries, all under the bound."
    )
    return EarlyStopping(False, queries, percentile, overlatency, None, lines, reason)

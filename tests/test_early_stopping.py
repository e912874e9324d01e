"""Early stopping against LoadGen's published numbers and an exact integer binomial."""

from __future__ import annotations

import math
import time
from fractions import Fraction

import pytest

from edgebench.agent import early_stopping as es

# p as the exact fraction (under-latency odds) the integer brute force uses: p = (base-1)/base.
BASES = {0.9: 10, 0.99: 100}


def exact_fails(total: int, t: int, base: int) -> bool:
    """P[Binomial(total, 1/base) <= t] >= 1/100, in exact integer arithmetic."""
    under = base - 1
    mass = sum(math.comb(total, j) * under ** (total - j) for j in range(t + 1))
    return 100 * mass >= base**total


def brute_h(t: int, base: int, start: int = 1) -> int:
    h = max(1, start)
    while exact_fails(h + t, t, base):
        h += 1
    return h


def loadgen_scan(n: int, base: int, h_of) -> int:
    """LoadGen's results.cc loop: t = 1 if n >= h(1) + 1, then the first i failing gives i-1."""
    if n < h_of(1) + 1:
        return 0
    for i in range(2, n + 1):
        if n < h_of(i) + i:
            return i - 1
    return 1


@pytest.mark.parametrize(
    ("percentile", "minimum", "at_zero"),
    [(0.90, 64, 44), (0.99, 662, 459), (0.999, 6636, 4603)],
)
def test_minimum_query_counts_match_loadgen(percentile, minimum, at_zero):
    assert es.min_queries(percentile) == minimum
    assert es.min_passing_queries(0, percentile) == at_zero


@pytest.mark.parametrize(("queries", "kept"), [(659, 48), (1000, 78), (24576, 2348), (100, 3)])
def test_penalty_at_p90_matches_loadgen(queries, kept):
    # 659 -> "Would discard 47" is from a public LoadGen log; 100 -> 2 discarded was read back
    # from LoadGen 6.0.17 itself.
    assert es.max_overlatency_queries(queries, 0.90) == kept


def test_latency_estimate_discards_t_minus_one_highest():
    latencies = list(range(1000, 1659))
    result = es.latency_estimate(latencies, 0.90)
    assert result.met and result.overlatency_kept == 48 and result.discarded == 47
    assert result.estimate_ns == latencies[659 - 48]
    assert " * Would discard 47 highest latency queries." in result.lines
    assert " * Processed at least 64 queries (659)." in result.lines


def test_too_few_queries_is_not_met_with_loadgen_reason():
    result = es.latency_estimate(list(range(63)), 0.90)
    assert not result.met and result.estimate_ns is None
    assert "Need to process at least 64 queries" in result.reason
    assert es.latency_estimate(list(range(64)), 0.90).met


def test_secondary_p99_estimate_needs_662():
    assert not es.secondary_estimate(list(range(661)), 0.99).met
    assert es.secondary_estimate(list(range(662)), 0.99).estimate_ns == 661


def test_server_criterion():
    # LoadGen 6.0.17: 10 queries, none over -> "Would need to run at least 449 more queries".
    failed = es.server_check(10, 0, 0.99)
    assert not failed.met and " * Would need to run at least 449 more queries," in failed.lines
    # Research notes: 270,336 queries tolerate about 2,580 over-latency ones at p99.
    assert es.max_overlatency_queries(270336, 0.99) == 2583
    assert es.server_check(270336, 2583, 0.99).met
    assert not es.server_check(270336, 2584, 0.99).met


@pytest.mark.parametrize(("percentile", "largest_t"), [(0.90, 12), (0.99, 3)])
def test_h_matches_exact_binomial(percentile, largest_t):
    base = BASES[percentile]
    h = 1
    for t in range(largest_t + 1):
        h = brute_h(t, base, h)
        assert es.min_passing_queries(t, percentile) == h, t


def test_max_overlatency_matches_loadgen_scan_on_small_n():
    base = BASES[0.90]
    cache = {}

    def h_of(t: int) -> int:
        if t not in cache:
            cache[t] = brute_h(t, base, cache.get(t - 1, 1))
        return cache[t]

    for n in range(1, 420):
        expected = loadgen_scan(n, base, h_of)
        got = es.max_overlatency_queries(n, 0.90)
        assert max(got, 0) == expected, n


def test_binomial_cdf_is_accurate():
    # The last two sit above the mean, where the upper tail is summed and complemented.
    cases = [
        (50, 3, 10),
        (400, 30, 10),
        (1500, 9, 100),
        (1000, 95, 10),
        (1000, 120, 10),
        (300, 40, 10),
    ]
    for n, k, base in cases:
        w = Fraction(1, base)
        exact = sum(math.comb(n, j) * w**j * (1 - w) ** (n - j) for j in range(k + 1))
        assert es.binomial_cdf(k, n, 1.0 / base) == pytest.approx(float(exact), rel=1e-11)
    assert es.binomial_cdf(1000, 1000, 0.1) == 1.0
    assert es.binomial_cdf(-1, 1000, 0.1) == 0.0


def test_fast_for_huge_runs():
    es.max_overlatency_queries.cache_clear()
    es.min_passing_queries.cache_clear()
    started = time.perf_counter()
    t = es.max_overlatency_queries(10**8, 0.90)
    assert (
        es.min_passing_queries(t, 0.90) + t <= 10**8 < es.min_passing_queries(t + 1, 0.90) + t + 1
    )
    assert es.server_check(10**8, 990_000, 0.99).met
    assert time.perf_counter() - started < 5.0

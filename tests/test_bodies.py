"""Generated body sizes: each distribution's statistics with a fixed seed, truncation, mixture
proportions, reproducibility, and rejection of bad specs. Plus the native weighted picker
against its pure-Python twin (Hypothesis)."""

from __future__ import annotations

import math
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastload import native
from fastload.errors import UsageError
from fastload.results.sizes import size_summary
from fastload.workload import bodies

N = 20000


def draws(spec: dict, n: int = N, seed: int | str = 7) -> list[int]:
    return bodies.sample(bodies.parse_dist(spec), n, seed)


def phi(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def test_fixed_and_int_shorthand():
    assert set(draws({"dist": "fixed", "bytes": 1234}, 100)) == {1234}
    assert bodies.parse_dist(512) == bodies.parse_dist({"dist": "fixed", "bytes": 512})


def test_uniform_bounds_and_mean():
    xs = draws({"dist": "uniform", "min": 100, "max": 300})
    assert min(xs) >= 100 and max(xs) <= 300
    assert min(xs) == 100 and max(xs) == 300  # inclusive on both ends
    # sd of the mean = 200/sqrt(12)/sqrt(N) ~ 0.4
    assert statistics.fmean(xs) == pytest.approx(200, abs=2.5)


@pytest.mark.parametrize("lam", [3.0, 300.0, 5000.0])  # the small-lambda and PTRS branches
def test_poisson_mean_and_variance(lam):
    xs = draws({"dist": "poisson", "lambda": lam})
    sd_mean = math.sqrt(lam / N)
    assert statistics.fmean(xs) == pytest.approx(lam, abs=5 * sd_mean)
    assert statistics.pvariance(xs) == pytest.approx(lam, rel=0.06)


def test_lognormal_median_and_log_moments():
    mu, sigma = 7.0, 1.2
    xs = draws({"dist": "lognormal", "mu": mu, "sigma": sigma})
    logs = [math.log(x + 0.5) for x in xs]  # +0.5: the sizes are floored to whole bytes
    assert statistics.median(xs) == pytest.approx(math.exp(mu), rel=0.05)
    assert statistics.fmean(logs) == pytest.approx(mu, abs=0.05)
    assert statistics.pstdev(logs) == pytest.approx(sigma, rel=0.03)


def test_truncation_keeps_the_shape_below_the_cap():
    mu, sigma, cap = 7.0, 1.2, 2000
    xs = draws({"dist": "lognormal", "mu": mu, "sigma": sigma, "max": cap})
    assert max(xs) <= cap
    # Truncation by resampling: P(X < e^mu | X <= cap) = Phi(0) / Phi((ln cap - mu) / sigma).
    expected = 0.5 / phi((math.log(cap) - mu) / sigma)
    got = sum(1 for x in xs if x < math.exp(mu)) / len(xs)
    assert got == pytest.approx(expected, abs=0.015)


def test_min_truncates_below():
    xs = draws({"dist": "poisson", "lambda": 20, "min": 25})
    assert min(xs) >= 25


def test_mixture_proportions_and_components():
    # 72% Poisson(50) + 28% lognormal(mu=9, sigma=0.3) truncated at 30000: the components do not
    # overlap (Poisson(50) < 200 always in practice, lognormal > 3000), so each draw is attributable.
    spec = {"dist": "mixture", "max": 30000, "components": [
        {"weight": 72, "dist": "poisson", "lambda": 50},
        {"weight": 28, "dist": "lognormal", "mu": 9, "sigma": 0.3}]}
    xs = draws(spec)
    small = [x for x in xs if x < 1000]
    large = [x for x in xs if x >= 1000]
    sd = math.sqrt(0.72 * 0.28 / N)
    assert len(small) / N == pytest.approx(0.72, abs=5 * sd)
    assert statistics.fmean(small) == pytest.approx(50, abs=0.5)
    assert max(xs) <= 30000
    assert statistics.median(large) == pytest.approx(math.exp(9), rel=0.05)


def test_reproducible_by_seed():
    spec = {"dist": "lognormal", "mu": 5, "sigma": 1}
    assert draws(spec, 500, seed=1) == draws(spec, 500, seed=1)
    assert draws(spec, 500, seed=1) != draws(spec, 500, seed=2)


def test_size_summary_weighted():
    s = size_summary([10, 20, 30], [1, 0, 3])
    assert s == {"count": 4, "mean": 25.0, "min": 10, "max": 30, "p50": 30, "p90": 30, "p99": 30}
    assert size_summary([5], [0]) == {"count": 0}


def test_filler_length_and_content():
    assert bodies.filler(0) == b""
    b = bodies.filler(5000)
    assert len(b) == 5000 and b[:3] == b"abc" and b.isascii()


@pytest.mark.parametrize("spec,message", [
    ({"dist": "zipf"}, "not one of"),
    ("big", "expected a mapping"),
    ({"dist": "fixed", "bytes": -1}, "'bytes' must be >= 0"),
    ({"dist": "fixed", "bytes": 1.5}, "whole number"),
    ({"dist": "uniform", "min": 10}, "needs min and max"),
    ({"dist": "uniform", "min": 10, "max": 5}, "greater than max"),
    ({"dist": "lognormal", "mu": 5}, "needs mu and sigma"),
    ({"dist": "lognormal", "mu": 5, "sigma": -1}, "'sigma' must be >= 0"),
    ({"dist": "poisson", "lambda": 0}, "'lambda' must be > 0"),
    ({"dist": "poisson", "lambda": 10, "scale": 2}, "unknown key"),
    ({"dist": "mixture", "components": []}, "non-empty list"),
    ({"dist": "mixture", "components": [{"weight": 0, "dist": "fixed", "bytes": 1}]}, "add up to 0"),
    ({"dist": "mixture", "components": [{"dist": "fixed", "bytes": 1}]}, "needs a weight"),
    ({"dist": "fixed", "bytes": 2 << 30}, "above the limit"),
])
def test_bad_specs_are_rejected(spec, message):
    with pytest.raises(UsageError, match=message):
        bodies.parse_dist(spec)


def test_impossible_truncation_is_reported_not_looped():
    d = bodies.parse_dist({"dist": "poisson", "lambda": 5, "min": 1000})
    with pytest.raises(UsageError, match="reject nearly every draw"):
        bodies.sample(d, 10, 1)


# --- the native weighted picker and its Python twin

M64 = (1 << 64) - 1


class PickerTwin:
    """RequestMix.pick in Python: xorshift64*, cumulative weights, uniform within a pool."""

    def __init__(self, pools: list[int], weights: list[float], seed: int) -> None:
        self.rng = (seed * 0x9E3779B97F4A7C15 + 0x5DEECE66D) & M64
        total = sum(weights)
        acc = 0.0
        self.cum = []
        for w in weights:
            acc += w / total
            self.cum.append(acc)
        last = max(i for i, w in enumerate(weights) if w > 0)
        self.cum[last] = 1.0
        self.start = [sum(pools[:i]) for i in range(len(pools))]
        self.pools = pools

    def uniform(self) -> float:
        x = self.rng
        x ^= x >> 12
        x ^= (x << 25) & M64
        x ^= x >> 27
        self.rng = x
        return (((x * 0x2545F4914F6CDD1D) & M64) >> 11) * (1.0 / 9007199254740992.0)

    def pick(self) -> int:
        u = self.uniform()
        lo, hi = 0, len(self.cum) - 1
        while lo < hi:
            mid = (lo + hi) >> 1
            if u < self.cum[mid]:
                hi = mid
            else:
                lo = mid + 1
        n = self.pools[lo]
        return self.start[lo] if n == 1 else self.start[lo] + int(self.uniform() * n)


def native_mix(pools: list[int], weights: list[float], seed: int) -> native.RequestMix:
    entries = [b"x" * (i + 1) for i in range(sum(pools))]
    variant = [v for v, n in enumerate(pools) for _ in range(n)]
    return native.RequestMix(entries, variant, weights, seed)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 5), st.sampled_from([0.0, 0.5, 1.0, 3.0, 1e-6, 97.0])),
                min_size=1, max_size=12).filter(lambda vs: any(w > 0 for _, w in vs)),
       st.integers(0, 2**62))
def test_native_picker_equals_python_twin(variants, seed):
    pools = [n for n, _ in variants]
    weights = [w for _, w in variants]
    native = native_mix(pools, weights, seed).pick_py(300)
    twin = PickerTwin(pools, weights, seed)
    assert native == [twin.pick() for _ in range(300)]
    # A zero-weight variant is never chosen.
    mix = native_mix(pools, weights, seed)
    assert all(weights[mix.variant_of(e)] > 0 for e in native)


def test_native_picker_follows_the_weights():
    weights = [6.0, 3.0, 1.0, 0.0]
    mix = native_mix([1, 4, 1, 1], weights, 11)
    picks = mix.pick_py(100000)
    counts = [0, 0, 0, 0]
    for e in picks:
        counts[mix.variant_of(e)] += 1
    for c, w in zip(counts, weights, strict=True):
        p = w / 10
        assert c / 1e5 == pytest.approx(p, abs=5 * math.sqrt(p * (1 - p) / 1e5) + 1e-9)
    # Within a pool, entries are equally likely.
    pool = [sum(1 for e in picks if e == k) for k in range(1, 5)]
    assert max(pool) / min(pool) < 1.1


@pytest.mark.parametrize("args", [
    ([], [], [1.0]),
    ([b"a"], [0], [0.0]),
    ([b"a", b"b", b"c"], [0, 1, 0], [1.0, 1.0]),  # not contiguous
    ([b"a"], [1], [1.0]),
])
def test_native_mix_rejects_inconsistent_tables(args):
    with pytest.raises(ValueError):
        native.RequestMix(*args)

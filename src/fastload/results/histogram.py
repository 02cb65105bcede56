"""Latency statistics in the parent: decoding, exact merging and percentile summaries of the
workers' HdrHistograms (standard compressed encoding, values in µs)."""

from __future__ import annotations

import math
from collections.abc import Iterable

from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 60_000_000
SIGFIGS = 3
PERCENTILES = (("p50", 50.0), ("p90", 90.0), ("p95", 95.0), ("p99", 99.0), ("p99.9", 99.9),
               ("p99.99", 99.99))


def new() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGFIGS)


def decode(blob: bytes | str | None) -> HdrHistogram:
    """An encoded histogram; empty or None gives an empty histogram of the standard layout."""
    if not blob:
        return new()
    return HdrHistogram.decode(blob)


def merge(blobs: Iterable[bytes | str | None]) -> HdrHistogram:
    """Exact merge: counts are added bucket by bucket."""
    h = new()
    for blob in blobs:
        other = decode(blob)
        if other.get_total_count():
            h.add(other)
    return h


def encode(h: HdrHistogram) -> str:
    return h.encode().decode("ascii")


def _bucket_of(h: HdrHistogram, idx: int) -> tuple[int, int]:
    """(lowest equivalent value, bucket size) of counts index idx, from the HdrHistogram layout.
    Worked out for the recorded indices only: tables for all of a layout's 17k indices cost
    40 ms of CPU in every run's parent."""
    half_magnitude = h.sub_bucket_half_count_magnitude
    bucket = (idx >> half_magnitude) - 1
    sub = (idx & ((1 << half_magnitude) - 1)) + (1 << half_magnitude)
    if bucket < 0:
        sub -= 1 << half_magnitude
        bucket = 0
    shift = bucket + h.unit_magnitude
    return sub << shift, 1 << shift


def _lowest(h: HdrHistogram, idx: int) -> int:
    return _bucket_of(h, idx)[0]


def _highest(h: HdrHistogram, idx: int) -> int:
    low, size = _bucket_of(h, idx)
    return low + size - 1


def _median(h: HdrHistogram, idx: int) -> int:
    low, size = _bucket_of(h, idx)
    return low + (size >> 1)


_BLOCK = 64  # counts per block compared at once
_ZERO_BLOCK = bytes(_BLOCK * 8)


def _nonzero(h: HdrHistogram) -> list[tuple[int, int]]:
    """(index, count) of the recorded buckets. The counts array has some 17k buckets, and the
    parent does this every second: blocks of 64 counts are compared with zeros as bytes (a
    memcmp each) and only the blocks with counts are walked, about 0.25 ms for a typical
    latency spread instead of 3 ms for a Python loop over every bucket. Not numpy: importing
    it would cost every run's parent some 0.15 s of CPU, which counts in CPU per request."""
    raw = bytes(h.counts)
    words = memoryview(raw).cast("Q")
    n = len(words)
    out: list[tuple[int, int]] = []
    for b in range(0, n, _BLOCK):
        end = min(n, b + _BLOCK)
        if raw[b * 8:end * 8] != _ZERO_BLOCK[:(end - b) * 8]:
            out.extend((i, c) for i, c in enumerate(words[b:end].tolist(), b) if c)
    return out


def percentiles_us(h: HdrHistogram, percentiles: Iterable[float],
                   nonzero: list[tuple[int, int]] | None = None) -> list[int]:
    """HdrHistogram.get_value_at_percentile for several percentiles in one pass over the
    recorded buckets (the reference walks every bucket in Python for each call)."""
    nz = _nonzero(h) if nonzero is None else nonzero
    total = sum(c for _, c in nz)
    pcts = list(percentiles)
    if not total:
        return [0 for _ in pcts]
    targets = sorted((max(int(min(p, 100.0) * total / 100 + 0.5), 1), k) for k, p in enumerate(pcts))
    out = [0] * len(pcts)
    t = 0
    cum = 0
    for i, c in nz:
        cum += c
        while t < len(targets) and cum >= targets[t][0]:
            k = targets[t][1]
            out[k] = _highest(h, i) if pcts[k] else _lowest(h, i)
            t += 1
        if t == len(targets):
            break
    return out


def summary_us(h: HdrHistogram) -> dict:
    """min/mean/stdev/percentiles/max in µs with HdrHistogram's own semantics (percentiles are
    the highest value equivalent to the bucket, so never below the recorded value)."""
    nz = _nonzero(h)
    total = sum(c for _, c in nz)
    if not total:
        return {"min": 0, "mean": 0.0, "stdev": 0.0, **{k: 0 for k, _ in PERCENTILES}, "max": 0}
    medians = [(_median(h, i), c) for i, c in nz]
    mean = sum(c * m for m, c in medians) / total
    var = sum(c * (m - mean) ** 2 for m, c in medians) / total
    out: dict = {"min": 0 if nz[0][0] == 0 else _lowest(h, nz[0][0]), "mean": mean,
                 "stdev": math.sqrt(var)}
    values = percentiles_us(h, [p for _, p in PERCENTILES], nz)
    for (key, _), value in zip(PERCENTILES, values, strict=True):
        out[key] = value
    out["max"] = _highest(h, nz[-1][0])
    return out


def percentile_points(h: HdrHistogram, ticks_per_half_distance: int = 5) -> list[tuple[float, int]]:
    """(percentile, value in µs) pairs for a percentile distribution plot, stepped like
    HdrHistogram's percentile iterator (and its .hgrm output): ``ticks_per_half_distance``
    points between 0% and 50%, as many between 50% and 75%, 75% and 87.5%, and so on, which
    spreads them evenly over a 1/(1-percentile) log axis. The levels stop where one recorded
    value is left (finer levels would all be the maximum), and the last point is 100%: the max.
    An empty histogram gives no points."""
    nz = _nonzero(h)
    total = sum(c for _, c in nz)
    if not total:
        return []
    levels: list[float] = []
    p = 0.0
    while 100.0 - p > 100.0 / total:
        levels.append(p)
        halvings = math.floor(math.log2(100.0 / (100.0 - p)))
        p += 100.0 / (ticks_per_half_distance * 2 ** (halvings + 1))
    levels.append(100.0)
    return list(zip(levels, percentiles_us(h, levels, nz), strict=True))

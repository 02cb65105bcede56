"""Latency statistics in the parent: decoding, exact merging and percentile summaries of the
workers' HdrHistograms (standard compressed encoding, values in µs)."""

from __future__ import annotations

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


def summary_us(h: HdrHistogram) -> dict:
    """min/mean/stdev/percentiles/max in µs with HdrHistogram's own semantics (percentiles are
    the highest value equivalent to the bucket, so never below the recorded value)."""
    if not h.get_total_count():
        return {"min": 0, "mean": 0.0, "stdev": 0.0, **{k: 0 for k, _ in PERCENTILES}, "max": 0}
    out: dict = {"min": h.get_min_value(), "mean": h.get_mean_value(), "stdev": h.get_stddev()}
    for key, pct in PERCENTILES:
        out[key] = h.get_value_at_percentile(pct)
    out["max"] = h.get_max_value()
    return out

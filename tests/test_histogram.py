"""The native HDR histogram against the HdrHistogram reference implementation (hdrhistogram)."""

from __future__ import annotations

import numpy as np
from hdrh.histogram import HdrHistogram
from hypothesis import given, settings
from hypothesis import strategies as st

from fastload.native import Histogram
from fastload.results import histogram

HIGH = 60_000_000


def edge_values() -> st.SearchStrategy[int]:
    powers = [1 << k for k in range(27)]
    near = [p + d for p in powers for d in (-1, 0, 1)] + [2047, 2048, 4095, 4096, HIGH - 1, HIGH]
    return st.one_of(st.sampled_from([v for v in near if 0 <= v <= HIGH]),
                     st.integers(min_value=0, max_value=HIGH))


def reference(values: list[int]) -> HdrHistogram:
    h = HdrHistogram(1, HIGH, 3)
    for v in values:
        assert h.record_value(v)
    return h


@settings(max_examples=150, deadline=None)
@given(st.lists(edge_values(), max_size=300))
def test_same_counts_percentiles_and_encoding_as_reference(values):
    ours = Histogram(1, HIGH, 3)
    for v in values:
        ours.record_value(v)
    ref = reference(values)
    assert ours.counts_len == ref.counts_len
    assert np.array_equal(ours.counts(), np.array(ref.counts[:], dtype=np.int64))
    assert ours.total_count == ref.get_total_count() == len(values)
    if values:
        assert ours.min_value == min(values) and ours.max_value == max(values)
    mine = ours.to_hdr()
    for p in (0, 1, 25, 50, 90, 99, 99.9, 99.99, 100):
        assert mine.get_value_at_percentile(p) == ref.get_value_at_percentile(p)
    assert mine.get_mean_value() == ref.get_mean_value()
    assert ours.encode() == ref.encode()
    back = HdrHistogram.decode(ours.encode())
    assert back.get_total_count() == len(values)
    for p in (50, 99, 99.99):
        assert back.get_value_at_percentile(p) == ref.get_value_at_percentile(p)


@settings(max_examples=60, deadline=None)
@given(st.lists(edge_values(), max_size=100), st.lists(edge_values(), max_size=100))
def test_add_equals_recording_the_union(a, b):
    ha, hb = Histogram(), Histogram()
    for v in a:
        ha.record_value(v)
    for v in b:
        hb.record_value(v)
    ha.add(hb)
    assert np.array_equal(ha.counts(), reference(a + b).counts[:])
    assert ha.total_count == len(a) + len(b)


def test_overflow_is_counted_and_kept_at_the_top():
    h = Histogram()
    h.record_value(HIGH * 10)
    h.record_value(5)
    h.record_value(-3)
    assert h.overflow_count == 1 and h.total_count == 3
    assert h.max_value == HIGH and h.min_value == 0
    assert h.to_hdr().get_value_at_percentile(100) == reference([HIGH]).get_value_at_percentile(100)


def test_reset_empties():
    h = Histogram()
    for v in range(100):
        h.record_value(v)
    h.reset()
    assert h.total_count == 0 and not h.counts().any() and h.overflow_count == 0


def test_merge_of_encoded_blobs_equals_one_histogram():
    parts = [list(range(1, 5001)), list(range(10_000, 12_000)), [HIGH // 2] * 7]
    blobs = []
    for part in parts:
        h = Histogram()
        for v in part:
            h.record_value(v)
        blobs.append(h.encode())
    merged = histogram.merge(blobs)
    ref = reference([v for p in parts for v in p])
    assert merged.get_total_count() == ref.get_total_count()
    assert np.array_equal(np.array(merged.counts[:]), np.array(ref.counts[:]))


def test_summary_on_known_data():
    h = Histogram()
    for v in range(1, 10_001):
        h.record_value(v)
    s = histogram.summary_us(h.to_hdr())
    # Values below 2048 are exact at 3 significant digits; above, buckets are 2, 4, 8 wide and
    # HdrHistogram reports the highest equivalent value of the bucket.
    assert s["min"] == 1
    assert s["p50"] == 5003  # 5000 lies in the 4-wide bucket 5000..5003
    assert s["p90"] == 9007  # 9000..9007
    assert s["p99"] == 9903
    assert s["max"] == 10_007
    assert abs(s["mean"] - 5000.5) < 5
    assert abs(s["stdev"] - 2886.9) < 5
    empty = histogram.summary_us(histogram.new())
    assert empty["p99"] == 0 and empty["mean"] == 0.0


@settings(max_examples=80, deadline=None)
@given(st.lists(edge_values(), min_size=1, max_size=300))
def test_fast_summary_equals_reference_methods(values):
    h = Histogram()
    for v in values:
        h.record_value(v)
    decoded = HdrHistogram.decode(h.encode())  # what the parent holds
    s = histogram.summary_us(decoded)
    for key, pct in histogram.PERCENTILES:
        assert s[key] == decoded.get_value_at_percentile(pct), key
    assert histogram.percentiles_us(decoded, [0.0, 100.0]) == [decoded.get_value_at_percentile(0.0),
                                                              decoded.get_value_at_percentile(100.0)]
    assert s["min"] == decoded.get_min_value()
    assert s["max"] == decoded.get_max_value()
    assert abs(s["mean"] - decoded.get_mean_value()) <= 1e-9 * max(1.0, s["mean"])
    assert abs(s["stdev"] - decoded.get_stddev()) <= 1e-6 * max(1.0, s["stdev"])

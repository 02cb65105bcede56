"""Streaming metrics against the project's own server streaming text/event-stream with known
timing (`fastload serve`, /sse): headers after the server's delay, event i at first + i * gap."""

from __future__ import annotations

import json

import pytest
from hdrh.histogram import HdrHistogram

from support import peers
from support.run import fastload, run_json

DELAY_US, FIRST_US, GAP_US, EVENTS = 5_000, 30_000, 10_000, 5
SSE = f"sse?events={EVENTS}&first={FIRST_US // 1000}ms&gap={GAP_US // 1000}ms"
# The bound: measured TTFB/gaps within 2 ms of the known values.
TOLERANCE_US = 2_000


@pytest.fixture(scope="module")
def sse_server():
    with peers.fastload_server(delay=f"{DELAY_US // 1000}ms") as s:
        yield s


@pytest.mark.parametrize("proto", [[], ["--h2c", "-m", "1"]], ids=["h1-chunked", "h2c"])
def test_sse_timings_match_the_known_schedule(sse_server, proto):
    sse_server.reset()
    # Few connections: the server is one Python process, its timers must not queue.
    doc = run_json(sse_server.url + SSE, "-n", "60", "-c", "2", "-w", "1", *proto)
    assert doc["requests"] == 60 and doc["errors"]["total"] == 0
    assert sse_server.count_requests("/sse") == 60
    assert doc["events"] == {"streams": 60, "total": 60 * EVENTS, "mean": float(EVENTS),
                             "p50": EVENTS, "max": EVENTS}
    ttfb, ttfe, gap = doc["ttfb_us"], doc["ttfe_us"], doc["event_gap_us"]
    # Never earlier than the server's schedule, and close to it.
    assert ttfb["min"] >= DELAY_US and abs(ttfb["p50"] - DELAY_US) <= TOLERANCE_US, ttfb
    assert abs(gap["p50"] - GAP_US) <= TOLERANCE_US, gap
    # The server's clock for the events starts when it has parsed the request: the request's
    # way there (about 1.8 ms through this Python server's h2 stack, 0.8 ms over HTTP/1.1)
    # shifts the first byte, the first event and the last alike. Measured from the first
    # byte, the events must be where the schedule puts them.
    shift = ttfb["p50"] - DELAY_US
    assert ttfe["min"] >= FIRST_US and abs(ttfe["p50"] - shift - FIRST_US) <= TOLERANCE_US, ttfe
    last_us = FIRST_US + (EVENTS - 1) * GAP_US
    assert doc["latency_us"]["min"] >= last_us
    assert abs(doc["latency_us"]["p50"] - shift - last_us) <= TOLERANCE_US
    # Every recorded value is in the histograms the document carries (for merge and reports).
    assert HdrHistogram.decode(doc["ttfe_histogram"]).get_total_count() == 60
    assert HdrHistogram.decode(doc["event_gap_histogram"]).get_total_count() == 60 * (EVENTS - 1)
    assert HdrHistogram.decode(doc["ttfb_histogram"]).get_total_count() == 60


def test_plain_responses_have_a_ttfb_but_are_not_streams(nginx_h1):
    doc = run_json(nginx_h1.url, "-n", "300", "-c", "2", "-w", "1")
    assert doc["events"] is None and doc["ttfe_us"] is None and doc["event_gap_us"] is None
    assert HdrHistogram.decode(doc["ttfb_histogram"]).get_total_count() == 300
    assert doc["ttfb_us"]["p50"] <= doc["latency_us"]["p50"]


def test_streaming_slos_and_the_summary(sse_server):
    p = fastload("run", sse_server.url + SSE, "-n", "20", "-c", "2", "-w", "1",
                 "--slo", "ttfe_p50<500ms", "--slo", "events_mean==5", "--slo", "event_gap_p99<1s")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "Streams: 20 responses, 100 events" in p.stdout
    assert "first event" in p.stdout and "event gap" in p.stdout
    p = fastload("run", sse_server.url + SSE, "-n", "20", "-c", "2", "-w", "1", "--slo", "ttfe_p99<1ms")
    assert p.returncode == 1 and "FAIL" in p.stdout
    p = fastload("run", sse_server.url + SSE, "-n", "20", "--slo", "ttfx_p99<1ms")
    assert p.returncode == 2 and "unknown metric" in p.stderr


def test_a_stream_that_never_ends_is_a_timeout(sse_server):
    # 1000 events a second apart: every response outlives --timeout; the first event arrives.
    doc = run_json(sse_server.url + "sse?events=1000&first=10ms&gap=1s", "-d", "1500ms", "-c", "2",
                   "-w", "1", "--timeout", "300ms")
    assert doc["requests"] == 0 and doc["events"] is None
    assert doc["errors"]["timeout"] >= 4 and doc["errors"]["total"] == doc["errors"]["timeout"]
    assert doc["ttfe_us"]["min"] >= 10_000


def test_merge_keeps_the_streaming_histograms(sse_server, tmp_path):
    docs = [run_json(sse_server.url + SSE, "-n", str(n), "-c", "2", "-w", "1") for n in (10, 14)]
    paths = []
    for i, d in enumerate(docs):
        paths.append(tmp_path / f"{i}.json")
        paths[-1].write_text(json.dumps(d))
    p = fastload("merge", *map(str, paths))
    assert p.returncode == 0, p.stderr
    m = json.loads(p.stdout)
    assert m["events"]["streams"] == 24 and m["events"]["total"] == 24 * EVENTS
    assert HdrHistogram.decode(m["ttfe_histogram"]).get_total_count() == 24
    assert m["ttfe_us"]["max"] == max(d["ttfe_us"]["max"] for d in docs)

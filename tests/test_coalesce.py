"""--coalesce: the event loop polls at most once per interval while responses flow. Counts
must stay exact, a deadline must still end the run on time, and latency may only be recorded
later than without it (by at most the interval), never earlier than the server held it."""

from __future__ import annotations

import pytest

from fastload.host import placement
from support.run import check_document, fastload, run_json


@pytest.mark.parametrize("peer, args", [
    ("nginx_h1", ["-c", "8"]),
    ("nginx_h1", ["-c", "4", "--pipeline", "4"]),
    ("h2o_server", ["--h2c", "-c", "4", "-m", "16"]),
    ("nginx_tls", ["--insecure", "--protocol", "h2", "-c", "4", "-m", "8"]),
    ("nginx_tls", ["--insecure", "--protocol", "h1", "-c", "8"]),
])
def test_counts_equal_the_servers(request, peer, args):
    server = request.getfixturevalue(peer)
    before = server.count_requests()
    doc = run_json(server.url, *args, "-n", "4000", "-w", "1", "--coalesce", "200us")
    check_document(doc, 4000)
    assert doc["errors"]["total"] == 0
    assert server.count_requests() - before == 4000
    assert doc["config"]["coalesce_us"] == 200


def test_a_duration_run_ends_on_time_and_counts_what_was_served(nginx_h1):
    before = nginx_h1.count_requests()
    doc = run_json(nginx_h1.url, "-d", "1s", "-c", "4", "-w", "1", "--coalesce", "1ms")
    served = nginx_h1.count_requests() - before
    assert doc["requests"] > 100
    assert doc["requests"] <= served <= doc["requests"] + 4
    assert doc["duration_s"] == pytest.approx(1.0, abs=0.05)


def test_latency_is_never_below_the_servers_hold_and_late_by_at_most_the_interval(delay_server):
    # 40 connections on 20 ms: 2,000 responses/s, above the one per millisecond that keeps
    # batching on, so the latencies are read in batches.
    delay_server.reset()
    doc = run_json(delay_server.url, "-n", "1200", "-c", "40", "-w", "1", "--coalesce", "1ms")
    check_document(doc, 1200)
    assert delay_server.count_requests() == 1200
    lat = doc["latency_us"]
    held = delay_server.stats()["held_us"]
    assert held["count"] == 1200
    assert lat["min"] >= held["min"]
    # test_run's bound without --coalesce is 1 ms above the server's p50; the interval adds 1 ms.
    assert held["p50"] <= lat["p50"] < held["p50"] + 2000


def test_off_by_default_and_zero_is_off(nginx_h1):
    assert run_json(nginx_h1.url, "-n", "100", "-c", "2", "-w", "1")["config"]["coalesce_us"] == 0
    doc = run_json(nginx_h1.url, "-n", "100", "-c", "2", "-w", "1", "--coalesce", "0")
    assert doc["config"]["coalesce_us"] == 0 and doc["requests"] == 100


@pytest.mark.parametrize("args, needle", [
    (["--coalesce", "2ms"], "--coalesce: '2ms' is above the maximum of 1ms"),
    (["--coalesce", "soon"], "--coalesce: 'soon' is not a duration"),
    (["--coalesce", "-5us"], "--coalesce"),
    (["--coalesce", "100us", "-R", "100"], "--coalesce applies to the closed model"),
    (["--coalesce", "100us", "--stages", "1s:100"], "--coalesce applies to the closed model"),
])
def test_bad_values_exit_2_before_traffic(args, needle):
    p = fastload("run", "http://127.0.0.1:9/", "-n", "10", *args)
    assert p.returncode == 2, p.stderr
    assert needle in p.stderr
    assert "Traceback" not in p.stderr


def test_the_timer_slack_is_set_and_read_back():
    before = placement.timer_slack_ns()
    try:
        assert placement.set_timer_slack_ns(1000)
        assert placement.timer_slack_ns() == 1000
    finally:
        placement.set_timer_slack_ns(before)
    assert placement.timer_slack_ns() == before

"""The open model (-R, --stages, --arrival): achieved rates, coordinated-omission correction
checked against the closed form of a server that stalls, HDR interval logs, --start-at, tags."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader

from support import SERVERS, peers
from support.run import fastload, run_json


@pytest.fixture()
def stall_server():
    """Holds every response from 1.5 s to 2.0 s after the first request."""
    proc = subprocess.Popen([sys.executable, str(SERVERS / "stall_server.py"), "1.5", "0.5"],
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        line = proc.stdout.readline()
        port = int(line.split()[-1])
        yield f"http://127.0.0.1:{port}/"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
        proc.stdout.close()


def test_constant_rate_is_achieved_and_counted_by_the_server(nginx_h1):
    before = nginx_h1.count_requests()
    doc = run_json(nginx_h1.url, "-R", "2000", "-d", "5s", "-c", "16", "-w", "1")
    served = nginx_h1.count_requests() - before
    assert doc["rate"]["target"] == 2000
    assert doc["rate"]["achieved"] == pytest.approx(2000, rel=0.02)
    assert doc["requests"] == pytest.approx(10_000, rel=0.02)
    assert doc["requests"] <= served <= doc["requests"] + 16
    assert doc["errors"]["total"] == 0
    assert doc["generator_saturated"] is False
    assert doc["schedule_lag_us"]["p50"] < 2_000
    # Without a stall, latency from the intended time and service time are close.
    assert doc["latency_us"]["p50"] >= doc["service_time_us"]["p50"]


def test_two_workers_share_the_rate(nginx_h1):
    doc = run_json(nginx_h1.url, "-R", "3000", "-d", "3s", "-c", "16", "-w", "2")
    assert doc["rate"]["achieved"] == pytest.approx(3000, rel=0.02)
    assert [w["requests"] for w in doc["workers"]] == [pytest.approx(4500, rel=0.03)] * 2


def test_stall_shows_in_corrected_latency_not_in_service_time(stall_server):
    # 1000/s for 5 s; the server holds everything for S = 0.5 s starting 1.5 s in. With 4
    # connections the requests scheduled during the stall wait in the client. Closed form:
    # the 500 requests scheduled in the stall have corrected latencies spread uniformly over
    # (0, S], so the top 1% of 5000 (50 requests) are those >= S - 50 ms: p99 = 450 ms,
    # p99.9 (5 requests) = 495 ms, max = 500 ms. Only the 4 requests in flight when the stall
    # began waited in the server, so the service time p99 stays that of a healthy server.
    doc = run_json(stall_server, "-R", "1000", "-d", "5s", "-c", "4", "-w", "1", "--timeout", "5s")
    lat, svc = doc["latency_us"], doc["service_time_us"]
    assert doc["requests"] == pytest.approx(5000, rel=0.01)
    assert lat["p99"] == pytest.approx(450_000, abs=15_000)
    assert lat["p99.9"] == pytest.approx(495_000, abs=15_000)
    assert lat["max"] == pytest.approx(500_000, abs=20_000)
    assert svc["p99"] < 20_000
    assert svc["max"] == pytest.approx(500_000, abs=20_000)  # the 4 requests held by the server
    assert doc["rate"]["max_queue_delay_us"] == pytest.approx(500_000, abs=20_000)
    with urllib.request.urlopen(stall_server + "__stats", timeout=5) as r:
        served = int(r.read())
    assert doc["requests"] <= served <= doc["requests"] + 4


def test_stages_ramp_linearly(nginx_h1):
    # 0 -> 500/s over 1 s, 500/s for 1 s, 500 -> 0 over 1 s: 250 + 500 + 250 requests.
    doc = run_json(nginx_h1.url, "--stages", "1s:500,1s:500,1s:0", "-c", "8", "-w", "1")
    assert doc["requests"] == pytest.approx(1000, abs=15)
    assert doc["duration_s"] == pytest.approx(3.0, abs=0.05)
    per_second = [iv["requests"] for iv in doc["timeline"]][:3]
    assert per_second == [pytest.approx(250, abs=15), pytest.approx(500, abs=15), pytest.approx(250, abs=15)]


def test_poisson_arrivals_average_the_rate(nginx_h1):
    doc = run_json(nginx_h1.url, "-R", "1000", "-d", "3s", "--arrival", "poisson", "-c", "8", "-w", "1")
    # 3000 expected, Poisson standard deviation ~55.
    assert doc["requests"] == pytest.approx(3000, abs=250)
    assert doc["config"]["arrival"] == "poisson"


def test_hdr_log_round_trips_with_the_same_total(nginx_h1, tmp_path):
    log = tmp_path / "run.hlog"
    doc = run_json(nginx_h1.url, "-R", "1000", "-d", "3s", "-c", "4", "-w", "2", "--hdr-log", str(log))
    reader = HistogramLogReader(str(log), HdrHistogram(1, 60_000_000, 3))
    total, intervals = 0, 0
    try:
        while (h := reader.get_next_interval_histogram()) is not None:
            total += h.get_total_count()
            intervals += 1
    finally:
        reader.close()
    assert total == doc["requests"]
    assert intervals >= 3
    text = log.read_text()
    assert text.startswith("#[Histogram log format version 1.2]")
    assert "#[StartTime:" in text


def test_start_at_and_tags(nginx_h1):
    at = time.time() + 2.0
    doc = run_json(nginx_h1.url, "-n", "100", "-c", "2", "-w", "1", "--start-at", f"{at:.3f}",
                   "--tag", "build=abc123", "--tag", "host=a")
    assert doc["started_at"] == pytest.approx(at, abs=0.05)
    assert doc["tags"] == {"build": "abc123", "host": "a"}


@pytest.mark.parametrize(
    "args,needle",
    [(["-R", "0"], "--rate"), (["-R", "fast"], "--rate"), (["--stages", "1s"], "--stages"),
     (["--stages", "1s:100", "-d", "2s"], "--stages"), (["--stages", "1s:0"], "rate of 0"),
     (["--arrival", "poisson"], "poisson"), (["--start-at", "1000"], "past"),
     (["--tag", "novalue"], "--tag"), (["--hdr-log", "/nonexistent/dir/x.hlog"], "--hdr-log")],
)
def test_bad_open_model_input_exits_2(args, needle):
    p = fastload("run", "http://127.0.0.1:1/", *args)
    assert p.returncode == 2, p.stderr
    assert needle in p.stderr


def test_summary_shows_rate_and_service_time(nginx_h1):
    p = fastload("run", nginx_h1.url, "-R", "500", "-d", "1s", "-c", "2", "-w", "1")
    assert p.returncode == 0, p.stderr
    assert "Rate:" in p.stdout and "achieved" in p.stdout and "Service time:" in p.stdout


def test_a_busy_generator_says_so(nginx_h1):
    # A target far beyond what one worker can send keeps it busy all the time: the verdict
    # must blame the client, not report the server as slow.
    p = fastload("run", nginx_h1.url, "-R", "2M", "-d", "2s", "-c", "64", "-w", "1", "--json", "-", "--quiet")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["generator_saturated"] is True
    assert doc["rate"]["worker_busy"] > 0.85
    assert "generator saturated" in p.stderr


@contextlib.contextmanager
def spinning_on(cpu: int):
    """Another process that wants all of one CPU, for the duration of the block."""
    proc = subprocess.Popen([sys.executable, "-c",
                             f"import os\nos.sched_setaffinity(0, {{{cpu}}})\nwhile True: pass"])
    try:
        time.sleep(0.2)
        yield
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.skipif(not {0, 1} <= os.sched_getaffinity(0), reason="needs CPUs 0 and 1")
def test_a_generator_starved_of_its_cpu_counts_as_busy_and_says_so():
    # The worker shares CPU 1 with a spinning process and gets about half of it. Its CPU time
    # alone would call it half idle; the time it waited for the CPU shows it was starved.
    with peers.nginx(h2c=False, cpu=0) as server, spinning_on(1):
        p = fastload("run", server.url, "-R", "2M", "-d", "2s", "-c", "16", "-w", "1", "--cpus", "1",
                     "--json", "-", "--quiet")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    (worker,) = doc["workers"]
    assert worker["cpu_wait_s"] == doc["client_cpu_wait_s"]
    assert doc["client_cpu_wait_s"] > 0.3 * doc["duration_s"]
    assert doc["client_cpu_s"] < 0.7 * doc["duration_s"]
    assert doc["rate"]["worker_busy"] > 0.85 and doc["generator_saturated"] is True
    assert any("waited for a CPU" in w for w in doc["warnings"])


def test_too_few_connections_queue_and_are_reported(delay_server):
    # 20 ms per response and 4 connections: at most ~200/s, far below the 1000/s asked for.
    doc = run_json(delay_server.url, "-R", "1000", "-d", "2s", "-c", "4", "-w", "1")
    assert doc["rate"]["achieved"] < 250
    assert doc["rate"]["backlog"] > 1000
    assert doc["rate"]["max_queue_delay_us"] > 1_000_000
    assert doc["generator_saturated"] is False
    assert any("not reached" in w for w in doc["warnings"])

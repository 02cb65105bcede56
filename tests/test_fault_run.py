"""`fastload run --fault ...`: faults injected during a real run against nginx, measured per
phase (baseline, the window, recovery), checked against what nginx itself served."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from support import SERVERS, peers
from support.run import fastload, run_json


def phases(doc: dict) -> dict[str, dict]:
    return {p["name"]: p for p in doc["phases"]}


def test_latency_window_shows_in_its_phase_only_and_counts_add_up(nginx_h1):
    before = nginx_h1.count_requests()
    # 100 ms a request at 500/s needs about 50 requests in flight: -c 100 keeps the window's
    # latency the proxy's delay, not a queue for connections.
    doc = run_json(nginx_h1.url, "-R", "500", "-d", "6s", "-c", "100",
                   "--fault", "2s-4s:latency=100ms")
    served = nginx_h1.count_requests() - before
    ph = phases(doc)
    assert list(ph) == ["baseline", "fault1", "recovery-fault1"]
    assert 100_000 <= ph["fault1"]["latency_us"]["p50"] <= 110_000
    assert ph["baseline"]["latency_us"]["p50"] < 10_000
    assert ph["recovery-fault1"]["latency_us"]["p50"] < 10_000
    assert sum(p["requests"] for p in doc["phases"]) == doc["requests"]
    # Responses in flight at the end of -d are not counted (as wrk): at most a few here.
    assert doc["requests"] <= served <= doc["requests"] + 3
    assert doc["faults"]["via"] == "proxy"
    assert doc["faults"]["proxies"]["(url)"]["by_fault"]["fault1"]["delayed_chunks"] > 0
    assert ph["fault1"]["time_to_recover_s"] is not None


def test_http_status_window_answers_its_share_and_nginx_never_sees_them(nginx_h1):
    before = nginx_h1.count_requests()
    doc = run_json(nginx_h1.url, "-R", "1000", "-d", "4s", "-c", "16",
                   "--fault", "1s-3s:http_status=503,p=0.2")
    served = nginx_h1.count_requests() - before
    ph = phases(doc)
    window = ph["fault1"]
    share = window["status_codes"].get("503", 0) / window["requests"]
    assert share == pytest.approx(0.2, abs=0.03)
    for name in ("baseline", "recovery-fault1"):
        assert "503" not in ph[name]["status_codes"]
    injected = doc["faults"]["proxies"]["(url)"]["statuses"]
    assert injected == doc["status_codes"]["503"]
    assert served - (doc["requests"] - injected) in range(0, 4)


@pytest.mark.parametrize("kind,error_class,extra", [
    ("reset", "reset", []),
    ("down", None, []),  # refused (connect) or reset, depending on what was open
    ("blackhole", "timeout", ["--timeout", "300ms"]),
])
def test_connection_faults_fail_requests_only_in_their_window(nginx_h1, kind, error_class, extra):
    doc = run_json(nginx_h1.url, "-R", "400", "-d", "4s", "-c", "8", *extra,
                   "--fault", f"1s-2s:{kind}")
    ph = phases(doc)
    # Requests in flight when the window starts were sent just before it: reset and down cut
    # them (at most one per connection), and they count where they were sent.
    assert ph["baseline"]["errors"]["total"] <= 8
    assert ph["fault1"]["errors"]["total"] > 0
    if error_class is not None:
        assert ph["fault1"]["errors"][error_class] > 0
    # By intended send time, errors belong to requests sent in the window (a blackholed one
    # fails --timeout later, still counted where it was sent), or in flight at its start.
    for iv in doc["fine_timeline"]:
        if iv["errors"]["total"]:
            assert 0.9 <= iv["t"] < 2.0, iv
    assert ph["recovery-fault1"]["requests"] > 0
    assert ph["fault1"]["time_to_recover_s"] is not None


def test_a_named_proxy_delays_the_service_s_dependency(nginx_h1):
    proxy_port = peers.free_port()
    relay = subprocess.Popen([sys.executable, str(SERVERS / "relay_server.py"),
                              f"127.0.0.1:{proxy_port}"], stdout=subprocess.PIPE, text=True)
    try:
        url = "http://" + relay.stdout.readline().split()[-1] + "/"
        doc = run_json(url, "-R", "200", "-d", "4s", "-c", "32",
                       "--fault-proxy", f"dep=127.0.0.1:{proxy_port}=127.0.0.1:{nginx_h1.port}",
                       "--fault", "1s-3s@dep:latency=50ms")
    finally:
        relay.kill()
        relay.wait()
        relay.stdout.close()
    ph = phases(doc)
    assert 50_000 <= ph["fault1"]["latency_us"]["p50"] < 65_000
    assert ph["baseline"]["latency_us"]["p50"] < 10_000
    assert doc["faults"]["windows"][0]["target"] == "dep"
    assert "(url)" not in doc["faults"]["proxies"]  # fastload's own connections go direct


@pytest.mark.parametrize("args,needle", [
    (["--h2c", "--fault", "1s-2s:http_status=503"], "http_status needs HTTP/1.1"),
    (["-d", "5s", "--fault", "1s-9s:reset"], "after the run"),
    (["--fault", "1s-2s:bogus"], "bogus"),
    (["--fault", "1s-3s:reset", "--fault", "2s-4s:latency=10ms"], "overlap"),
    (["--fault", "1s-2s@nope:reset"], "nope"),
    (["--fault-proxy", "x=127.0.0.1:1=127.0.0.1:2"], "no --fault window names it"),
    (["--fault-dev", "lo"], "--fault-dev applies to --fault-via netem"),
    (["--slo", "nosuch:p99<1s", "--fault", "1s-2s:reset"], "nosuch"),
])
def test_bad_fault_input_is_one_line_before_traffic(nginx_h1, args, needle):
    before = nginx_h1.count_requests()
    p = fastload("run", nginx_h1.url, "-d", "3s", *args)
    assert p.returncode == 2, p.stderr
    errors = [x for x in p.stderr.splitlines() if x.startswith("fastload: error")]
    assert len(errors) == 1 and needle in errors[0], p.stderr
    assert nginx_h1.count_requests() == before


def test_closed_model_with_a_fault_warns_about_coordinated_omission(nginx_h1):
    p = fastload("run", nginx_h1.url, "-d", "2s", "-c", "2", "--fault", "500ms-1s:latency=5ms",
                 "--json", "-", "--quiet")
    assert p.returncode == 0, p.stderr
    assert "closed model" in p.stderr and "-R" in p.stderr
    assert json.loads(p.stdout)["phases"][1]["name"] == "fault1"


@pytest.mark.skipif(subprocess.run(["id", "-u"], capture_output=True, text=True).stdout.strip() != "0",
                    reason="--fault-via netem needs root (CI runs as root)")
def test_netem_latency_or_a_clean_refusal_and_nothing_left(nginx_h1):
    p = fastload("run", nginx_h1.url, "-R", "200", "-d", "3s", "-c", "32", "--fault-via", "netem",
                 "--fault", "1s-2s:latency=50ms", "--json", "-", "--quiet")
    left = subprocess.run(["tc", "qdisc", "show", "dev", "lo"], capture_output=True, text=True).stdout
    assert "fa57:" not in left  # fastload's tree is gone, whatever happened
    if p.returncode == 2:
        # A kernel without sch_netem (this machine's): refused before any traffic, one line.
        errors = [x for x in p.stderr.splitlines() if x.startswith("fastload: error")]
        assert len(errors) == 1 and "netem" in errors[0], p.stderr
        return
    assert p.returncode == 0, p.stderr
    ph = phases(json.loads(p.stdout))
    # netem delays the packets to the server: each request's round trip gains the delay once.
    assert 50_000 <= ph["fault1"]["latency_us"]["p50"] < 60_000
    assert ph["baseline"]["latency_us"]["p50"] < 10_000

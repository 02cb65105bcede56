"""`fastload run --metrics-port`: the exposition text (pure render) and live scrapes of a real
run against nginx, checked against the run's own JSON."""

from __future__ import annotations

import json
import math
import re
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from fastload.report.prometheus import Snapshot, WorkerView, render
from support import peers

# One sample line of the text format: name, optional {label="value",...}, a float.
_SAMPLE_RE = re.compile(
    r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
    r'(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*")*)\})? '
    r"(NaN|[+-]Inf|[-+]?[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?)$")


def check_format(text: str) -> dict[str, str]:
    """Strict line-by-line check of the 0.0.4 text format; returns family name -> type. Every
    family has HELP then TYPE before its samples, and each sample belongs to the family above."""
    assert text.endswith("\n")
    types: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split(" ")[2]
            assert name not in types, f"family {name} twice"
            current = name
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name == current and kind in ("counter", "gauge")
            types[name] = kind
        else:
            m = _SAMPLE_RE.match(line)
            assert m, f"bad sample line {line!r}"
            assert m.group(1) == current
    return types


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(sample name, sorted labels) -> value, through prometheus_client's own parser."""
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def snapshot(**kw) -> Snapshot:
    w0 = WorkerView(index=0, requests=70, errors={"connect": 0, "timeout": 2, "reset": 1, "protocol": 0},
                    status_codes={"200": 60, "503": 10}, rps=35.5,
                    latency_s={"0.5": 0.001, "0.9": 0.002, "0.99": 0.004, "1": 0.008})
    w1 = WorkerView(index=1, requests=30, errors={"connect": 1, "timeout": 0, "reset": 0, "protocol": 0},
                    status_codes={"200": 30}, rps=15.0, latency_s=None)
    base = {"info": {"version": "0.1.0", "url": 'http://h/a"b\\c', "protocol": "h1",
                     "connections": "4", "workers": "2"},
            "up": True, "elapsed_s": 2.0, "rps": 50.0,
            "latency_s": {"0.5": 0.001, "0.9": 0.002, "0.99": 0.004, "1": 0.008},
            "workers": (w0, w1)}
    base.update(kw)
    return Snapshot(**base)


def test_render_is_valid_exposition_text_with_totals_and_per_worker_values():
    text = render(snapshot())
    types = check_format(text)
    assert types["fastload_requests_total"] == "counter"
    assert types["fastload_worker_errors_total"] == "counter"
    assert types["fastload_latency_seconds"] == "gauge"
    s = samples(text)
    assert s[("fastload_requests_total", ())] == 100
    assert s[("fastload_worker_requests_total", (("worker", "0"),))] == 70
    assert s[("fastload_errors_total", (("class", "timeout"),))] == 2
    assert s[("fastload_errors_total", (("class", "connect"),))] == 1
    assert s[("fastload_worker_errors_total", (("class", "reset"), ("worker", "0")))] == 1
    assert s[("fastload_responses_total", (("code", "503"),))] == 10
    assert s[("fastload_responses_total", (("code", "200"),))] == 90
    assert s[("fastload_requests_per_second", ())] == 50.0
    assert s[("fastload_latency_seconds", (("quantile", "0.99"),))] == 0.004
    assert s[("fastload_worker_latency_seconds", (("quantile", "1"), ("worker", "0")))] == 0.008
    # No data in the worker's last interval: NaN, not a made-up 0.
    assert math.isnan(s[("fastload_worker_latency_seconds", (("quantile", "0.5"), ("worker", "1")))])
    assert s[("fastload_up", ())] == 1
    # Quotes and backslashes in label values are escaped, and the parser reads them back.
    assert 'url="http://h/a\\"b\\\\c"' in text
    info = [k for k in s if k[0] == "fastload_run_info"]
    assert dict(info[0][1])["url"] == 'http://h/a"b\\c'


def test_render_before_any_tick_has_nan_latency_and_zero_counters():
    idle = WorkerView(index=0, requests=0, errors={}, status_codes={}, rps=0.0, latency_s=None)
    text = render(snapshot(latency_s=None, rps=0.0, workers=(idle,)))
    check_format(text)
    s = samples(text)
    assert s[("fastload_requests_total", ())] == 0
    assert s[("fastload_errors_total", (("class", "timeout"),))] == 0
    assert math.isnan(s[("fastload_latency_seconds", (("quantile", "0.5"),))])
    assert not [k for k in s if k[0] == "fastload_responses_total"]


def scrape(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            return r.read().decode()
    except OSError:
        return None


def scrape_during(args: list[str], port: int, every_s: float = 0.05) -> tuple[list[str], str, int]:
    """Runs `fastload run *args` and scrapes /metrics on port until it ends: (the scrapes,
    its stderr, its exit code)."""
    proc = subprocess.Popen([sys.executable, "-m", "fastload", "run", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    scrapes: list[str] = []
    try:
        deadline = time.monotonic() + 90
        while proc.poll() is None and time.monotonic() < deadline:
            text = scrape(port)
            if text is not None:
                scrapes.append(text)
            time.sleep(every_s)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    return scrapes, err, proc.returncode


def test_live_scrapes_during_a_real_run_agree_with_the_json(nginx_h1, tmp_path):
    port = peers.free_port()
    out = tmp_path / "r.json"
    scrapes, err, code = scrape_during([nginx_h1.url, "-d", "3s", "-c", "4", "-w", "2",
                                        "--metrics-port", str(port), "--json", str(out), "--quiet"],
                                       port)
    assert code == 0, err
    doc = json.loads(out.read_text())
    assert len(scrapes) >= 10
    totals = []
    for text in scrapes:
        check_format(text)
        s = samples(text)
        assert s[("fastload_up", ())] == 1
        total = s[("fastload_requests_total", ())]
        per_worker = [v for (name, _), v in s.items() if name == "fastload_worker_requests_total"]
        assert len(per_worker) == 2 and sum(per_worker) == total
        assert sum(v for (n, _), v in s.items() if n == "fastload_responses_total") == total
        totals.append(total)
    assert totals == sorted(totals), "the request counter went backwards"
    assert totals[-1] > 0
    # The last scrape may miss at most the final second(s) the workers had not reported yet.
    final = doc["requests"]
    missed_at_most = sum(iv["requests"] for iv in doc["timeline"][-2:])
    assert final - missed_at_most <= totals[-1] <= final
    last = samples(scrapes[-1])
    info = [dict(k[1]) for k in last if k[0] == "fastload_run_info"][0]
    assert info["url"] == nginx_h1.url and info["workers"] == "2" and info["protocol"] == "h1"
    p50 = last[("fastload_latency_seconds", (("quantile", "0.5"),))]
    p99 = last[("fastload_latency_seconds", (("quantile", "0.99"),))]
    assert 0 < p50 <= p99 <= last[("fastload_latency_seconds", (("quantile", "1"),))]
    assert scrape(port) is None, "the endpoint must be gone after the run"


def test_metrics_port_in_use_is_a_usage_error_before_traffic(nginx_h1):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        before = nginx_h1.count_requests()
        p = subprocess.run([sys.executable, "-m", "fastload", "run", nginx_h1.url, "-n", "100",
                            "--metrics-port", str(port)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2, p.stderr
    assert f"--metrics-port: cannot listen on 127.0.0.1:{port}" in p.stderr
    assert nginx_h1.count_requests() == before


@pytest.mark.parametrize("bad", ["0", "70000", "http"])
def test_bad_metrics_port_is_refused(bad):
    p = subprocess.run([sys.executable, "-m", "fastload", "run", "http://127.0.0.1:1/",
                        "--metrics-port", bad], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2
    assert "--metrics-port" in p.stderr

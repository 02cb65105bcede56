"""The Python API (fastload.run / compare / Result) against real nginx: same numbers and the
same document as the CLI, bad input refused before any traffic."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

import fastload
from fastload import Result, RunError, UsageError
from fastload.results.histogram import PERCENTILES


def test_run_counts_exactly_and_result_gives_the_numbers(nginx_h1, tmp_path):
    before = nginx_h1.count_requests()
    out = tmp_path / "r.json"
    r = fastload.run(nginx_h1.url, requests=1500, connections=4, workers=2,
                     slo=["p99<10s", "errors==0"], tags={"build": "abc"}, json=str(out))
    assert isinstance(r, Result)
    assert nginx_h1.count_requests() - before == 1500
    assert r.requests == 1500 == r["requests"]
    assert r.errors == 0
    assert r.rps == pytest.approx(1500 / r["duration_s"])
    assert r.passed is True
    assert [(s["expr"], s["passed"]) for s in r.slo] == [("p99<10s", True), ("errors==0", True)]
    assert r["tags"] == {"build": "abc"}
    assert r.complete
    # Any percentile comes from the exact histogram, with latency_us's semantics.
    for key, pct in PERCENTILES:
        assert r.latency(pct) == r["latency_us"][key]
    assert r.latency(50) <= r.latency(99.5) <= r.latency(99.95) <= r.latency(100)
    assert r.latency(100) >= r["latency_us"]["p99.99"]
    # json= writes the very document the Result holds; both load back equal.
    assert json.loads(out.read_text()) == r.doc
    assert Result.from_json(out).doc == r.doc
    assert Result.from_json(str(out)).doc == r.doc
    assert Result.from_json(r.to_json()).doc == r.doc


def test_failed_slo_does_not_raise_and_is_reported(nginx_h1):
    r = fastload.run(nginx_h1.url, requests=200, connections=2, workers=1, slo="p50<1us")
    assert r.passed is False
    assert r.slo[0]["passed"] is False and r.slo[0]["value"] == r["latency_us"]["p50"]


def test_api_and_cli_write_the_same_document(nginx_h1):
    args = dict(requests=300, connections=2, workers=1, method="HEAD", headers={"X-A": "1"},
                timeout=2.5, warmup=0)
    r = fastload.run(nginx_h1.url, **args)
    p = subprocess.run([sys.executable, "-m", "fastload", "run", nginx_h1.url, "-n", "300", "-c", "2",
                        "-w", "1", "-X", "HEAD", "-H", "X-A: 1", "--timeout", "2.5s", "--warmup", "0s",
                        "--json", "-", "--quiet"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    cli = json.loads(p.stdout)
    assert set(cli) == set(r.doc)
    assert cli["config"] == r["config"]
    assert cli["config"]["headers"] == ["X-A: 1"] and cli["config"]["timeout_s"] == 2.5
    assert cli["requests"] == r.requests == 300


def test_durations_accept_numbers_of_seconds(nginx_h1):
    r = fastload.run(nginx_h1.url, duration=0.5, connections=2, workers=1)
    assert r["config"]["duration_s"] == 0.5
    assert r["duration_s"] == pytest.approx(0.5, abs=0.05)
    assert r.requests > 0


@pytest.mark.parametrize("kwargs, message", [
    ({"duration": "soon"}, "--duration"),
    ({"connections": 0}, "--connections"),
    ({"duration": "1s", "requests": 10}, "exclusive"),
    ({"slo": ["p99<<1ms"]}, "--slo"),
    ({"headers": ["no colon"]}, "header"),
    ({"tags": ["novalue"]}, "--tag"),
    ({"metrics_port": 0}, "--metrics-port"),
    ({"json": "/nonexistent/dir/r.json"}, "--json"),
])
def test_bad_input_raises_usage_error_before_any_traffic(nginx_h1, kwargs, message):
    before = nginx_h1.count_requests()
    with pytest.raises(UsageError, match=message):
        fastload.run(nginx_h1.url, **kwargs)
    assert nginx_h1.count_requests() == before


def test_unreachable_target_raises_run_error():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(RunError, match="cannot connect"):
        fastload.run(f"http://127.0.0.1:{port}/", requests=10)


def test_metrics_server_is_closed_after_an_api_run(nginx_h1):
    import socket

    from support import peers

    port = peers.free_port()
    fastload.run(nginx_h1.url, requests=100, connections=1, workers=1, metrics_port=port)
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))  # free again: no server and no worker kept it


def test_latency_argument_checks_and_empty_result():
    doc = {"schema": "fastload.result/1", "requests": 0, "histogram": "", "started_at": 0,
           "duration_s": 1.0, "target": {"url": "http://x/"}}
    r = Result(doc)
    assert math.isnan(r.latency(99))
    assert not r.latency(99) < 1e9  # a NaN makes a latency assertion fail, as it should
    with pytest.raises(ValueError):
        r.latency(100.5)
    with pytest.raises(UsageError, match="schema"):
        Result.from_json('{"schema": "other/1"}')


def _faster(doc: dict, factor: float) -> dict:
    """The same run, as if the server had been `factor` times faster."""
    d = json.loads(json.dumps(doc))
    d["rps"] *= factor
    for iv in d["timeline"]:
        iv["rps"] *= factor
    return d


def test_compare_accepts_results_documents_and_paths(nginx_h1, tmp_path):
    r = fastload.run(nginx_h1.url, duration="4s", connections=2, workers=1)
    assert len(r["timeline"]) >= 4
    same = fastload.compare(r, r)
    assert same.regression is False and same["max_regression"] == 0.05
    assert [row["metric"] for row in same.rows] == ["rps", "p50", "p90", "p99", "p99.9", "errors"]
    base = tmp_path / "base.json"
    base.write_text(json.dumps(_faster(r.doc, 10)))
    v = fastload.compare(base, r, "5%")
    assert v.regression is True
    assert [row["metric"] for row in v.rows if row["regression"]] == ["rps"]
    assert "REGRESSION" in v.table()
    # The CLI decides the same from the same files.
    cur = tmp_path / "cur.json"
    cur.write_text(r.to_json())
    p = subprocess.run([sys.executable, "-m", "fastload", "compare", str(base), str(cur), "--json",
                        str(tmp_path / "v.json")], capture_output=True, text=True, timeout=60)
    assert p.returncode == 1
    assert json.loads((tmp_path / "v.json").read_text()) == fastload.compare(str(base), cur).data
    assert fastload.compare(_faster(r.doc, 10), r, max_regression=20.0).regression is False
    other = dict(r.doc, target={"url": "http://elsewhere/", "protocol": "h1"})
    with pytest.raises(UsageError, match="different targets"):
        fastload.compare(other, r)
    assert fastload.compare(other, r, force=True).regression is False
    with pytest.raises(UsageError, match="max-regression"):
        fastload.compare(r, r, -0.1)
    with pytest.raises(UsageError, match="cannot read"):
        fastload.compare(tmp_path / "missing.json", r)

"""`fastload merge` and `fastload compare` on real result documents."""

from __future__ import annotations

import itertools
import json
import os

import pytest
from hdrh.histogram import HdrHistogram

from fastload.results.compare import compare, mann_whitney_greater
from support import peers
from support.run import fastload, run_json

TWO_CPUS = {0, 1} <= os.sched_getaffinity(0)


def write(tmp_path, name: str, doc: dict) -> str:
    p = tmp_path / name
    p.write_text(json.dumps(doc))
    return str(p)


def test_merge_equals_the_runs_totals(nginx_h1, tmp_path):
    a = run_json(nginx_h1.url, "-n", "1000", "-c", "2", "-w", "1")
    b = run_json(nginx_h1.url, "-n", "1500", "-c", "4", "-w", "2", "--tag", "host=b")
    p = fastload("merge", write(tmp_path, "a.json", a), write(tmp_path, "b.json", b))
    assert p.returncode == 0, p.stderr
    m = json.loads(p.stdout)
    assert m["requests"] == 2500
    assert m["status_codes"] == {"200": 2500}
    assert HdrHistogram.decode(m["histogram"]).get_total_count() == 2500
    assert sum(iv["requests"] for iv in m["timeline"]) == 2500
    assert m["errors"]["total"] == 0
    assert m["latency_us"]["mean"] == pytest.approx(
        (a["latency_us"]["mean"] * 1000 + b["latency_us"]["mean"] * 1500) / 2500, rel=1e-9)
    assert m["latency_us"]["max"] == max(a["latency_us"]["max"], b["latency_us"]["max"])
    assert m["tags"] == {"host": "b"}
    assert len(m["workers"]) == 3
    assert m["started_at"] == min(a["started_at"], b["started_at"])


def test_merge_refuses_different_targets_and_bad_files(nginx_h1, h2o_server, tmp_path):
    a = run_json(nginx_h1.url, "-n", "200", "-c", "2", "-w", "1")
    b = run_json(h2o_server.url, "-n", "200", "-c", "2", "-w", "1")
    pa, pb = write(tmp_path, "a.json", a), write(tmp_path, "b.json", b)
    p = fastload("merge", pa, pb)
    assert p.returncode == 2 and "different targets" in p.stderr
    p = fastload("merge", pa, pb, "--force")
    assert p.returncode == 0 and json.loads(p.stdout)["requests"] == 400
    bad = write(tmp_path, "bad.json", {"schema": "other/9"})
    p = fastload("merge", pa, bad)
    assert p.returncode == 2 and "schema" in p.stderr
    p = fastload("merge", pa, str(tmp_path / "missing.json"))
    assert p.returncode == 2 and "cannot read" in p.stderr


@pytest.fixture(scope="module")
def base_server():
    # Server and client on CPUs of their own, as the benchmark does: a tail percentile moved by
    # the two sharing a CPU is a real difference between runs, but not the one this test is about.
    with peers.fastload_server(delay="20ms", cpu=0 if TWO_CPUS else None) as s:
        yield s


@pytest.fixture(scope="module")
def slower_server():
    with peers.fastload_server(delay="80ms", cpu=0 if TWO_CPUS else None) as s:
        yield s


def test_compare_passes_identical_servers_and_flags_a_slower_one(base_server, slower_server, tmp_path):
    # Closed loop on servers with a fixed delay: rps and latency are set by the delay, so two
    # runs against the same server are alike, and the 80 ms server is plainly slower than 20 ms.
    # The delay is long beside what a busy host adds to a tail: in CI two runs against a 5 ms
    # server differed by 1.3 ms at p99 (+20%, and significant, as the host was busier for the
    # second run); on 20 ms that is 6%, inside the 15% allowed here.
    pin = ["--cpus", "1"] if TWO_CPUS else []
    base = run_json(base_server.url, "-d", "6s", "-c", "4", "-w", "1", *pin)
    again = run_json(base_server.url, "-d", "6s", "-c", "4", "-w", "1", *pin)
    slow = run_json(slower_server.url, "-d", "6s", "-c", "4", "-w", "1", *pin)
    pb, pa, ps = (write(tmp_path, n, d) for n, d in (("b.json", base), ("a.json", again), ("s.json", slow)))
    p = fastload("compare", pb, pa, "--max-regression", "15%", "--json", str(tmp_path / "v.json"))
    assert p.returncode == 0, p.stdout + p.stderr
    assert "no significant regression" in p.stdout
    p = fastload("compare", pb, ps, "--force", "--json", str(tmp_path / "v.json"))
    assert p.returncode == 1, p.stdout + p.stderr
    verdict = json.loads((tmp_path / "v.json").read_text())
    rows = {r["metric"]: r for r in verdict["rows"]}
    assert rows["rps"]["regression"] and rows["p50"]["regression"]
    assert rows["rps"]["p_value"] < 0.05
    assert rows["rps"]["change"] == pytest.approx(-0.75, abs=0.05)
    assert rows["p50"]["change"] == pytest.approx(3.0, abs=0.2)
    assert "REGRESSION" in p.stdout
    p = fastload("compare", pb, ps)
    assert p.returncode == 2 and "--force" in p.stderr


def test_compare_bad_input_exits_2(tmp_path):
    p = fastload("compare", str(tmp_path / "nope.json"), str(tmp_path / "nope2.json"))
    assert p.returncode == 2 and "cannot read" in p.stderr
    good = {"schema": "fastload.result/1", "requests": 1, "histogram": "", "started_at": 0,
            "duration_s": 1, "target": {"url": "http://x/"}}
    a = write(tmp_path, "a.json", good)
    p = fastload("compare", a, a, "--max-regression", "lots")
    assert p.returncode == 2 and "--max-regression" in p.stderr


def exact_p_greater(x: list[float], y: list[float]) -> float:
    """Permutation p-value of the rank-sum statistic (no ties), by full enumeration."""
    pooled = sorted(x + y)
    rank = {v: i + 1 for i, v in enumerate(pooled)}
    observed = sum(rank[v] for v in x)
    n = len(pooled)
    sums = [sum(c) for c in itertools.combinations(range(1, n + 1), len(x))]
    return sum(1 for s in sums if s >= observed) / len(sums)


@pytest.mark.parametrize("shift", [0.0, 0.5, 1.0, 2.0, -1.0])
def test_mann_whitney_matches_the_exact_test(shift):
    import random

    rng = random.Random(7)
    x = [rng.gauss(shift, 1) for _ in range(8)]
    y = [rng.gauss(0, 1) for _ in range(8)]
    assert mann_whitney_greater(x, y) == pytest.approx(exact_p_greater(x, y), abs=0.03)


def _doc(p99_per_second: list[float], p99: float) -> dict:
    # Seven seconds; compare leaves out the first and the last.
    seconds = [p99_per_second[0], *p99_per_second, p99_per_second[-1]]
    return {"schema": "fastload.result/1", "rps": 1000.0, "requests": 7000, "errors": {"total": 0},
            "latency_us": {"p50": 100.0, "p90": 100.0, "p99": p99, "p99.9": p99},
            "timeline": [{"t": i, "rps": 1000.0, "p50_us": 100.0, "p99_us": v}
                         for i, v in enumerate(seconds)]}


def test_a_tail_moved_by_a_few_noisy_seconds_is_not_a_regression():
    base = _doc([104, 101, 103, 102, 104], 104)
    noisy = _doc([104, 130, 105, 120, 104], 125)
    v = compare(base, noisy, 0.05)
    p99 = next(r for r in v["rows"] if r["metric"] == "p99")
    # The rank test alone would call it (p < 0.05), but the median second did not move.
    assert p99["worse_than_allowed"] and p99["p_value"] < 0.05
    assert p99["median_change_ci95"][0] <= 0
    assert not p99["regression"] and not v["regression"]
    shifted = _doc([124, 130, 125, 120, 128], 125)
    v = compare(base, shifted, 0.05)
    assert [r["metric"] for r in v["rows"] if r["regression"]] == ["p99", "p99.9"]


def test_merge_sums_perf_counters_and_keeps_each_server_cpu(nginx_h1, tmp_path):

    master = str(peers.nginx_master_pid(nginx_h1))
    docs = [run_json(nginx_h1.url, "--perf-stat=task-clock,context-switches", "-n", str(n), "-c", "2",
                     "-w", "1", "--server-pid", master) for n in (1000, 1500)]
    p = fastload("merge", *(write(tmp_path, f"{i}.json", d) for i, d in enumerate(docs)))
    assert p.returncode == 0, p.stderr
    m = json.loads(p.stdout)
    assert m["perf"]["events"] == docs[0]["perf"]["events"]
    for event, value in m["perf"]["counters"].items():
        assert value == pytest.approx(sum(d["perf"]["counters"][event] for d in docs))
    assert [f["server_cpu"] for f in m["merged_from"]] == [d["server_cpu"] for d in docs]
    assert "server_cpu" not in m
    # The clients' CPU, unlike the one server's, adds up.
    for key in ("client_cpu_s", "client_cpu_user_s", "client_cpu_sys_s", "client_cpu_wait_s"):
        assert m[key] == pytest.approx(sum(d[key] for d in docs))
    assert m["client_cpu_us_per_request"] == pytest.approx(m["client_cpu_s"] * 1e6 / 2500)

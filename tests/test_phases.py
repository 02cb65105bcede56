"""--phase windows, per-phase results by intended send time, recovery figures, per-phase gates
and --at hooks: against nginx's access log, against a server whose recovery time is known, and
on synthetic timelines."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager

import pytest
from hdrh.histogram import HdrHistogram
from hypothesis import given, settings
from hypothesis import strategies as st

from fastload import native
from fastload.config.windows import Window, check_windows, partition
from fastload.errors import UsageError
from fastload.results import merge as combine
from fastload.results import phases as ph
from fastload.results import slo
from support import SERVERS
from support.run import fastload, run_json

# A port nothing listens on: input that passed validation would fail to connect (exit 3), so
# exit 2 shows the input was refused before any traffic.
CLOSED = "http://127.0.0.1:9/"


def test_phase_counts_add_up_to_the_total_and_to_nginx(nginx_h1):
    before = nginx_h1.count_requests()
    doc = run_json(nginx_h1.url, "-R", "500", "-d", "4s", "-c", "8", "-w", "1", "--phase", "p=1s-2s")
    served = nginx_h1.count_requests() - before
    names = [p["name"] for p in doc["phases"]]
    assert names == ["baseline", "p", "recovery-p"]
    assert [(p["start_s"], p["end_s"]) for p in doc["phases"]] == [(0.0, 1.0), (1.0, 2.0), (2.0, 4.0)]
    assert sum(p["requests"] for p in doc["phases"]) == doc["requests"]
    assert doc["requests"] <= served <= doc["requests"] + 8
    assert doc["errors"]["total"] == 0
    for p in doc["phases"]:
        # -R 500 sends by schedule: 500 per second of phase, give or take one at the edges.
        assert p["requests"] == pytest.approx(500 * (p["end_s"] - p["start_s"]), abs=3)
        assert HdrHistogram.decode(p["histogram"]).get_total_count() == p["requests"]
        assert sum(p["status_codes"].values()) == p["requests"]
    window = doc["phases"][1]
    assert set(window["impact"]) == {"p50", "p99", "p99.9", "error_rate"}
    assert "time_to_recover_s" in window and "time_to_degrade_s" in window
    fine = doc["fine_timeline"]
    assert len(fine) == 40 and [e["t"] for e in fine[:3]] == [0.0, 0.1, 0.2]
    assert sum(e["requests"] for e in fine) == doc["requests"]
    assert all(e["requests"] == pytest.approx(50, abs=2) for e in fine[:-1])


def test_no_windows_no_phases(nginx_h1):
    doc = run_json(nginx_h1.url, "-d", "300ms", "-c", "2", "-w", "1")
    assert "phases" not in doc and "fine_timeline" not in doc and "hooks" not in doc


@contextmanager
def slow_server(delay_s: float, linger_s: float):
    proc = subprocess.Popen([sys.executable, str(SERVERS / "slow_server.py"), str(delay_s), str(linger_s)],
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        port = int(proc.stdout.readline().split()[-1])

        def stats() -> dict:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/__stats", timeout=5) as r:
                return json.loads(r.read())

        yield f"http://127.0.0.1:{port}/", proc.pid, stats
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
        proc.stdout.close()


def test_recovery_time_against_a_known_truth():
    # Fast, then 50 ms per response from the hook at 1s, and still slow for LINGER after the
    # hook at 2s says the fault ended. LINGER is off the 100 ms grid so that the interval in
    # which the server turns fast is not what decides.
    linger = 0.95
    with slow_server(0.05, linger) as (url, pid, stats):
        doc = run_json(url, "-R", "400", "-d", "5s", "-c", "40", "-w", "1", "--phase", "f=1s-2s",
                       "--at", f"1s:kill -USR1 {pid}", "--at", f"2s:kill -USR2 {pid}",
                       "--recover", "p99<25ms")
        seen = stats()
    assert seen["fast_again"] - seen["fault_off"] == pytest.approx(linger)
    hooks = doc["hooks"]
    assert [h["exit_code"] for h in hooks] == [0, 0]
    assert [h["at_s"] for h in hooks] == [1.0, 2.0]
    assert all(abs(h["start_s"] - h["at_s"]) < 0.1 for h in hooks)
    window = next(p for p in doc["phases"] if p["name"] == "f")
    assert window["time_to_recover_s"] == pytest.approx(linger, abs=0.2)
    assert window["time_to_degrade_s"] == pytest.approx(0.0, abs=0.2)
    assert window["latency_us"]["p50"] >= 50_000
    assert window["impact"]["p50"] > 10
    assert sum(p["requests"] for p in doc["phases"]) == doc["requests"]


def test_hooks_still_running_at_the_end_are_killed_and_failures_warned(nginx_h1):
    p = fastload("run", nginx_h1.url, "-d", "500ms", "-c", "2", "-w", "1", "--timeout", "300ms",
                 "--at", "0s:echo started; sleep 30", "--at", "100ms:echo bad >&2; exit 4",
                 "--json", "-", "--quiet")
    assert p.returncode == 0, p.stderr
    hooks = json.loads(p.stdout)["hooks"]
    assert hooks[0]["killed"] and hooks[0]["output"] == "started\n"
    assert hooks[1]["exit_code"] == 4 and hooks[1]["output"] == "bad\n" and not hooks[1]["killed"]
    assert "hook at 0.1s (echo bad >&2; exit 4) exited with 4" in p.stderr
    assert "hook at 0s (echo started; sleep 30) was killed at the end of the run" in p.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--phase", "a=1s-3s", "--phase", "b=2s-4s"], "windows 'a' (1s-3s) and 'b' (2s-4s) overlap"),
    (["--phase", "a=1s-6s"], "window 'a' (1s-6s) ends after the run, which lasts 5s"),
    (["--phase", "a=1s"], "is not a window START-END"),
    (["--phase", "a=2s-1s"], "ends before it starts"),
    (["--phase", "a=1s-2s", "--phase", "a=3s-4s"], "window name 'a' is given twice"),
    (["--phase", "baseline=1s-2s"], "is the name of a phase fastload makes"),
    (["--phase", "a=1s-2s", "--slo", "fault1:p99<800ms"], "no phase 'fault1' in this run"),
    (["--phase", "a=1s-2s", "--slo", "baseline:recovery<1s"], "'baseline' is not a window"),
    (["--slo", "recovery<47s"], "recovery needs a window"),
    (["--recover", "p99<5ms"], "--recover needs a window"),
    (["--phase", "a=1s-2s", "--recover", "p99<"], "--recover 'p99<': cannot parse"),
    (["--at", "6s:true"], "this hook would never run"),
    (["--at", "true"], "expected OFFSET:COMMAND"),
])
def test_bad_windows_gates_and_hooks_exit_2_before_any_traffic(args, message):
    p = fastload("run", CLOSED, "-d", "5s", *args)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], p.stderr


def test_closed_model_with_windows_warns(nginx_h1):
    p = fastload("run", nginx_h1.url, "-d", "300ms", "-c", "2", "-w", "1", "--phase", "a=100ms-200ms",
                 "--json", "-", "--quiet")
    assert p.returncode == 0, p.stderr
    assert "a closed model slows down with the server" in p.stderr and "-R RATE measures it" in p.stderr


# ---- windows and the partition ----

def _w(name: str, a: float, b: float) -> Window:
    return Window(name, "phase", f"{a:g}s-{b:g}s", int(a * 1e9), int(b * 1e9))


def test_partition_baseline_windows_and_recoveries():
    ws = check_windows([_w("b", 5, 6), _w("a", 1, 2)], 10 * 10**9)
    got = [(p.name, p.kind, p.start_ns // 10**9, None if p.end_ns is None else p.end_ns // 10**9)
           for p in partition(ws, 10 * 10**9)]
    assert got == [("baseline", "baseline", 0, 1), ("a", "phase", 1, 2), ("recovery-a", "recovery", 2, 5),
                   ("b", "phase", 5, 6), ("recovery-b", "recovery", 6, 10)]
    # Touching windows have no recovery between them; a window from 0 has no baseline; a -n
    # run's last recovery lasts until the end.
    got = [p.name for p in partition(check_windows([_w("a", 0, 1), _w("b", 1, 2)], None), None)]
    assert got == ["a", "b", "recovery-b"]
    assert partition(check_windows([_w("a", 0, 1)], None), None)[-1].end_ns is None


# ---- native counting against a pure-Python reference ----

@settings(max_examples=60, deadline=None)
@given(starts=st.lists(st.integers(1, 3_000_000_000), max_size=5, unique=True),
       records=st.lists(st.tuples(st.integers(0, 4_000_000_000), st.integers(0, 200_000_000),
                                  st.sampled_from([-1, 0, 1, 2]), st.booleans()), max_size=200))
def test_native_phase_and_interval_counts_match_the_reference(starts, records):
    """Each record: (intended offset, latency ns, outcome: -1 a response, else an error class,
    whether a tick takes the 100 ms intervals first)."""
    starts = sorted(starts)
    origin = 1_000_000_000
    stats = native.WorkerStats()
    stats.record_from_ns = origin
    stats.stop_ns = 1 << 62
    # A ring of 16 intervals (1.6 s) for offsets up to 4 s: it grows when a tick's span outgrows it.
    stats.set_phases(starts, 0)
    rec = native.Recorder(stats)
    n = len(starts) + 1
    want = [[0, 0] for _ in range(n)]
    want_sum_ns = [0] * n
    want_fine: dict[int, list[int]] = {}
    got_fine: dict[int, list[int]] = {}

    def take() -> None:
        for i, req, err, blob in stats.take_fine():
            g = got_fine.setdefault(i, [0, 0])
            g[0] += req
            g[1] += sum(err.values())
            assert HdrHistogram.decode(blob).get_total_count() == req

    for offset, lat, outcome, tick in records:
        if tick:
            take()
        p = sum(1 for s in starts if offset >= s)  # the reference: phases by intended time
        f = offset // 100_000_000
        fine = want_fine.setdefault(f, [0, 0])
        if outcome < 0:
            assert rec.on_response(200, origin + offset, origin + offset + lat, origin + offset)
            want[p][0] += 1
            want_sum_ns[p] += lat
            fine[0] += 1
        else:
            rec.on_failure(outcome, origin + offset, origin + offset + lat, 1)
            want[p][1] += 1
            fine[1] += 1
    got = [[r["requests"], sum(r["errors"].values())] for r in stats.phase_results()]
    assert got == want
    assert [r["sum_ns"] for r in stats.phase_results()] == want_sum_ns
    assert sum(g[0] for g in got) == stats.requests
    take()
    assert got_fine == want_fine
    assert stats.take_fine() == []
    for r in stats.phase_results():
        assert HdrHistogram.decode(r["histogram"]).get_total_count() == r["requests"]


# ---- recovery figures on synthetic timelines ----

def _interval(i: int, p99_ms: float | None, errors: int = 0, requests: int = 100) -> dict:
    e: dict = {"t": round(i * 0.1, 1), "requests": requests, "rps": requests * 10.0,
               "errors": {"total": errors, **({"timeout": errors} if errors else {})}}
    if requests:
        e["latency_us"] = {"p50": int(p99_ms * 500), "p99": int(p99_ms * 1000), "p99.9": int(p99_ms * 1000)}
    return e


def _phase(name: str, kind: str, a: float, b: float, p99_ms: float, errors: int = 0,
           requests: int = 1000) -> dict:
    return {"name": name, "kind": kind, "spec": "", "start_s": a, "end_s": b, "requests": requests,
            "rps": requests / (b - a), "errors": {"total": errors},
            "latency_us": {"p50": p99_ms * 500, "p99": p99_ms * 1000, "p99.9": p99_ms * 2000}}


def test_recovery_and_degrade_on_a_synthetic_timeline():
    # Baseline p99 2 ms: the default limit is max(3 ms, 3 ms). The window 1s-2s degrades 300 ms
    # in; after its end one good interval, one bad, then good from 2.4s on.
    p99 = [2] * 10 + [2, 2, 2] + [40] * 7 + [2, 9] + [9, 9] + [2] * 16
    timeline = [_interval(i, v) for i, v in enumerate(p99)]
    phases = [_phase("baseline", "baseline", 0, 1, 2), _phase("f", "phase", 1, 2, 40),
              _phase("recovery-f", "recovery", 2, 4, 2)]
    ph.figures(phases, timeline)
    f = phases[1]
    assert f["time_to_degrade_s"] == pytest.approx(0.3)
    assert f["time_to_recover_s"] == pytest.approx(0.4)
    assert f["impact"] == {"p50": 20.0, "p99": 20.0, "p99.9": 20.0, "error_rate": 1.0}
    assert "time_to_recover_s" not in phases[0] and "time_to_recover_s" not in phases[2]


def test_recovery_counts_errors_empty_intervals_and_the_next_window():
    base = _phase("baseline", "baseline", 0, 1, 2)
    # Errors above baseline + 0.1 points break the criterion; an empty interval breaks it.
    timeline = [_interval(i, 2) for i in range(10)] + [_interval(10 + i, 2, errors=5) for i in range(10)]
    timeline += [_interval(20, 2, requests=0), _interval(21, 2, errors=1, requests=999)]
    timeline += [_interval(22 + i, 2) for i in range(8)]
    phases = [base, _phase("f", "phase", 1, 2, 2, errors=50), _phase("recovery-f", "recovery", 2, 3, 2)]
    ph.figures(phases, timeline)
    # 1 error in 1000 is 0.1 points over a 0 baseline: still within.
    assert phases[1]["time_to_degrade_s"] == 0.0
    assert phases[1]["time_to_recover_s"] == pytest.approx(0.1)
    assert phases[1]["impact"]["error_rate"] is None  # from 0: no finite ratio
    # Never recovered before the next window: None, and the recovery gate fails.
    timeline = [_interval(i, 2) for i in range(10)] + [_interval(10 + i, 50) for i in range(20)]
    phases = [base, _phase("a", "phase", 1, 2, 50), _phase("recovery-a", "recovery", 2, 2.25, 50),
              _phase("b", "phase", 2.25, 3, 50)]
    ph.figures(phases, timeline)
    assert phases[1]["time_to_recover_s"] is None
    doc = {"phases": phases}
    assert slo.parse("a:recovery<47s").check(doc)["passed"] is False
    assert slo.parse("recovery<47s").check(doc)["passed"] is False


def test_recover_expressions_replace_the_default_criterion():
    timeline = [_interval(i, 2) for i in range(10)] + [_interval(10 + i, 20) for i in range(10)]
    timeline += [_interval(20 + i, 20) for i in range(3)] + [_interval(23 + i, 8) for i in range(7)]
    phases = [_phase("baseline", "baseline", 0, 1, 2), _phase("f", "phase", 1, 2, 20),
              _phase("recovery-f", "recovery", 2, 3, 10)]
    ph.figures(phases, timeline, ["p99<10ms", "errors<1%"])
    assert phases[1]["time_to_degrade_s"] == 0.0
    assert phases[1]["time_to_recover_s"] == pytest.approx(0.3)
    ph.figures(phases, timeline)  # the default: 8 ms > 3 ms, never
    assert phases[1]["time_to_recover_s"] is None


def test_phase_gates():
    doc = {"phases": [dict(_phase("baseline", "baseline", 0, 1, 2), time_to_recover_s=None),
                      dict(_phase("fault1", "phase", 1, 2, 900, errors=1), time_to_recover_s=12.5)]}
    del doc["phases"][0]["time_to_recover_s"]
    assert slo.parse("fault1:p99<800ms").check(doc)["passed"] is False
    assert slo.parse("fault1:p99<1s").check(doc) == {
        "expr": "fault1:p99<1s", "metric": "p99", "op": "<", "threshold": 1_000_000.0,
        "value": 900_000, "passed": True, "phase": "fault1"}
    assert slo.parse("baseline:errors<0.1%").check(doc)["passed"] is True
    assert slo.parse("fault1:errors<0.1%").check(doc)["passed"] is True  # 1 in 1001
    assert slo.parse("fault1:recovery<47s").check(doc)["value"] == 12.5
    assert slo.parse("recovery<12s").check(doc)["passed"] is False
    with pytest.raises(UsageError, match="no phase 'x'"):
        slo.check_scopes([slo.parse("x:p99<1s")], [("baseline", "baseline"), ("fault1", "phase")])


# ---- merge and report ----

def test_merge_two_documents_with_phases(nginx_h1, tmp_path):
    docs = []
    for i in range(2):
        p = fastload("run", nginx_h1.url, "-R", "200", "-d", "2s", "-c", "4", "-w", "1",
                     "--phase", "p=500ms-1s", "--json", str(tmp_path / f"r{i}.json"), "--quiet")
        assert p.returncode == 0, p.stderr
        docs.append(combine.load(str(tmp_path / f"r{i}.json")))
    merged = combine.merge_documents(docs)
    assert [p["name"] for p in merged["phases"]] == ["baseline", "p", "recovery-p"]
    assert sum(p["requests"] for p in merged["phases"]) == merged["requests"]
    for k, p in enumerate(merged["phases"]):
        assert p["requests"] == docs[0]["phases"][k]["requests"] + docs[1]["phases"][k]["requests"]
        assert HdrHistogram.decode(p["histogram"]).get_total_count() == p["requests"]
    assert len(merged["fine_timeline"]) == 20
    assert [e["requests"] for e in merged["fine_timeline"]] == [
        a["requests"] + b["requests"] for a, b in zip(docs[0]["fine_timeline"], docs[1]["fine_timeline"],
                                                      strict=True)]
    assert "time_to_recover_s" in merged["phases"][1]
    # The CLI merges, summarizes and reports them too.
    out = fastload("merge", str(tmp_path / "r0.json"), str(tmp_path / "r1.json"), "--json",
                   str(tmp_path / "m.json"))
    assert out.returncode == 0, out.stderr
    assert "recovery-p" in out.stderr
    html = fastload("report", str(tmp_path / "m.json"), "--html", str(tmp_path / "r.html"))
    assert html.returncode == 0, html.stderr
    page = (tmp_path / "r.html").read_text()
    assert 'id="phases"' in page and 'id="phase-recovery-p"' in page and 'class="window"' in page
    assert 'id="p99-per-100ms"' in page
    cmp = fastload("compare", str(tmp_path / "r0.json"), str(tmp_path / "r1.json"))
    assert cmp.returncode in (0, 1), cmp.stderr
    assert "per phase" in cmp.stdout and "recovery-p" in cmp.stdout


def test_hook_timing_does_not_block_the_load(nginx_h1):
    # A hook that sleeps through the run: the load keeps its schedule.
    t0 = time.monotonic()
    doc = run_json(nginx_h1.url, "-R", "200", "-d", "1s", "-c", "4", "-w", "1", "--timeout", "1s",
                   "--at", "0s:sleep 0.8")
    assert doc["requests"] == pytest.approx(200, abs=3)
    assert doc["hooks"][0]["exit_code"] == 0 and doc["hooks"][0]["duration_s"] >= 0.8
    assert time.monotonic() - t0 < 60


def test_phases_over_h2c_after_a_warmup_add_up_to_nginx(nginx_h2c):
    # The HTTP/2 session records through the same WorkerStats; windows start after the warm-up.
    before = nginx_h2c.count_requests()
    doc = run_json(nginx_h2c.url, "--h2c", "-R", "400", "--warmup", "500ms", "-d", "2s", "-c", "2",
                   "-w", "1", "--phase", "p=500ms-1s")
    served = nginx_h2c.count_requests() - before
    assert [p["name"] for p in doc["phases"]] == ["baseline", "p", "recovery-p"]
    assert sum(p["requests"] for p in doc["phases"]) == doc["requests"]
    assert [p["requests"] for p in doc["phases"]] == [pytest.approx(n, abs=3) for n in (200, 200, 400)]
    # The warm-up's 200 requests reached nginx but belong to no phase.
    assert doc["requests"] + 200 - 3 <= served <= doc["requests"] + 200 + 3 + 20


def test_phases_from_the_python_api(nginx_h1):
    from fastload import run

    result = run(nginx_h1.url, rate=200, duration="1s", connections=2, workers=1,
                 phase="p=300ms-600ms", slo=["p:errors==0", "baseline:requests>=50"])
    assert result.passed, result.slo
    assert [p["name"] for p in result["phases"]] == ["baseline", "p", "recovery-p"]
    assert [row["phase"] for row in result.slo] == ["p", "baseline"]


def test_degrading_is_judged_inside_the_window_only():
    # The window stays within the criterion; a spike after it is not the window degrading, but
    # it does delay the recovery.
    timeline = [_interval(i, 2) for i in range(20)] + [_interval(20, 9)] + [_interval(21 + i, 2) for i in range(9)]
    phases = [_phase("baseline", "baseline", 0, 1, 2), _phase("f", "phase", 1, 2, 2),
              _phase("recovery-f", "recovery", 2, 3, 2)]
    ph.figures(phases, timeline)
    assert phases[1]["time_to_degrade_s"] is None
    assert phases[1]["time_to_recover_s"] == pytest.approx(0.1)

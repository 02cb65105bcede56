"""bench/compare.py's paired statistics: the per-repetition ratios, their median and the
order-statistic interval it prints, checked on runs whose ratios are known (through
--summarize, in a process of its own: bench/ has a servers module of its own)."""

import json
import math
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"


def _compare(expr: str, *args: str) -> object:
    """expr evaluated in compare.py's namespace, in a process of its own; args as sys.argv[2:]."""
    out = subprocess.run(
        [sys.executable, "-c", "import json, sys; sys.path.insert(0, sys.argv[1]); import compare; "
         f"print(json.dumps({expr}))", str(BENCH), *args],
        capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def _summarize(path: Path) -> str:
    """What `compare.py --summarize path` prints."""
    return subprocess.run([sys.executable, str(BENCH / "compare.py"), "--summarize", str(path)],
                          capture_output=True, text=True, check=True, cwd=BENCH).stdout


def _interval(vals: list[float]) -> tuple[float, float] | None:
    got = _compare("compare.median_interval(json.loads(sys.argv[2]))", json.dumps(vals))
    return tuple(got) if got is not None else None


def _coverage(n: int, k: int) -> float:
    return 1 - 2 * sum(math.comb(n, i) for i in range(k)) / 2**n


def test_the_interval_is_the_widest_that_still_holds_the_median_90_percent():
    for n in (3, 4, 5, 6, 9, 15, 30):
        vals = [float(i) for i in range(1, n + 1)]
        got = _interval(vals)
        ks = [k for k in range(1, (n + 1) // 2 + 1) if _coverage(n, k) >= 0.9]
        if not ks:
            assert got is None, n
            continue
        k = max(ks)
        assert got == (vals[k - 1], vals[n - k]), n
        assert _coverage(n, k) >= 0.9 and (k + 1 > (n + 1) // 2 or _coverage(n, k + 1) < 0.9)
    assert _interval([float(i) for i in range(1, 10)]) == (2.0, 8.0)  # n = 9: 96% with k = 2


def _run(scenario, tool, rep, requests, rps, cpu_s, worker_cpu_s=float("nan")):
    return {"scenario": scenario, "tool": tool, "rep": rep, "cmd": [], "ok": True,
            "requests": requests, "rps": rps, "cpu_s": cpu_s, "wall_s": 5.0, "error": "",
            "worker_cpu_s": worker_cpu_s, "p50_ms": 1.0}


def test_summarize_prints_paired_ratios_of_each_repetition(tmp_path):
    # Nine repetitions; repetition i has fastload at (0.5 + 0.1 i) of the peer's CPU per
    # request and at (1.3 - 0.1 i) of its rate, whatever the peer's own drift (its CPU doubles
    # from one repetition to the next in turn): the paired ratios are exactly those.
    runs = []
    for i in range(9):
        peer_us = 10.0 if i % 2 else 20.0
        n = 100_000
        runs.append(_run("tls-h1", "wrk", i, n, 50_000.0 * (1 + i % 2), peer_us * n / 1e6))
        fl_us = peer_us * (0.5 + 0.1 * i)
        runs.append(_run("tls-h1", "fastload", i, n, 50_000.0 * (1 + i % 2) * (1.3 - 0.1 * i),
                         fl_us * n / 1e6, worker_cpu_s=0.9 * fl_us * n / 1e6))
    path = tmp_path / "bench.json"
    path.write_text(json.dumps({"meta": {}, "runs": runs, "summary": []}))
    out = _summarize(path)
    line = [x for x in out.splitlines() if x.startswith("tls-h1") and "[" in x]
    assert len(line) == 1, out
    # rps ratios 1.3 .. 0.5: median 0.9, interval the 2nd lowest and 2nd highest.
    # CPU ratios 0.5 .. 1.3: the same; worker ratios are 0.9 of those.
    assert line[0].split()[2:] == ["0.90", "[0.60-1.20]", "0.90", "[0.60-1.20]",
                                   "0.81", "[0.54-1.08]"], line[0]


def test_the_host_idle_setup_is_fastload_infos_and_named_in_the_output(tmp_path):
    """compare.py takes how idle CPUs wait from `fastload info` (the fastload it measures), keeps
    it in the JSON and prints it, with the VM-exit note where idle CPUs halt at once."""
    from fastload.host import info as host

    assert _compare("compare.cpu_idle([sys.executable, '-m', 'fastload'])") == host.cpu_idle()
    for idle, note in (({"driver": "haltpoll", "governor": "haltpoll", "halt_poll_ns": 0},
                        "CPU idle: haltpoll driver, haltpoll governor; halts without polling "
                        "(guest_halt_poll_ns 0): each wake-up of a sleeping client costs the server "
                        "a VM exit"),
                       ({"driver": "haltpoll", "governor": "haltpoll", "halt_poll_ns": 200000},
                        "CPU idle: haltpoll driver, haltpoll governor; polls up to 200us before halting"),
                       ({"driver": "intel_idle", "governor": "menu", "halt_poll_ns": None},
                        "CPU idle: intel_idle driver, menu governor"),
                       (None, "CPU idle: unknown")):
        path = tmp_path / "bench.json"
        path.write_text(json.dumps({"meta": {"cpu_idle": idle}, "runs": [], "summary": []}))
        out = _summarize(path)
        assert out.splitlines()[0].startswith(note), out


def test_the_fastload_measured_is_the_console_script_beside_the_python_not_a_shim(tmp_path):
    """By default compare.py runs the fastload script installed beside the interpreter that runs
    it (a venv's), not the first on PATH, which may be a version manager's shell shim."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").write_text("")
    assert _compare("compare.default_fastload(sys.argv[2])", str(bin_dir / "python")) == ["fastload"]
    script = bin_dir / "fastload"
    script.write_text("#!/bin/sh\n")
    assert _compare("compare.default_fastload(sys.argv[2])", str(bin_dir / "python")) == ["fastload"]
    script.chmod(0o755)
    assert _compare("compare.default_fastload(sys.argv[2])",
                    str(bin_dir / "python")) == [str(script)]


def test_steal_is_the_stolen_share_of_the_client_cpus_time(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text("cpu  9 9 9 9 9 9 9 9 0 0\ncpu0 100 0 50 800 0 0 50 0 0 0\n"
                    "cpu1 200 0 100 600 0 0 20 80 0 0\n")
    before = _compare("compare.cpu_times(1, sys.argv[2])", str(stat))
    assert before == [200, 0, 100, 600, 0, 0, 20, 80]
    assert _compare("compare.cpu_times(7, sys.argv[2])", str(stat)) is None
    # 1000 ticks pass on CPU 1, 150 of them stolen.
    after = [300, 0, 150, 1250, 0, 0, 70, 230]
    assert math.isclose(_compare(f"compare.steal_share({before}, {after})"), 0.15)
    assert _compare(f"str(compare.steal_share(None, {after}))") == "nan"
    real = _compare("compare.cpu_times(0)")
    assert len(real) == 8 and all(isinstance(x, int) and x >= 0 for x in real)


def test_summarize_names_the_steal_when_there_was_some(tmp_path):
    runs = []
    for i in range(5):
        for tool, steal in (("wrk", 0.02 * i), ("fastload", 0.01)):
            runs.append(_run("tls-h1", tool, i, 100_000, 50_000.0, 1.0) | {"steal": steal})
    path = tmp_path / "bench.json"
    path.write_text(json.dumps({"meta": {}, "runs": runs, "summary": []}))
    out = _summarize(path)
    # Ten runs: 0, 0.01 x 5, 0.02, 0.04, 0.06, 0.08; the median is 0.01, the highest 0.08.
    assert "steal: the hypervisor took 1.0% of the client CPU's time (median of the runs; up to " \
           "8.0%)" in out, out
    for r in runs:
        r["steal"] = 0.0
    path.write_text(json.dumps({"meta": {}, "runs": runs, "summary": []}))
    out = _summarize(path)
    assert "steal" not in out, out


def test_the_clients_may_cache_bytecode():
    """Without cached bytecode every fastload start compiles its modules again (0.11 s of CPU a
    run here), so compare.py takes PYTHONDONTWRITEBYTECODE out of the clients' environment."""
    assert _compare("[compare.allow_bytecode_cache(e := {'PYTHONDONTWRITEBYTECODE': '1', "
                    "'PATH': '/bin'}), e]") == [True, {"PATH": "/bin"}]
    assert _compare("[compare.allow_bytecode_cache(e := {'PATH': '/bin'}), e]") == [False,
                                                                                   {"PATH": "/bin"}]

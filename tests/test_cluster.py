"""`fastload run --cluster` on Dask distributed: the split of a run over hosts, clock offsets,
and real clusters (a LocalCluster, `dask scheduler` with `fastload agent` processes, agents in
their own network namespaces) against nginx, which counts what it served."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from hdrh.histogram import HdrHistogram

pytest.importorskip("distributed")

import fastload  # noqa: E402
from fastload.cluster import clock  # noqa: E402
from fastload.cluster.coordinator import parse_address  # noqa: E402
from fastload.cluster.split import shares, split_plan  # noqa: E402
from fastload.config.plan import Placement, build_plan  # noqa: E402
from fastload.errors import UsageError  # noqa: E402
from fastload.results.histogram import merge  # noqa: E402
from support import peers  # noqa: E402
from support.cluster import DaskCluster, Namespaces  # noqa: E402
from support.run import check_document  # noqa: E402
from support.run import fastload as fastload_cli

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="network namespaces need root (CI runs as root)")


# ---------------------------------------------------------------- the split, the clocks


@pytest.mark.parametrize("total,weights", [(10, [1, 1]), (7, [2, 1]), (20000, [3, 5, 2]),
                                           (5, [1, 1, 1, 1, 1]), (3, [4, 1])])
def test_shares_add_up_exactly_and_follow_the_weights(total, weights):
    got = shares(total, weights)
    assert sum(got) == total
    for g, w in zip(got, weights, strict=True):
        assert abs(g - total * w / sum(weights)) < 1


def _places(*workers: int) -> list[Placement]:
    return [Placement(workers=w, cpus=tuple((i,) for i in range(w)), avoid_cpus=()) for w in workers]


def test_split_divides_totals_by_worker_counts():
    plan = build_plan("http://127.0.0.1:1/", connections=30, requests=20000, workers=1)
    a, b = split_plan(plan, _places(2, 1), [None, 0], ["a", "b"])
    assert (a.connections, b.connections) == (20, 10)
    assert (a.requests, b.requests) == (13333, 6667)  # the larger remainder gets the extra one
    assert (a.workers, b.workers) == (2, 1)
    assert b.numa_node == 0 and a.start_at is None and a.json_path is None


def test_split_scales_the_rate_and_stages():
    plan = build_plan("http://127.0.0.1:1/", connections=8, rate="3000", stages="1s:6000",
                      workers=1)
    a, b = split_plan(plan, _places(1, 2), [None, None], ["a", "b"])
    assert a.stages[0][1:] == pytest.approx((1000, 2000))
    assert b.stages[0][1:] == pytest.approx((2000, 4000))
    assert a.rate + b.rate == pytest.approx(3000)


def test_split_deals_a_replay_round_robin(tmp_path):
    trace = tmp_path / "t.jsonl"
    trace.write_text("".join(json.dumps({"offset_ms": i * 10, "path": f"/{i}"}) + "\n"
                             for i in range(7)))
    plan = build_plan("http://127.0.0.1:1/", connections=4, replay=str(trace), workers=1)
    a, b = split_plan(plan, _places(1, 1), [None, None], ["a", "b"])
    assert a.mix.offsets_ns == plan.mix.offsets_ns[0::2]
    assert b.mix.offsets_ns == plan.mix.offsets_ns[1::2]
    assert len(a.mix.schedule) + len(b.mix.schedule) == 7


def test_split_refuses_fewer_connections_than_hosts():
    plan = build_plan("http://127.0.0.1:1/", connections=1, workers=1)
    with pytest.raises(UsageError, match="no connection for host"):
        split_plan(plan, _places(1, 1), [None, None], ["a", "b"])


def test_clock_offset_takes_the_shortest_round_trip():
    # Host clock 5 s ahead; the second sample has the shortest round trip.
    samples = [(100.0, 105.3, 100.4), (200.0, 205.01, 200.02), (300.0, 305.2, 300.3)]
    off = clock.estimate(samples)
    assert off.offset_s == pytest.approx(5.0)
    assert off.uncertainty_s == pytest.approx(0.01)
    assert off.to_host(10.0) == pytest.approx(15.0) and off.from_host(15.0) == pytest.approx(10.0)
    assert "clock offset +5000.0 ms" in clock.warning("h", off)  # skewed by more than 10 ms
    assert "± 20.0 ms" in clock.warning("h", clock.Offset(0.002, 0.02))  # too uncertain
    assert clock.warning("h", clock.Offset(0.002, 0.001)) is None


@pytest.mark.parametrize("address", ["local:0", "local:x", "http://h:1", "tcp://", "h:8786"])
def test_bad_cluster_addresses_are_refused(address):
    with pytest.raises(UsageError):
        parse_address(address)


# ---------------------------------------------------------------- LocalCluster


def test_local_cluster_counts_exactly_and_merges_the_hosts_exactly(nginx_h1):
    before = nginx_h1.count_requests()
    p = fastload_cli("run", nginx_h1.url, "--cluster", "local:2", "-n", "20000", "-c", "8",
                     "--json", "-", "--quiet")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    check_document(doc, 20000)
    assert nginx_h1.count_requests() - before == 20000
    hosts = doc["hosts"]
    assert len(hosts) == 2 and all(h["requests"] > 0 and not h["lost"] for h in hosts)
    assert sum(h["requests"] for h in hosts) == 20000
    merged = merge([h["histogram"] for h in hosts])
    ours = HdrHistogram.decode(doc["histogram"])
    assert [ours.get_count_at_index(i) for i in range(ours.counts_len)] == \
           [merged.get_count_at_index(i) for i in range(merged.counts_len)]
    assert doc["complete"] is True and doc["interrupted"] is False
    assert doc["config"]["cluster"] == "local:2" and doc["config"]["requests"] == 20000
    for h in hosts:
        assert abs(h["clock_offset_ms"]) < 10 and h["start_skew_ms"] is not None
    assert doc["cluster"]["coordinator_cpu_s"] >= 0


def test_local_cluster_open_model_rate_is_a_total(nginx_h1):
    before = nginx_h1.count_requests()
    doc = fastload.run(nginx_h1.url, cluster="local:2", rate=1000, duration="3s",
                       connections=8)
    served = nginx_h1.count_requests() - before
    # Responses still in flight at the end of -d are not counted (as wrk): at most one per
    # connection.
    assert doc["requests"] <= served <= doc["requests"] + 8
    assert abs(doc["requests"] - 3000) <= 10  # the schedule's last few may miss the deadline
    assert doc["rate"]["target"] == pytest.approx(1000)
    assert sum(h["requests"] for h in doc["hosts"]) == doc["requests"]


def test_a_host_that_cannot_reach_the_target_stops_the_run_before_traffic():
    port = peers.free_port()
    p = fastload_cli("run", f"http://127.0.0.1:{port}/", "--cluster", "local:1", "-d", "1s")
    assert p.returncode == 3, p.stderr
    lines = [x for x in p.stderr.splitlines() if x.startswith("fastload: error")]
    assert lines == [f"fastload: error: host 0: cannot connect to 127.0.0.1:{port}: Connection refused"]
    assert "Traceback" not in p.stderr


def test_bad_cluster_input_is_one_line_with_the_right_exit_code():
    for args, code, text in [
        (["--cluster", "local:0"], 2, "local:N needs N >= 1"),
        (["--cluster", "tcp://127.0.0.1:1", "--timeout", "1s"], 3, "cannot reach the scheduler"),
        (["--cluster", "local:1", "--hosts", "2"], 2, "more than the 1 agents"),
        (["--cluster", "local:1", "--server-pid", str(os.getpid())], 2, "--server-pid applies to one host"),
        (["--cluster", "tcp://127.0.0.1:1", "--cluster-tls-cert", "x"], 2, "only for a tls://"),
    ]:
        p = fastload_cli("run", "http://127.0.0.1:9/", *args, timeout=60)
        assert p.returncode == code, (args, p.stderr)
        errors = [x for x in p.stderr.splitlines() if x.startswith("fastload: error")]
        assert len(errors) == 1 and text in errors[0], (args, p.stderr)
        assert "Traceback" not in p.stderr


def test_ctrl_c_stops_every_host_and_keeps_the_partial_result(nginx_h1, tmp_path):
    out = tmp_path / "r.json"
    proc = subprocess.Popen([sys.executable, "-m", "fastload", "run", nginx_h1.url, "--cluster",
                             "local:2", "-d", "60s", "-c", "4", "--json", str(out), "--quiet"],
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and nginx_h1.count_requests() == 0:
        time.sleep(0.2)
    before = nginx_h1.count_requests()
    while time.monotonic() < deadline and nginx_h1.count_requests() < before + 1000:
        time.sleep(0.2)  # both hosts are sending
    time.sleep(1.0)
    sent_at = time.time()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    doc = json.loads(out.read_text())
    assert doc["interrupted"] is True and doc["complete"] is False
    assert all(h["requests"] > 0 for h in doc["hosts"])
    # Every host stopped within 2 s of the Ctrl-C (the merged run ends with the last host).
    assert doc["started_at"] + doc["duration_s"] - sent_at < 2.0
    assert "Traceback" not in err


def test_the_api_runs_on_a_cluster(nginx_h1):
    result = fastload.run(nginx_h1.url, cluster="local:1", requests=500, connections=2)
    assert result.requests == 500 and len(result["hosts"]) == 1


# ---------------------------------------------------------------- scheduler + agents


@pytest.fixture()
def two_agents():
    with DaskCluster() as c:
        c.agent("a1")
        c.agent("a2")
        yield c


def test_agents_of_a_dask_scheduler_run_the_load(nginx_h1, two_agents):
    before = nginx_h1.count_requests()
    p = fastload_cli("run", nginx_h1.url, "--cluster", two_agents.address, "-n", "4000", "-c", "4",
                     "--json", "-", "--quiet")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    check_document(doc, 4000)
    assert nginx_h1.count_requests() - before == 4000
    assert [h["name"] for h in doc["hosts"]] == ["a1", "a2"]
    # tcp:// carries pickled code in the clear: said once, in one line.
    assert p.stderr.count("is not encrypted") == 1


def test_more_hosts_than_agents_waits_for_timeout_then_says_how_many_came(two_agents):
    t0 = time.monotonic()
    p = fastload_cli("run", "http://127.0.0.1:9/", "--cluster", two_agents.address, "--hosts", "3",
                     "--timeout", "2s")
    assert p.returncode == 3
    assert "2 of 3 fastload agent(s) joined" in p.stderr and "Traceback" not in p.stderr
    assert time.monotonic() - t0 >= 2.0


def test_a_lost_host_is_not_rerun_and_the_run_ends_on_time(nginx_h1, two_agents, tmp_path):
    out = tmp_path / "r.json"
    before = nginx_h1.count_requests()
    proc = subprocess.Popen([sys.executable, "-m", "fastload", "run", nginx_h1.url, "--cluster",
                             two_agents.address, "-R", "1000", "-d", "6s", "-c", "8", "--json",
                             str(out), "--quiet"], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and nginx_h1.count_requests() - before < 1500:
        time.sleep(0.05)
    killed_at = time.time()
    two_agents.agents[1].kill()  # a2, SIGKILL: its run process dies with it
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    doc = json.loads(out.read_text())
    a1, a2 = doc["hosts"]
    assert a2["lost"] is True and a1["lost"] is False and doc["complete"] is False
    assert "host a2" in err and "lost" in err
    # Ended on time: the survivor ran its 6 s.
    assert doc["started_at"] + doc["duration_s"] < killed_at + 6.0
    assert a1["requests"] == pytest.approx(3000, abs=3)
    served = nginx_h1.count_requests() - before
    # a2's share up to its death, never a second copy: a rerun would add up to 3000 more.
    a2_share_until_kill = 500 * (killed_at - doc["started_at"]) + 500
    assert a1["requests"] + a2["requests"] <= served <= a1["requests"] + a2_share_until_kill


def test_a_host_with_another_version_is_refused_by_name(two_agents):
    # An agent whose fastload says it is another version.
    code = ("import fastload, sys; fastload.__version__ = '0.0.0-other'; "
            "from fastload.cli import main; sys.argv = ['fastload'] + sys.argv[1:]; main()")
    from support.cluster import Process

    other = Process("agent-old", [sys.executable, "-c", code, "agent", two_agents.address,
                                  "--name", "zz-old"], two_agents.dir)
    two_agents.agents.append(other)
    other.wait_for("fastload agent zz-old: joined")
    p = fastload_cli("run", "http://127.0.0.1:9/", "--cluster", two_agents.address, "-n", "10")
    assert p.returncode == 2
    assert "host zz-old" in p.stderr and "0.0.0-other" in p.stderr and "Traceback" not in p.stderr


def test_tls_cluster_runs_and_a_client_of_another_ca_is_refused(nginx_h1, tmp_path):
    from distributed import Security

    def write(sec: Security, prefix: str) -> dict[str, str]:
        files = {"ca": sec.tls_ca_file, "cert": sec.tls_scheduler_cert, "key": sec.tls_scheduler_key}
        out = {}
        for k, pem in files.items():
            path = tmp_path / f"{prefix}-{k}.pem"
            path.write_text(pem)
            out[k] = str(path)
        return out

    good = write(Security.temporary(), "good")
    other = write(Security.temporary(), "other")
    with DaskCluster(tls=good) as c:
        c.agent("t1")
        p = fastload_cli("run", nginx_h1.url, "--cluster", c.address, "-n", "300", "-c", "2",
                         "--cluster-tls-ca-file", good["ca"], "--cluster-tls-cert", good["cert"],
                         "--cluster-tls-key", good["key"], "--json", "-", "--quiet")
        assert p.returncode == 0, p.stderr
        assert json.loads(p.stdout)["requests"] == 300
        assert "is not encrypted" not in p.stderr
        p = fastload_cli("run", nginx_h1.url, "--cluster", c.address, "-n", "300", "--timeout", "2s",
                         "--cluster-tls-ca-file", other["ca"], "--cluster-tls-cert", other["cert"],
                         "--cluster-tls-key", other["key"], timeout=60)
        assert p.returncode == 3
        errors = [x for x in p.stderr.splitlines() if x.startswith("fastload: error")]
        assert len(errors) == 1 and "cannot reach the scheduler" in errors[0], p.stderr
        p = fastload_cli("run", nginx_h1.url, "--cluster", c.address, "-n", "300")
        assert p.returncode == 2 and "tls:// needs" in p.stderr


@needs_root
def test_hosts_in_their_own_network_namespaces_match_nginx_per_address():
    with Namespaces(2) as ns:
        server = peers.nginx(host=ns.host_ip)
        try:
            with DaskCluster(host=ns.host_ip) as c:
                for name, netns in zip(("n1", "n2"), ns.names, strict=True):
                    c.agent(name, netns)
                p = fastload_cli("run", server.url, "--cluster", c.address, "-n", "6000", "-c", "4",
                                 "--json", "-", "--quiet")
                assert p.returncode == 0, p.stderr
                doc = json.loads(p.stdout)
        finally:
            by_address = server.count_by_address()
            server.stop()
    check_document(doc, 6000)
    hosts = {h["name"]: h for h in doc["hosts"]}
    assert by_address == {ns.ips[0]: hosts["n1"]["requests"], ns.ips[1]: hosts["n2"]["requests"]}
    assert all(h["address"].startswith(f"tcp://{ip}:") for h, ip in zip(doc["hosts"], ns.ips, strict=True))


def test_metrics_port_shows_every_host_merged(nginx_h1, tmp_path):
    from test_metrics import samples, scrape_during

    port = peers.free_port()
    out = tmp_path / "r.json"
    scrapes, err, code = scrape_during([nginx_h1.url, "--cluster", "local:2", "-w", "1", "-d", "4s",
                                        "-c", "4", "--metrics-port", str(port), "--json", str(out),
                                        "--quiet"], port, every_s=0.1)
    assert code == 0, err
    totals = []
    for text in scrapes:
        s = samples(text)
        per_worker = [v for (n, _), v in s.items() if n == "fastload_worker_requests_total"]
        assert len(per_worker) == 2 and sum(per_worker) == s[("fastload_requests_total", ())]
        totals.append(s[("fastload_requests_total", ())])
    doc = json.loads(out.read_text())
    assert totals == sorted(totals) and totals[-1] > 0
    assert doc["requests"] - sum(iv["requests"] for iv in doc["timeline"][-2:]) <= totals[-1] <= doc["requests"]


def test_grpc_takes_cluster_too():
    from test_grpc import grpc_server

    with grpc_server() as (url, stats):
        p = fastload_cli("grpc", url, "--method", "test.Echo/Unary", "--cluster", "local:2", "-n", "600",
                         "-c", "2", "-m", "8", "-w", "1", "--json", "-", "--quiet")
        assert p.returncode == 0, p.stderr
        served = stats()
    doc = json.loads(p.stdout)
    assert doc["requests"] == 600 == served["calls"] and doc["grpc_status"] == {"0": 600}
    assert [h["requests"] for h in doc["hosts"]] == [300, 300]


@needs_root
def test_a_host_whose_network_goes_is_lost_after_silence_and_the_run_goes_on(tmp_path):
    with Namespaces(2, net="198.18.1") as ns:
        server = peers.nginx(host=ns.host_ip)
        try:
            with DaskCluster(host=ns.host_ip) as c:
                for name, netns in zip(("n1", "n2"), ns.names, strict=True):
                    c.agent(name, netns)
                out = tmp_path / "r.json"
                proc = subprocess.Popen([sys.executable, "-m", "fastload", "run", server.url,
                                         "--cluster", c.address, "-R", "400", "-d", "6s", "-c", "4",
                                         "--json", str(out), "--quiet"], stderr=subprocess.PIPE,
                                        text=True)
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline and server.count_requests() < 400:
                    time.sleep(0.05)
                cut_at = time.time()
                # n2's link goes down: no more ticks, no more traffic, and Dask's own
                # heartbeat timeout is minutes away.
                subprocess.run(["ip", "link", "set", ns._veths[1], "down"], check=True)
                _, err = proc.communicate(timeout=60)
                assert proc.returncode == 0, err
                doc = json.loads(out.read_text())
                ended_at = time.time()
        finally:
            server.stop()
    n1, n2 = doc["hosts"]
    assert n2["lost"] is True and "nothing heard from it" in n2["lost_reason"]
    assert n1["lost"] is False and n1["requests"] == pytest.approx(1200, abs=5)
    assert doc["complete"] is False and "host n2" in err
    # Declared lost about 5 s after its last tick: the run ends then, not minutes later.
    assert ended_at - cut_at < 12


def test_faults_on_the_load_path_run_on_every_host_and_hooks_here(nginx_h1, tmp_path):
    mark = tmp_path / "hook-ran"
    doc = fastload.run(nginx_h1.url, cluster="local:2", rate=400, duration="4s", connections=64,
                       fault=["1s-3s:latency=50ms"], at=[f"500ms:touch {mark}"])
    phases = {p["name"]: p for p in doc["phases"]}
    assert 50_000 <= phases["fault1"]["latency_us"]["p50"] < 60_000
    assert phases["baseline"]["latency_us"]["p50"] < 10_000
    assert sum(p["requests"] for p in doc["phases"]) == doc["requests"]
    per_host = doc["faults"]["hosts"]
    assert sorted(per_host) == ["0", "1"]
    assert all(f["proxies"]["(url)"]["by_fault"]["fault1"]["delayed_chunks"] > 0
               for f in per_host.values())
    # The hook ran once, here, on the common start.
    assert mark.exists() and len(doc["hooks"]) == 1 and doc["hooks"][0]["exit_code"] == 0
    assert 0.4 < doc["hooks"][0]["start_s"] < 0.7

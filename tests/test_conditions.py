"""Hostile conditions: Ctrl-C and a dead worker still give the results gathered so far."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader

from support import SERVERS


def children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(x) for x in f.read().split()]


def start(url: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "fastload", "run", url, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_ctrl_c_stops_within_2s_and_writes_partial_results(nginx_h1, tmp_path):
    out, log = tmp_path / "r.json", tmp_path / "r.hlog"
    p = start(nginx_h1.url, "-d", "60s", "-c", "4", "-w", "2", "--json", str(out), "--hdr-log", str(log))
    time.sleep(2.5)
    t0 = time.monotonic()
    p.send_signal(signal.SIGINT)
    stdout, stderr = p.communicate(timeout=30)
    assert time.monotonic() - t0 < 2.0
    assert p.returncode == 0, stderr
    doc = json.loads(out.read_text())
    assert doc["interrupted"] is True and doc["complete"] is False
    assert doc["requests"] > 100 and doc["duration_s"] < 10
    assert HdrHistogram.decode(doc["histogram"]).get_total_count() == doc["requests"]
    assert "Interrupted" in stdout
    reader = HistogramLogReader(str(log), HdrHistogram(1, 60_000_000, 3))
    total = 0
    try:
        while (h := reader.get_next_interval_histogram()) is not None:
            total += h.get_total_count()
    finally:
        reader.close()
    assert total == doc["requests"]


def test_sigterm_is_handled_like_ctrl_c(nginx_h1):
    p = start(nginx_h1.url, "-d", "60s", "-c", "2", "-w", "1", "--json", "-", "--quiet")
    time.sleep(2.0)
    p.send_signal(signal.SIGTERM)
    stdout, stderr = p.communicate(timeout=30)
    assert p.returncode == 0, stderr
    assert json.loads(stdout)["interrupted"] is True


def test_a_killed_worker_does_not_hang_the_run(nginx_h1):
    p = start(nginx_h1.url, "-d", "4s", "-c", "4", "-w", "2", "--json", "-", "--quiet")
    time.sleep(1.5)
    workers = children(p.pid)
    assert len(workers) == 2
    import os

    os.kill(workers[0], signal.SIGKILL)
    stdout, stderr = p.communicate(timeout=60)
    # Results came from the other worker: exit 0 (no SLO), with a warning and the failure kept.
    assert p.returncode == 0, stderr
    doc = json.loads(stdout)
    assert doc["complete"] is False
    assert len(doc["workers"]) == 1 and doc["requests"] > 0
    assert len(doc["worker_errors"]) == 1 and "died" in doc["worker_errors"][0]["error"]
    assert "worker(s) failed" in stderr


def test_all_workers_dead_exits_3(nginx_h1):
    p = start(nginx_h1.url, "-d", "5s", "-c", "2", "-w", "1", "--json", "-", "--quiet")
    time.sleep(1.5)
    import os

    for w in children(p.pid):
        os.kill(w, signal.SIGKILL)
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 3
    assert "no worker produced results" in stderr


def test_ten_thousand_connections(nginx_h1):
    before = nginx_h1.count_requests()
    p = subprocess.run([sys.executable, "-m", "fastload", "run", nginx_h1.url, "-c", "10000", "-w", "2",
                        "-d", "3s", "--timeout", "30s", "--json", "-", "--quiet"],
                       capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["config"]["connections"] == 10000
    assert doc["errors"]["total"] == 0
    assert doc["requests"] > 10000
    served = nginx_h1.count_requests() - before
    assert doc["requests"] <= served <= doc["requests"] + 10000


def _netns(name: str) -> bool:
    """A private network namespace (root only): its loopback and port range are the test's own."""
    r = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    return r.returncode == 0


def test_ephemeral_port_exhaustion_is_counted_apart_not_as_server_errors(tmp_path):
    # In a namespace whose ephemeral range has 10 ports and no TIME_WAIT reuse: the listening
    # socket takes one, the pre-flight probe one, and each connection that times out (closed by
    # us, so its port sits in TIME_WAIT for a minute) one more. Then connect() fails with
    # EADDRNOTAVAIL: the client's limit, not a server that refuses.
    import os

    import pytest

    name = f"fastload-test-{os.getpid()}"
    if not _netns(name):
        pytest.skip("needs root for a network namespace (ip netns add)")
    server = None
    try:
        ns = ["ip", "netns", "exec", name]
        subprocess.run(ns + ["sh", "-c", "ip link set lo up && sysctl -q -w "
                             "net.ipv4.ip_local_port_range='40000 40009' net.ipv4.tcp_tw_reuse=0"],
                       check=True)
        server = subprocess.Popen(ns + [sys.executable, str(SERVERS / "fault_server.py"), "slow", "0"],
                                  stdout=subprocess.PIPE, text=True)
        port = int(server.stdout.readline().split()[-1])
        out = tmp_path / "r.json"
        r = subprocess.run(ns + [sys.executable, "-m", "fastload", "run", f"http://127.0.0.1:{port}/",
                                 "-c", "2", "-w", "1", "-d", "2s", "--timeout", "50ms", "--json", str(out),
                                 "--quiet"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        doc = json.loads(out.read_text())
        assert doc["errors"]["timeout"] == 8  # 10 ports - the listener - the pre-flight probe
        assert doc["errors"]["connect"] == 0
        assert doc["errors"]["ephemeral_ports"] > 0
        assert doc["errors"]["total"] == 8 + doc["errors"]["ephemeral_ports"]
        assert any("EADDRNOTAVAIL" in w and "ip_local_port_range" in w for w in doc["warnings"])
        assert "ran out of ephemeral ports" in r.stderr
    finally:
        if server is not None:
            server.kill()
            server.wait(timeout=10)
            server.stdout.close()
        subprocess.run(["ip", "netns", "del", name], capture_output=True)

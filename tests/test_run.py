"""End-to-end runs of `fastload run` against real servers on loopback. The numbers fastload
reports are checked against what the servers themselves counted."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

from support.run import check_document, fastload, run_json


def raw_response_length(port: int, request: bytes) -> int:
    """Length of one complete keep-alive response, read independently of fastload."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            data += s.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        length = int([ln.split(b":")[1] for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length")][0])
        while len(body) < length:
            body += s.recv(65536)
        return len(head) + 4 + length


def test_nginx_h1_exact_count_matches_access_log(nginx_h1):
    before = nginx_h1.count_requests()
    doc = run_json(nginx_h1.url, "-n", "3000", "-c", "8", "-w", "1")
    check_document(doc, 3000)
    assert nginx_h1.count_requests() - before == 3000
    assert doc["status_codes"] == {"200": 3000}
    assert doc["errors"]["total"] == 0
    from fastload.config.plan import build_plan
    from fastload.workload.wire import build_h1_request

    request = build_h1_request(build_plan(nginx_h1.url))
    assert doc["bytes_out"] == 3000 * len(request)
    assert doc["bytes_in"] == 3000 * raw_response_length(nginx_h1.port, request)


def test_two_workers_merge_into_the_same_totals(nginx_h1):
    before = nginx_h1.count_requests()
    doc = run_json(nginx_h1.url, "-n", "3001", "-c", "8", "-w", "2")
    check_document(doc, 3001)
    assert nginx_h1.count_requests() - before == 3001
    assert len(doc["workers"]) == 2
    assert sum(w["requests"] for w in doc["workers"]) == 3001
    assert sorted(w["requests"] for w in doc["workers"]) == [1500, 1501]


def test_pipelining_keeps_counts_exact(nginx_h1):
    before = nginx_h1.count_requests()
    doc = run_json(nginx_h1.url, "-n", "2000", "-c", "4", "--pipeline", "8", "-w", "1")
    check_document(doc, 2000)
    assert nginx_h1.count_requests() - before == 2000


def test_duration_run_counts_what_the_server_served(nginx_h1):
    before = nginx_h1.count_requests()
    doc = run_json(nginx_h1.url, "-d", "1s", "-c", "4", "-w", "1")
    served = nginx_h1.count_requests() - before
    assert doc["requests"] > 100
    # Requests in flight at the deadline are served but not counted: at most one per connection.
    # Those taken for the write batch and not yet written then are taken back, not sent.
    assert doc["requests"] <= served <= doc["requests"] + 4
    assert doc["errors"]["total"] == 0
    assert doc["duration_s"] == pytest.approx(1.0, abs=0.05)


def test_nginx_h2c_exact_count(nginx_h2c):
    before = nginx_h2c.count_requests()
    doc = run_json(nginx_h2c.url, "--h2c", "-n", "2000", "-c", "2", "-m", "8", "-w", "1")
    check_document(doc, 2000)
    assert doc["target"]["protocol"] == "h2"
    assert nginx_h2c.count_requests() - before == 2000
    assert doc["status_codes"] == {"200": 2000}


@pytest.mark.parametrize("h2", [False, True], ids=["h1", "h2c"])
def test_large_request_bodies_reach_nginx_whole(request, tmp_path, h2):
    # 300 KiB is more than the 65535-byte windows HTTP/2 starts with: the body must follow
    # nginx's WINDOW_UPDATEs. nginx's WebDAV PUT reads and stores every byte.
    peer = request.getfixturevalue("nginx_h2c" if h2 else "nginx_h1")
    body = bytes(range(256)) * 1200 + b"end"
    (tmp_path / "body.bin").write_bytes(body)
    name = f"upload/body-{'h2' if h2 else 'h1'}.bin"
    before = peer.count_requests()
    doc = run_json(peer.url + name, *(["--h2c"] if h2 else []), "-X", "PUT",
                   "--body-file", str(tmp_path / "body.bin"), "-n", "40", "-c", "2", "-m", "8",
                   "-w", "1")
    check_document(doc, 40)
    assert doc["errors"]["total"] == 0
    assert doc["status_codes"] == {"201": 1, "204": 39}
    assert doc["bytes_out"] >= 40 * len(body)
    assert peer.count_requests() - before == 40
    logged = [line.split() for line in peer.access_log.read_text().splitlines()[before:]]
    assert all(f[0] == "PUT" and int(f[3]) > len(body) for f in logged)
    assert (peer.dir / "dav" / name).read_bytes() == body


def test_h2o_h2c_two_workers(h2o_server):
    before = h2o_server.count_requests()
    doc = run_json(h2o_server.url, "--h2c", "-n", "5000", "-c", "4", "-m", "16", "-w", "2")
    check_document(doc, 5000)
    assert h2o_server.count_requests() - before == 5000
    assert doc["errors"]["total"] == 0


def test_tls_self_signed_rejected_without_insecure(nghttpd_tls):
    p = fastload("run", nghttpd_tls.url, "-n", "10", "-c", "1")
    assert p.returncode == 3
    assert "certificate" in p.stderr.lower()
    assert "Traceback" not in p.stderr


def test_tls_alpn_h2_with_insecure_and_with_ca(nghttpd_tls):
    doc = run_json(nghttpd_tls.url, "--insecure", "-n", "500", "-c", "2", "-m", "4", "-w", "1")
    check_document(doc, 500)
    assert doc["target"]["protocol"] == "h2"
    doc = run_json(nghttpd_tls.url, "--ca", str(nghttpd_tls.cert_path), "-n", "200", "-c", "1", "-w", "1")
    check_document(doc, 200)


def test_delay_server_latency_matches_known_delay(delay_server):
    delay_us = 20_000  # the delay_server fixture's --delay 20ms
    delay_server.reset()
    doc = run_json(delay_server.url, "-n", "300", "-c", "10", "-w", "1")
    check_document(doc, 300)
    assert delay_server.count_requests() == 300
    lat = doc["latency_us"]
    held = delay_server.stats()["held_us"]
    assert held["count"] == 300 and held["min"] >= delay_us
    # Each request's latency includes the time the server held it, so no percentile can be
    # below the server's; what is above it is transit plus the generator's own overhead. The
    # server's timers (not the generator) overshoot 20 ms on a loaded machine, so the bound is
    # against what the server measured, not against the nominal delay.
    assert lat["min"] >= held["min"]
    assert held["p50"] <= lat["p50"] < held["p50"] + 1000


def test_refused_connection_exits_3():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = fastload("run", f"http://127.0.0.1:{port}/", "-n", "10")
    assert p.returncode == 3
    assert "cannot connect" in p.stderr


@pytest.mark.parametrize(
    "args,needle",
    [(["ftp://127.0.0.1/"], "scheme"), (["http://127.0.0.1/", "-d", "soon"], "duration"),
     (["http://127.0.0.1/", "-c", "0"], "connections"), (["http://127.0.0.1/", "-H", "oops"], "header"),
     (["http://127.0.0.1/", "--body-file", "/nonexistent"], "body-file"),
     (["http://127.0.0.1/", "--protocol", "h3"], "protocol")],
)
def test_bad_input_exits_2_before_traffic(args, needle):
    p = fastload("run", *args)
    assert p.returncode == 2, p.stderr
    assert needle in p.stderr
    assert "Traceback" not in p.stderr


def test_slo_gates_exit_codes_and_json(nginx_h1):
    p = fastload("run", nginx_h1.url, "-n", "500", "-c", "2", "-w", "1", "--json", "-", "--quiet",
                 "--slo", "p99<10s", "--slo", "errors==0", "--slo", "status_5xx==0")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["passed"] is True and [r["passed"] for r in doc["slo"]] == [True, True, True]
    p = fastload("run", nginx_h1.url, "-n", "500", "-c", "2", "-w", "1", "--json", "-", "--quiet",
                 "--slo", "p99<10s", "--slo", "rps>=1000000000")
    assert p.returncode == 1, p.stderr
    doc = json.loads(p.stdout)
    assert doc["passed"] is False
    assert doc["slo"][1] == {"expr": "rps>=1000000000", "metric": "rps", "op": ">=",
                             "threshold": 1e9, "value": doc["rps"], "passed": False}
    p = fastload("run", nginx_h1.url, "-n", "500", "--slo", "p99<<5ms")
    assert p.returncode == 2 and "<5ms" in p.stderr


def test_too_few_file_descriptors_are_refused_before_traffic():
    import resource

    def low_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

    p = subprocess.run([sys.executable, "-m", "fastload", "run", "http://127.0.0.1:1/", "-c", "1000",
                        "-w", "1"], capture_output=True, text=True, timeout=60, preexec_fn=low_limit)
    assert p.returncode == 2, p.stderr
    assert "1064 file descriptors" in p.stderr and "ulimit -n" in p.stderr


def test_soft_fd_limit_is_raised_for_many_connections(h2o_server):
    import resource

    def low_soft_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

    p = subprocess.run([sys.executable, "-m", "fastload", "run", h2o_server.url, "-c", "400", "-w", "1",
                        "-n", "2000", "--json", "-", "--quiet"], capture_output=True, text=True,
                       timeout=120, preexec_fn=low_soft_limit)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["requests"] == 2000 and doc["errors"]["total"] == 0


def test_not_enough_ephemeral_ports_is_refused(tmp_path):
    from fastload.config.plan import build_plan
    from fastload.errors import UsageError
    from fastload.runtime.preflight import ensure_ports

    rng = tmp_path / "range"
    rng.write_text("60000\t60099\n")
    plan = build_plan("http://127.0.0.1:1/", connections="101", workers="1")
    with pytest.raises(UsageError, match="101 local ports.*has 100"):
        ensure_ports(plan, str(rng))
    ensure_ports(build_plan("http://127.0.0.1:1/", connections="100", workers="1"), str(rng))


def test_placement_warnings_are_printed_once_and_kept_in_the_json(nginx_h1):
    r = fastload("run", nginx_h1.url, "-n", "200", "-c", "2", "-w", "2", "--cpus", "1", "--json", "-",
                 "--quiet")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert any("share a CPU" in w for w in doc["warnings"])
    assert r.stderr.count("share a CPU") == 1

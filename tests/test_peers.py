"""Check the reference peers with independent clients (raw sockets, h2, ssl, wrk, h2load).

These tests validate the yardsticks before fastload is measured against them:
each peer answers correctly and its own request count matches what clients sent.
"""

from __future__ import annotations

import re
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request

import h2.config
import h2.connection
import h2.events
import pytest

from support import peers

HELLO = peers.HELLO
DELAY_NS = int(peers.DELAY_S * 1e9)


# --------------------------------------------------------------------------- tiny clients


def read_h1_response(sock: socket.socket, buf: bytearray) -> tuple[int, bytes]:
    """Read one Content-Length-framed response; leftover bytes stay in ``buf``."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before response head")
        buf += chunk
    end = buf.index(b"\r\n\r\n")
    head = bytes(buf[:end]).decode("latin-1").split("\r\n")
    status = int(head[0].split(" ")[1])
    length = 0
    for line in head[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    while len(buf) < end + 4 + length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed mid-body")
        buf += chunk
    body = bytes(buf[end + 4 : end + 4 + length])
    del buf[: end + 4 + length]
    return status, body


def h1_request(path: str, host: str = "x") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()


def h1_sequential(peer: peers.Peer, path: str, n: int) -> list[tuple[int, bytes, int]]:
    """n requests one after another on one keep-alive connection: (status, body, elapsed_ns)."""
    out = []
    with socket.create_connection((peer.host, peer.port), timeout=5) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = bytearray()
        for _ in range(n):
            t0 = time.perf_counter_ns()
            s.sendall(h1_request(path))
            status, body = read_h1_response(s, buf)
            out.append((status, body, time.perf_counter_ns() - t0))
    return out


def h1_pipelined(peer: peers.Peer, paths: list[str]) -> tuple[list[tuple[int, bytes]], int]:
    """All requests in one write; returns responses in order and ns until the last one."""
    with socket.create_connection((peer.host, peer.port), timeout=5) as s:
        buf = bytearray()
        t0 = time.perf_counter_ns()
        s.sendall(b"".join(h1_request(p) for p in paths))
        responses = [read_h1_response(s, buf) for _ in paths]
        return responses, time.perf_counter_ns() - t0


def h2_requests(
    sock: socket.socket, authority: str, paths: list[str], scheme: str = "http"
) -> tuple[list[tuple[int, bytes]], list[int]]:
    """Send all requests concurrently on one h2 connection; return (status, body) per
    request and the ns from sending to each stream's end."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    streams: dict[int, int] = {}
    for i, path in enumerate(paths):
        sid = conn.get_next_available_stream_id()
        streams[sid] = i
        conn.send_headers(
            sid,
            [(":method", "GET"), (":scheme", scheme), (":authority", authority), (":path", path)],
            end_stream=True,
        )
    t0 = time.perf_counter_ns()
    sock.sendall(conn.data_to_send())
    status = [0] * len(paths)
    bodies = [bytearray() for _ in paths]
    elapsed = [0] * len(paths)
    done = 0
    while done < len(paths):
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("h2 peer closed early")
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived):
                status[streams[ev.stream_id]] = int(dict(ev.headers)[b":status"])
            elif isinstance(ev, h2.events.DataReceived):
                bodies[streams[ev.stream_id]] += ev.data
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                elapsed[streams[ev.stream_id]] = time.perf_counter_ns() - t0
                done += 1
            elif isinstance(ev, h2.events.StreamReset | h2.events.ConnectionTerminated):
                raise ConnectionError(f"h2 error: {ev}")
        out = conn.data_to_send()
        if out:
            sock.sendall(out)
    conn.close_connection()
    sock.sendall(conn.data_to_send())
    return list(zip(status, (bytes(b) for b in bodies), strict=True)), elapsed


def h2c_requests(peer: peers.Peer, paths: list[str]) -> tuple[list[tuple[int, bytes]], list[int]]:
    with socket.create_connection((peer.host, peer.port), timeout=5) as s:
        return h2_requests(s, f"{peer.host}:{peer.port}", paths)


def run_wrk(url: str) -> int:
    out = subprocess.run(
        ["wrk", "-t1", "-c4", "-d1s", url], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    m = re.search(r"(\d+) requests in", out)
    assert m, out
    assert "Non-2xx" not in out, out
    return int(m.group(1))


def run_h2load(url: str, n: int = 1000) -> int:
    """h2load -n N -c 2 -m 10 (h2c prior knowledge); returns the succeeded count."""
    out = subprocess.run(
        ["h2load", "-n", str(n), "-c", "2", "-m", "10", url],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded", out)
    assert m, out
    return int(m.group(4))


def need(binary: str) -> None:
    if shutil.which(binary) is None:
        pytest.skip(f"binary not installed: {binary}")


# --------------------------------------------------------------------------- nginx


def test_nginx_h1_urllib(nginx_h1: peers.Peer) -> None:
    with urllib.request.urlopen(nginx_h1.url, timeout=5) as r:
        assert r.status == 200
        assert r.read() == HELLO
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(nginx_h1.url + "status/503", timeout=5)
    assert err.value.code == 503
    err.value.close()


def test_nginx_h1_count_matches_keepalive_and_pipelined(nginx_h1: peers.Peer) -> None:
    path = "/count-h1"
    before = nginx_h1.count_requests(path)
    seq = h1_sequential(nginx_h1, path, 25)
    piped, _ = h1_pipelined(nginx_h1, [path] * 15)
    assert all(s == 200 and b == HELLO for s, b, _ in seq)
    assert all(r == (200, HELLO) for r in piped)
    assert nginx_h1.count_requests(path) - before == 40


def test_nginx_h1_wrk_count_matches_log(nginx_h1: peers.Peer) -> None:
    need("wrk")
    path = "/wrk"
    before = nginx_h1.count_requests(path)
    done = run_wrk(nginx_h1.url + path.lstrip("/"))
    logged = nginx_h1.count_requests(path) - before
    assert done > 1000
    # wrk stops with up to one request in flight per connection: nginx answered and logged
    # it, but wrk never counted the response.
    assert done <= logged <= done + 4, (done, logged)


def test_nginx_h2c_h2_client(nginx_h2c: peers.Peer) -> None:
    path = "/count-h2c"
    before = nginx_h2c.count_requests(path)
    responses, _ = h2c_requests(nginx_h2c, [path] * 20)
    assert responses == [(200, HELLO)] * 20
    assert nginx_h2c.count_requests(path) - before == 20


def test_nginx_h2c_h2load_count_matches_log(nginx_h2c: peers.Peer) -> None:
    need("h2load")
    path = "/h2load"
    before = nginx_h2c.count_requests(path)
    assert run_h2load(nginx_h2c.url + path.lstrip("/")) == 1000
    assert nginx_h2c.count_requests(path) - before == 1000


# --------------------------------------------------------------------------- h2o


def test_h2o_h1_and_h2c_same_port(h2o_server: peers.Peer) -> None:
    before = h2o_server.count_requests("/")
    with urllib.request.urlopen(h2o_server.url, timeout=5) as r:
        assert (r.status, r.read()) == (200, HELLO)
    seq = h1_sequential(h2o_server, "/", 9)
    assert all(s == 200 and b == HELLO for s, b, _ in seq)
    responses, _ = h2c_requests(h2o_server, ["/"] * 10)
    assert responses == [(200, HELLO)] * 10
    assert h2o_server.count_requests("/") - before == 20


def test_h2o_h2load_count_matches_log(h2o_server: peers.Peer) -> None:
    need("h2load")
    before = h2o_server.count_requests("/")
    assert run_h2load(h2o_server.url) == 1000
    assert h2o_server.count_requests("/") - before == 1000


# --------------------------------------------------------------------------- nghttpd (TLS)


def test_nghttpd_tls_verification(nghttpd_tls: peers.TLSPeer) -> None:
    addr = (nghttpd_tls.host, nghttpd_tls.port)
    # The self-signed certificate must be rejected by a default trust store...
    ctx = ssl.create_default_context()
    with socket.create_connection(addr, timeout=5) as raw:
        with pytest.raises(ssl.SSLCertVerificationError):
            ctx.wrap_socket(raw, server_hostname="127.0.0.1").close()
    # ...and accepted when it is the CA; the IP SAN must match 127.0.0.1.
    ctx = ssl.create_default_context(cafile=str(nghttpd_tls.cert_path))
    ctx.set_alpn_protocols(["h2"])
    with socket.create_connection(addr, timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert tls.selected_alpn_protocol() == "h2"
            responses, _ = h2_requests(
                tls, f"127.0.0.1:{nghttpd_tls.port}", ["/", "/hello.txt"], scheme="https"
            )
    assert responses == [(200, HELLO), (200, HELLO)]
    assert nghttpd_tls.url.startswith("https://127.0.0.1:")


# --------------------------------------------------------------------------- fastload.serve


def test_delay_server_h1_never_early(delay_server: peers.FastloadPeer) -> None:
    path = "/delay-h1"
    before = delay_server.count_requests(path)
    seq = h1_sequential(delay_server, path, 12)
    assert all(s == 200 and b == HELLO for s, b, _ in seq)
    early = [ns for _, _, ns in seq if ns < DELAY_NS]
    assert not early, f"answered before {peers.DELAY_S * 1e3} ms: {early}"
    assert delay_server.count_requests(path) - before == 12


def test_delay_server_h1_pipelined_in_order(delay_server: peers.FastloadPeer) -> None:
    paths = [f"/pipe-{i}" for i in range(10)]
    responses, elapsed = h1_pipelined(delay_server, paths)
    assert responses == [(200, HELLO)] * 10
    assert elapsed >= DELAY_NS
    stats = delay_server.stats()
    assert all(stats["requests_by_path"][p] == 1 for p in paths)


def test_delay_server_h2c_never_early(delay_server: peers.FastloadPeer) -> None:
    path = "/delay-h2c"
    before = delay_server.count_requests(path)
    responses, elapsed = h2c_requests(delay_server, [path] * 16)
    assert responses == [(200, HELLO)] * 16
    assert min(elapsed) >= DELAY_NS, elapsed
    # Concurrent streams are delayed in parallel, not one after another.
    assert max(elapsed) < 16 * DELAY_NS
    assert delay_server.count_requests(path) - before == 16


def test_delay_server_stats_and_reset(delay_server: peers.FastloadPeer) -> None:
    h1_sequential(delay_server, "/before-reset", 2)
    delay_server.reset()
    assert delay_server.stats() == {"responses": 0, "requests_by_path": {}, "held_us": {"count": 0}}
    seq = h1_sequential(delay_server, "/after-reset", 3)
    # The stats endpoint itself is not counted.
    stats = delay_server.stats()
    assert stats["responses"] == 3 and stats["requests_by_path"] == {"/after-reset": 3}
    held = stats["held_us"]
    assert held["count"] == 3 and DELAY_NS // 1000 <= held["min"] <= held["p50"] <= held["max"]
    # What the client saw for each request includes what the server held it for.
    assert held["max"] <= max(ns for _, _, ns in seq) // 1000


def test_delay_server_h2load_count(delay_server: peers.FastloadPeer) -> None:
    need("h2load")
    path = "/h2load"
    before = delay_server.stats()["responses"]
    t0 = time.perf_counter()
    assert run_h2load(delay_server.url + path.lstrip("/")) == 1000
    # 2 connections x 10 streams = 20 in flight, each >= 20 ms: at least 50 rounds.
    assert time.perf_counter() - t0 >= 1000 / 20 * peers.DELAY_S
    assert delay_server.count_requests(path) == 1000
    assert delay_server.stats()["responses"] - before == 1000


def test_fastload_server_status_and_body_size() -> None:
    with peers.fastload_server(status=503, body_size=100) as srv:
        seq = h1_sequential(srv, "/x", 2)
        assert [(s, len(b)) for s, b, _ in seq] == [(503, 100)] * 2
        responses, _ = h2c_requests(srv, ["/y"])
        assert responses[0][0] == 503 and len(responses[0][1]) == 100
        assert srv.count_requests() == 3

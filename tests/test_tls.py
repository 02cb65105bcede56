"""TLS over TCP (issue 14): the native path (fastload.native.tls, OpenSSL's C API on memory
BIOs inside the sessions) against Python's ssl as the reference, real nginx over TLS for counts,
and hostile TLS peers (tests/servers/tls_hostile_server.py) for error classes."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastload import native
from servers.tls_hostile_server import body_pattern
from support import peers
from support.run import check_document, fastload, run_json

SERVERS = Path(__file__).parent / "servers"

pytestmark = pytest.mark.skipif(native.TlsContext is None,
                                reason="built without OpenSSL's headers: no native TLS unit")


@pytest.fixture(scope="module")
def cert(tmp_path_factory) -> tuple[Path, Path]:
    return peers.make_cert(tmp_path_factory.mktemp("tls"))


# --------------------------------------------------------------------------- in memory


def server_context(cert: tuple[Path, Path]) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*map(str, cert))
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    return ctx


class MemoryServer:
    """The server side of one TLS session in memory (Python's ssl)."""

    def __init__(self, ctx: ssl.SSLContext) -> None:
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.incoming, self.outgoing, server_side=True)

    def handshake(self, data: bytes) -> bytes:
        self.finish(data)
        return self.outgoing.read()

    def finish(self, data: bytes) -> None:
        """The client's last flight; what the server sends then (TLS 1.3 session tickets)
        stays queued in front of the records."""
        self.incoming.write(data)
        try:
            self.obj.do_handshake()
        except ssl.SSLWantReadError:
            pass

    def records(self, chunks: list[bytes]) -> bytes:
        """One write (one or more TLS records) per chunk."""
        for c in chunks:
            self.obj.write(c)
        return self.outgoing.read()

    def read_all(self, data: bytes) -> bytes:
        self.incoming.write(data)
        out = b""
        while True:
            try:
                out += self.obj.read(65536)
            except ssl.SSLWantReadError:
                return out


def native_session(cert, server: MemoryServer, host: str = "127.0.0.1", verify: bool = True,
                   alpn=("h2", "http/1.1")):
    ctx = native.TlsContext(host, host[0].isdigit(), verify, str(cert[0]) if verify else None,
                            list(alpn))
    client = native.MemoryTlsClient(ctx)
    state, out = client.handshake()
    for _ in range(10):
        if state != 0:
            break
        back = server.handshake(out)
        state, out = client.handshake(back)
    if out and state == 1:
        server.finish(out)  # the client's Finished
    return client, state


def python_session(cert, server: MemoryServer) -> tuple[ssl.SSLObject, ssl.MemoryBIO]:
    ctx = ssl.create_default_context(cafile=str(cert[0]))
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    for _ in range(10):
        try:
            obj.do_handshake()
            break
        except ssl.SSLWantReadError:
            incoming.write(server.handshake(outgoing.read()))
    server.finish(outgoing.read())
    return obj, incoming


def python_read(obj: ssl.SSLObject, incoming: ssl.MemoryBIO, data: bytes) -> tuple[bytes, str]:
    incoming.write(data)
    out = b""
    while True:
        try:
            chunk = obj.read(65536)
        except ssl.SSLWantReadError:
            return out, "open"
        except ssl.SSLZeroReturnError:
            return out, "close_notify"
        if not chunk:
            return out, "close_notify"
        out += chunk


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:], strict=False)]


chunks_st = st.lists(st.binary(min_size=1, max_size=20_000), min_size=1, max_size=6)
cuts_st = st.lists(st.integers(min_value=0, max_value=200_000), max_size=12)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chunks=chunks_st, cuts=cuts_st, close=st.booleans())
def test_native_and_python_ssl_decrypt_the_same_stream(cert, chunks, cuts, close):
    """Records of any sizes (one write each, 16 KiB records for the larger), ciphertext
    delivered in any splits: the native read path gives the plaintext byte for byte, as
    Python's ssl does, and sees close_notify where Python sees it."""
    ctx = server_context(cert)
    ours, theirs = MemoryServer(ctx), MemoryServer(ctx)
    client, state = native_session(cert, ours)
    assert state == 1
    py, py_in = python_session(cert, theirs)
    plain = b"".join(chunks)
    wire_ours, wire_theirs = ours.records(chunks), theirs.records(chunks)
    if close:
        for srv in (ours, theirs):
            try:
                srv.obj.unwrap()
            except ssl.SSLWantReadError:
                pass
        wire_ours += ours.outgoing.read()
        wire_theirs += theirs.outgoing.read()
    got, got_py = b"", b""
    state = py_state = "open"
    for piece in split(wire_ours, cuts):
        out, state = client.receive(piece)
        got += out
    for piece in split(wire_theirs, cuts):
        out, py_state = python_read(py, py_in, piece)
        got_py += out
    assert got == plain == got_py
    assert state == py_state == ("close_notify" if close else "open")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chunks=chunks_st)
def test_native_writes_decrypt_on_the_server(cert, chunks):
    server = MemoryServer(server_context(cert))
    client, state = native_session(cert, server)
    assert state == 1
    wire = b"".join(client.send(c) for c in chunks)
    assert server.read_all(wire) == b"".join(chunks)


def test_alpn_and_version_as_negotiated(cert):
    client, state = native_session(cert, MemoryServer(server_context(cert)), alpn=["http/1.1"])
    assert state == 1
    assert client.alpn == "http/1.1"
    assert client.version == "TLSv1.3"


def test_certificate_checks_as_python_does(cert, tmp_path):
    # Self-signed and not given as --ca: refused, with OpenSSL's reason.
    server = MemoryServer(server_context(cert))
    ctx = native.TlsContext("127.0.0.1", True, True, None, ["http/1.1"])
    client = native.MemoryTlsClient(ctx)
    state, out = client.handshake()
    for _ in range(5):
        if state != 0:
            break
        state, out = client.handshake(server.handshake(out))
    assert state == -1
    assert client.error == "certificate verify failed: self-signed certificate"
    # The certificate names localhost and 127.0.0.1: another name is refused even with --ca.
    client, state = native_session(cert, MemoryServer(server_context(cert)), host="example.com")
    assert state == -1
    assert client.error == "certificate verify failed: hostname mismatch"
    client, state = native_session(cert, MemoryServer(server_context(cert)), host="127.0.0.2")
    assert state == -1
    assert client.error == "certificate verify failed: IP address mismatch"
    _, state = native_session(cert, MemoryServer(server_context(cert)), host="localhost")
    assert state == 1
    # --insecure: neither the issuer nor the name is checked.
    _, state = native_session(cert, MemoryServer(server_context(cert)), host="example.com",
                              verify=False)
    assert state == 1
    with pytest.raises(ValueError, match="cannot load CA"):
        native.TlsContext("localhost", False, True, str(tmp_path / "missing.pem"), [])


# --------------------------------------------------------------------------- against nginx


@pytest.mark.parametrize("path", ["native", "python"])
@pytest.mark.parametrize("protocol", ["h1", "h2"])
def test_counts_equal_nginx_over_tls(nginx_tls, path, protocol):
    before = nginx_tls.count_requests()
    extra = ["-m", "8"] if protocol == "h2" else ["--pipeline", "2"]
    doc = run_json(nginx_tls.url, "--ca", str(nginx_tls.cert_path), "--protocol", protocol,
                   "--tls-path", path, "-n", "4000", "-c", "4", "-w", "2", *extra)
    check_document(doc, 4000)
    assert doc["errors"]["total"] == 0
    assert nginx_tls.count_requests() - before == 4000
    assert doc["target"]["tls_path"] == path == doc["config"]["tls_path"]
    assert doc["target"]["protocol"] == protocol


def test_alpn_picks_h2_and_native_is_the_default(nginx_tls):
    doc = run_json(nginx_tls.url, "--insecure", "-n", "600", "-c", "2", "-m", "4", "-w", "1")
    check_document(doc, 600)
    assert doc["target"]["protocol"] == "h2"
    assert doc["target"]["tls_path"] == "native"


def test_self_signed_refused_and_tls_path_checked(nginx_tls):
    p = fastload("run", nginx_tls.url, "-n", "10", "-c", "1")
    assert p.returncode == 3 and "certificate" in p.stderr.lower()
    for args, msg in (
        (["http://127.0.0.1:9/", "--tls-path", "native"], "--tls-path applies to https://"),
        ([nginx_tls.url, "--protocol", "h3", "--tls-path", "python"], "--tls-path applies"),
        ([nginx_tls.url, "--tls-path", "openssl"], "openssl"),
    ):
        p = fastload("run", *args, "-n", "1")
        assert p.returncode == 2, p.stderr
        assert msg in p.stderr and "Traceback" not in p.stderr


def test_info_says_which_tls_path():
    p = fastload("info", "--json")
    assert p.returncode == 0
    tls = json.loads(p.stdout)["tls"]
    assert tls["path"] == "native" and tls["native_built"] is True
    # The version shown is Python's ssl's; the native unit must run on the same library.
    from fastload.native.tls import openssl_version

    assert tls["openssl"] == openssl_version()
    assert isinstance(tls["kernel_tls"], bool)
    assert "TLS path:        native" in fastload("info").stdout


# --------------------------------------------------------------------------- hostile peers


@pytest.fixture
def hostile(cert):
    procs = []

    def start(mode: str) -> str:
        proc = subprocess.Popen([sys.executable, str(SERVERS / "tls_hostile_server.py"), mode,
                                 *map(str, cert)], stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        line = proc.stdout.readline() if proc.stdout else ""
        assert line.startswith("listening on"), line
        return f"https://127.0.0.1:{line.split()[-1]}/"

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()
        if proc.stdout:
            proc.stdout.close()


@pytest.mark.parametrize("path", ["native", "python"])
def test_latency_over_tls_is_the_server_delay(hostile, cert, path):
    """A server that holds every response 20 ms (mode delay): p50 is never below the hold
    and within 2 ms of it, on either TLS path."""
    url = hostile("delay")
    doc = run_json(url, "--ca", str(cert[0]), "--protocol", "h1", "--tls-path", path, "-n", "200",
                   "-c", "4", "-w", "1")
    check_document(doc, 200)
    lat = doc["latency_us"]
    assert lat["min"] >= 20_000
    assert 20_000 <= lat["p50"] <= 22_000, lat


@pytest.mark.parametrize("path", ["native", "python"])
@pytest.mark.parametrize("mode, cls", [
    ("plaintext", "connect"),       # TLS answered with plaintext HTTP
    ("truncate", "connect"),        # half the server's handshake flight, then FIN
    ("stall", "connect"),           # half the flight, then silence: the handshake times out
    ("close_notify", "reset"),      # close_notify in the middle of a response
    ("reset", "reset"),             # RST in the middle of a response's record
    ("corrupt", "protocol"),        # a record that does not decrypt
])
def test_hostile_tls_peer_is_counted_in_its_class(hostile, cert, mode, cls, path):
    """Every other connection misbehaves; the run ends on time with the good connections'
    responses and the bad ones in their error class."""
    if mode == "corrupt" and path == "python":
        cls = "reset"  # uvloop reports the SSLError as a lost connection, not as bad bytes
    url = hostile(mode)
    t0 = time.monotonic()
    p = fastload("run", url, "--ca", str(cert[0]), "--protocol", "h1", "--tls-path", path,
                 "-d", "2s", "-c", "2", "-w", "1", "--timeout", "1s", "--json", "-", "--quiet",
                 timeout=30)
    elapsed = time.monotonic() - t0
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr
    doc = json.loads(p.stdout)
    assert doc["requests"] > 0
    assert doc["errors"][cls] >= 1, doc["errors"]
    others = {k: v for k, v in doc["errors"].items() if k not in ("total", cls)}
    assert not any(others.values()), doc["errors"]
    assert elapsed < 10


def test_writes_bigger_than_the_socket_takes_keep_their_order(hostile, cert, tmp_path):
    """Native TLS writes go to the socket with send(2); what it does not take goes to the
    transport, which writes it once the socket has room (pausing the session meanwhile), and
    later writes go behind it. 6 MiB bodies, two pipelined per connection, to a server that
    reads slowly through a 64 KiB receive buffer: a socket takes at most 4 MiB here (tcp_wmem),
    so every batch is split. A byte lost, repeated or out of order would break a record (the
    server's MAC check ends the connection) or a body (the server compares each with the
    pattern), and the counts would not hold."""
    size = 6 << 20
    body = tmp_path / "body.bin"
    body.write_bytes(body_pattern(size))
    url = hostile("slowread")
    doc = run_json(url, "--ca", str(cert[0]), "--protocol", "h1", "-X", "POST", "--body-file",
                   str(body), "--pipeline", "2", "-n", "8", "-c", "2", "-w", "1", "--timeout", "20s")
    check_document(doc, 8)
    assert doc["bytes_out"] >= 8 * size
    ctx = ssl.create_default_context(cafile=str(cert[0]))
    port = int(url.rsplit(":", 1)[1].strip("/"))
    with socket.create_connection(("127.0.0.1", port)) as raw, \
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        tls.sendall(b"GET /__stats HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = tls.recv(4096).decode()
    assert reply.endswith("served 8 hostile 0 bad 0"), reply


def test_an_install_without_the_native_tls_unit_uses_uvloops_tls(nginx_tls, tmp_path):
    """What a build without OpenSSL's headers installs: the package minus native/tls. It runs
    https:// on the python path, says so in `fastload info`, and refuses --tls-path native."""
    import shutil

    import fastload

    pkg = tmp_path / "fastload"
    shutil.copytree(Path(fastload.__file__).parent, pkg,
                    ignore=shutil.ignore_patterns("tls.*.so", "tls.so", "tls.c", "__pycache__"))
    env = dict(__import__("os").environ, PYTHONPATH=str(tmp_path))

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "fastload", *args], capture_output=True,
                              text=True, env=env, timeout=60, cwd=tmp_path)

    info = json.loads(run("info", "--json").stdout)["tls"]
    assert info["path"] == "python" and info["native_built"] is False
    p = run("run", nginx_tls.url, "-k", "-n", "300", "-c", "2", "-w", "1", "--json", "-", "-q")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["requests"] == 300 and doc["target"]["tls_path"] == "python"
    assert doc["target"]["protocol"] == "h2"
    p = run("run", nginx_tls.url, "-k", "-n", "1", "--tls-path", "native")
    assert p.returncode == 2 and "built without OpenSSL's headers" in p.stderr

"""Launchers for real reference servers (nginx, h2o, nghttpd, caddy, `fastload serve`, the
aioquic server in tests/servers/).

Each launcher writes its config into a private temp dir, starts the server in its own process
group on a free loopback port (optionally pinned with ``taskset -c CPU``), waits until the
port accepts, and returns a :class:`Peer` (also a context manager).

The pytest fixtures import this module (as ``support.peers``). The benchmarks in bench/ do not
import test code: they run this file as a program (``python tests/support/peers.py nginx
--cpu 0``), which starts one server, prints one JSON line ``{"url", "pid", "cert"}`` and
stops the server when its stdin closes or it gets SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

HELLO = b"hello world\n"
REPO = Path(__file__).resolve().parents[2]
SERVERS = REPO / "tests" / "servers"
DELAY_S = 0.020  # the delay of the session's delay_server fixture (conftest.py)


class PeerError(RuntimeError):
    pass


def have(binary: str) -> bool:
    return shutil.which(binary) is not None


def free_port(host: str = "127.0.0.1") -> int:
    # Small race (port could be taken before the server binds); acceptable on loopback.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def pinned(cmd: list[str], cpu: int | None) -> list[str]:
    return cmd if cpu is None else ["taskset", "-c", str(cpu), *cmd]


def wait_stable(read: Callable[[], int], settle_s: float = 0.15, timeout_s: float = 5.0) -> int:
    """Poll a counter until it stops changing: server logs may lag the responses."""
    deadline = time.monotonic() + timeout_s
    last = read()
    stable_since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.03)
        cur = read()
        if cur != last:
            last, stable_since = cur, time.monotonic()
        elif time.monotonic() - stable_since >= settle_s:
            break
    return last


class Peer:
    """A running server process. ``url`` ends with '/'."""

    def __init__(self, name: str, workdir: tempfile.TemporaryDirectory[str], scheme: str = "http"):
        self.name = name
        self._tmp = workdir
        self.dir = Path(workdir.name)
        self.scheme = scheme
        self.host = "127.0.0.1"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.access_log: Path | None = None
        self._log_files: list = []

    # -- lifecycle

    def start(self, cmd: list[str], port: int | None = None, timeout_s: float = 10.0) -> Peer:
        out = open(self.dir / "stdout.log", "wb")  # closed in stop()
        err = open(self.dir / "stderr.log", "wb")
        self._log_files = [out, err]
        # Own session/process group so stop() can kill the whole tree (nginx master + worker).
        self.proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            cwd=self.dir,
            start_new_session=True,
            env=self._env(),
        )
        try:
            if port is None:
                port = self._read_announced_port(timeout_s)
            self.port = port
            self._wait_accepting(timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        # Make `python -m fastload serve` use this checkout even if an older fastload is installed.
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(REPO / "src"), env.get("PYTHONPATH")])
        )
        return env

    def _read_announced_port(self, timeout_s: float) -> int:
        path = self.dir / "stdout.log"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            line = path.read_text(errors="replace").split("\n", 1)
            if len(line) == 2 and line[0].startswith("listening on "):
                return int(line[0].rsplit(":", 1)[1])
            self._check_alive()
            time.sleep(0.02)
        raise PeerError(
            f"{self.name}: no 'listening on' line within {timeout_s}s\n{self.diagnostics()}"
        )

    def _wait_accepting(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.02)
        raise PeerError(
            f"{self.name}: port {self.port} not accepting after {timeout_s}s\n{self.diagnostics()}"
        )

    def _check_alive(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise PeerError(f"{self.name} exited with {self.proc.returncode}\n{self.diagnostics()}")

    def diagnostics(self) -> str:
        parts = []
        for name in ("stdout.log", "stderr.log", "error.log"):
            p = self.dir / name
            if p.exists():
                parts.append(f"--- {name}\n{p.read_text(errors='replace')[-2000:]}")
        return "\n".join(parts)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            _kill_group(proc)
        elif proc is not None:
            _kill_group(proc, sig_first=signal.SIGKILL)  # leftover children of a dead leader
        for f in self._log_files:
            f.close()
        self._log_files = []
        self._tmp.cleanup()

    def __enter__(self) -> Peer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- addressing / counting

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}/"

    def count_requests(self, path: str | None = None) -> int:
        """Requests the server logged (optionally only for ``path``), once the log settled."""
        if self.access_log is None:
            raise PeerError(f"{self.name}: started without an access log")
        return wait_stable(lambda: self._count_log(path))

    def count_by_address(self) -> dict[str, int]:
        """Requests the server logged per client address (nginx: its log's last field)."""
        self.count_requests()  # waits for the log to settle
        assert self.access_log is not None
        out: dict[str, int] = {}
        with open(self.access_log, "rb") as f:
            for line in f:
                if line.endswith(b"\n"):
                    addr = line.split()[-1].decode()
                    out[addr] = out.get(addr, 0) + 1
        return out

    def _count_log(self, path: str | None) -> int:
        # Log format used by every launcher: "<method> <path> <status>" (nginx adds the length).
        assert self.access_log is not None
        if not self.access_log.exists():
            return 0
        n = 0
        with open(self.access_log, "rb") as f:
            for line in f:
                if not line.endswith(b"\n"):
                    continue  # partially written line: counted on the next poll
                if path is None or line.split(b" ")[1:2] == [path.encode()]:
                    n += 1
        return n


def _kill_group(proc: subprocess.Popen[bytes], sig_first: int = signal.SIGTERM) -> None:
    try:
        os.killpg(proc.pid, sig_first)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    # Kill anything left in the group (workers that outlived the master).
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _workdir(prefix: str) -> tempfile.TemporaryDirectory[str]:
    tmp = tempfile.TemporaryDirectory(prefix=f"fastload-{prefix}-")
    # Servers started as root drop privileges to 'nobody' and must still read the docroot.
    os.chmod(tmp.name, 0o755)
    return tmp


# --------------------------------------------------------------------------- nginx

NGINX_CONF = """\
worker_processes 1;
worker_rlimit_nofile 30000;
daemon off;
master_process on;
error_log {d}/error.log warn;
pid {d}/nginx.pid;
events {{ worker_connections 20000; }}
http {{
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    default_type text/plain;
    log_format fastload '$request_method $uri $status $request_length $remote_addr';
    {access_log}
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    http2_max_concurrent_streams 256;
    server {{
        listen {host}:{port}{http2};
        {tls}
        location / {{ return 200 "hello world\\n"; }}
        location = /status/204 {{ return 204; }}
        location = /status/404 {{ return 404 "not found\\n"; }}
        location = /status/500 {{ return 500 "error\\n"; }}
        location = /status/503 {{ return 503 "unavailable\\n"; }}
        location = /json {{ default_type application/json; return 200 '{{"status":"ok","data":{{"items":[{{"id":5}}]}}}}'; }}
        # JSON nested deeper than Python's recursion limit: json.loads raises RecursionError.
        location = /deep-json {{ default_type application/json; return 200 '{DEEP_JSON}'; }}
        # PUT stores the body (201, then 204): nginx reads every byte, $request_length shows it.
        location /upload/ {{ root {d}/dav; dav_methods PUT; client_max_body_size 64m; }}
    }}
}}
"""


def nginx(h2c: bool = False, cpu: int | None = None, access_log: bool = True,
          host: str = "127.0.0.1", tls: bool = False) -> Peer:
    """nginx 1 worker on host (another address: a network namespace's, for bench/faults.py and
    the cluster tests); ``access_log`` off for benchmarks (unbuffered log otherwise). The log's
    last field is the client's address (count_by_address). ``tls``: https:// with a
    self-signed certificate (``cert_path``) and ALPN h2 and http/1.1 on the same port."""
    tmp = _workdir("nginx")
    peer: Peer = TLSPeer("nginx-tls", tmp, scheme="https") if tls else \
        Peer("nginx-h2c" if h2c else "nginx", tmp)
    peer.host = host
    d = peer.dir
    port = free_port(host)
    log = f"access_log {d}/access.log fastload;" if access_log else "access_log off;"
    tls_conf = ""
    if tls:
        assert isinstance(peer, TLSPeer)
        peer.cert_path, peer.key_path = make_cert(d)
        tls_conf = (f"ssl_certificate {peer.cert_path}; ssl_certificate_key {peer.key_path}; "
                    "ssl_session_cache off; ssl_session_tickets off;")
    conf = NGINX_CONF.format(d=d, port=port, http2=" ssl http2" if tls else " http2" if h2c else "",
                             access_log=log, DEEP_JSON="[" * 3000, host=host, tls=tls_conf)
    (d / "dav" / "upload").mkdir(parents=True)
    os.chmod(d / "dav" / "upload", 0o777)  # written by the worker, 'nobody' when run as root
    (d / "nginx.conf").write_text(conf)
    peer.access_log = d / "access.log" if access_log else None
    # -e: the error log before the config is read, otherwise /var/log/nginx is used.
    cmd = ["nginx", "-p", str(d), "-c", str(d / "nginx.conf"), "-e", str(d / "error.log")]
    return peer.start(pinned(cmd, cpu), port=port)


def nginx_master_pid(peer: Peer) -> int:
    return int((peer.dir / "nginx.pid").read_text())


# --------------------------------------------------------------------------- h2o

H2O_CONF = """\
num-threads: 1
http2-max-concurrent-requests-per-connection: 256
error-log: {d}/error.log
{access_log}
listen:
  host: 127.0.0.1
  port: {port}
hosts:
  default:
    paths:
      /:
        file.dir: {d}/docroot
"""


def h2o(cpu: int | None = None, access_log: bool = True) -> Peer:
    """h2o 1 thread; h1 and h2c prior knowledge on the same plain port; '/' is 12 bytes."""
    tmp = _workdir("h2o")
    peer = Peer("h2o", tmp)
    d = peer.dir
    (d / "docroot").mkdir()
    (d / "docroot" / "index.html").write_bytes(HELLO)
    port = free_port()
    if access_log:
        log = f'access-log:\n  path: {d}/access.log\n  format: "%m %U %s"'
        peer.access_log = d / "access.log"
    else:
        log = "access-log: /dev/null"
    (d / "h2o.conf").write_text(H2O_CONF.format(d=d, port=port, access_log=log))
    return peer.start(pinned(["h2o", "-c", str(d / "h2o.conf")], cpu), port=port)


# --------------------------------------------------------------------------- nghttpd (TLS)


class TLSPeer(Peer):
    cert_path: Path
    key_path: Path


def make_cert(d: Path) -> tuple[Path, Path]:
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def make_ca_and_cert(d: Path) -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate signed by it, server key): a chain as real servers
    have. Verifiers built on webpki (qh3's) refuse a self-signed CA certificate used as the
    server's own ("CA used as end entity"); OpenSSL accepts both."""
    ca_key, ca, key, csr, cert = (d / n for n in ("ca.key", "ca.pem", "key.pem", "cert.csr", "cert.pem"))
    ext = d / "leaf.ext"
    ext.write_text("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n"
                   "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for cmd in (
        ["openssl", "req", "-x509", *ec, "-keyout", str(ca_key), "-out", str(ca), "-days", "2",
         "-subj", "/CN=fastload test CA", "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        ["openssl", "req", "-new", *ec, "-keyout", str(key), "-out", str(csr), "-subj", "/CN=localhost"],
        ["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
         "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext)],
    ):
        subprocess.run(cmd, check=True, capture_output=True)
    return ca, cert, key


def nghttpd_tls(cpu: int | None = None) -> TLSPeer:
    """nghttpd over TLS (ALPN h2) with a self-signed cert; '/' and '/hello.txt' are 12 bytes.

    nghttpd has no access log, so ``count_requests()`` is not available.
    """
    tmp = _workdir("nghttpd")
    peer = TLSPeer("nghttpd-tls", tmp, scheme="https")
    d = peer.dir
    (d / "docroot").mkdir()
    (d / "docroot" / "index.html").write_bytes(HELLO)
    (d / "docroot" / "hello.txt").write_bytes(HELLO)
    peer.cert_path, peer.key_path = make_cert(d)
    port = free_port()
    cmd = [
        "nghttpd",
        "-a",
        "127.0.0.1",
        "-d",
        str(d / "docroot"),
        str(port),
        str(peer.key_path),
        str(peer.cert_path),
    ]
    return peer.start(pinned(cmd, cpu), port=port)


# --------------------------------------------------------------------------- fastload serve


class FastloadPeer(Peer):
    h2c: bool = False  # informational: the server speaks h1 and h2c on the same port

    def stats(self) -> dict:
        with urllib.request.urlopen(f"{self.url}__fastload/stats", timeout=5) as r:
            return json.loads(r.read())

    def reset(self) -> None:
        req = urllib.request.Request(f"{self.url}__fastload/reset", data=b"", method="POST")
        with urllib.request.urlopen(req, timeout=5) as r:
            r.read()

    def count_requests(self, path: str | None = None) -> int:
        def read() -> int:
            s = self.stats()
            return s["responses"] if path is None else s["requests_by_path"].get(path, 0)

        return wait_stable(read)


def fastload_server(
    delay: str | float = 0.0,
    h2c: bool = False,
    cpu: int | None = None,
    status: int = 200,
    body_size: int | None = None,
) -> FastloadPeer:
    """``python -m fastload serve --port 0``; the port is read from its first stdout line.

    The server speaks h1 and h2c on the same port; ``h2c`` is recorded for callers.
    """
    tmp = _workdir("fastload-serve")
    peer = FastloadPeer("fastload-serve", tmp)
    peer.h2c = h2c
    cmd = [
        sys.executable,
        "-m",
        "fastload",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--delay",
        str(delay),
        "--status",
        str(status),
    ]
    if body_size is not None:
        cmd += ["--body-size", str(body_size)]
    return peer.start(pinned(cmd, cpu), port=None)


# --------------------------------------------------------------------------- HTTP/3 (aioquic)


class H3Peer(TLSPeer):
    """tests/servers/h3_server.py: HTTP/3 on UDP ``port``, counters over TCP ``stats_port``."""

    stats_port: int = 0

    def _read_announced_port(self, timeout_s: float) -> int:
        path = self.dir / "stdout.log"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            lines = path.read_text(errors="replace").split("\n")
            if len(lines) >= 3 and lines[1].startswith("stats on "):
                self.stats_port = int(lines[1].rsplit(":", 1)[1])
                return int(lines[0].rsplit(":", 1)[1])
            self._check_alive()
            time.sleep(0.02)
        raise PeerError(f"{self.name}: no 'listening on' line within {timeout_s}s\n"
                        f"{self.diagnostics()}")

    def _wait_accepting(self, timeout_s: float) -> None:
        # UDP cannot be probed with a TCP connect: the stats port opens after the QUIC one.
        port, self.port = self.port, self.stats_port
        try:
            super()._wait_accepting(timeout_s)
        finally:
            self.port = port

    def stats(self) -> dict:
        with urllib.request.urlopen(f"http://{self.host}:{self.stats_port}/", timeout=5) as r:
            return json.loads(r.read())

    def reset(self) -> None:
        req = urllib.request.Request(f"http://{self.host}:{self.stats_port}/reset", data=b"",
                                     method="POST")
        with urllib.request.urlopen(req, timeout=5) as r:
            r.read()

    def count_requests(self, path: str | None = None) -> int:
        """Responses the server sent (complete), once the count settled."""
        return wait_stable(lambda: self.stats()["responses"])


def h3_server(cpu: int | None = None, delay: str = "0", reset_every: int = 0,
              close_after: int = 0, no_status_every: int = 0, bad_length_every: int = 0,
              sse: str | None = None, goaway_after: int = 0) -> H3Peer:
    """tests/servers/h3_server.py (aioquic, 1 process); ``.cert_path`` is the CA that signed
    its certificate (what --ca takes)."""
    tmp = _workdir("h3")
    peer = H3Peer("h3-server", tmp, scheme="https")
    d = peer.dir
    peer.cert_path, server_cert, peer.key_path = make_ca_and_cert(d)
    cmd = [sys.executable, str(SERVERS / "h3_server.py"), "--cert", str(server_cert),
           "--key", str(peer.key_path), "--host", peer.host, "--port", "0", "--delay", delay,
           "--reset-every", str(reset_every), "--close-after", str(close_after),
           "--no-status-every", str(no_status_every), "--bad-length-every", str(bad_length_every),
           "--goaway-after", str(goaway_after)]
    if sse:
        cmd += ["--sse", sse]
    return peer.start(pinned(cmd, cpu), port=None)


# --------------------------------------------------------------------------- caddy (bench/h3.py)

CADDYFILE = """\
{{
	admin off
	auto_https disable_redirects
	storage file_system {d}/storage
	servers {{
		protocols h1 h2 h3
	}}
}}
https://127.0.0.1:{port} {{
	tls {d}/cert.pem {d}/key.pem
	respond "hello world
" 200
}}
"""


def caddy(cpu: int | None = None) -> TLSPeer:
    """caddy, 1 Go thread (GOMAXPROCS=1), h1/h2 on TCP and h3 on UDP of the same port."""
    tmp = _workdir("caddy")
    peer = TLSPeer("caddy", tmp, scheme="https")
    d = peer.dir
    peer.cert_path, peer.key_path = make_cert(d)
    port = free_port()
    (d / "Caddyfile").write_text(CADDYFILE.format(d=d, port=port))
    os.environ["GOMAXPROCS"] = "1"  # one Go thread: caddy stays on its one CPU (Python ignores it)
    cmd = ["caddy", "run", "--config", str(d / "Caddyfile"), "--adapter", "caddyfile"]
    return peer.start(pinned(cmd, cpu), port=port)


# --------------------------------------------------------------------------- as a program (bench/)

LAUNCHERS: dict[str, Callable[[argparse.Namespace], Peer]] = {
    "nginx": lambda a: nginx(h2c=False, cpu=a.cpu, access_log=not a.no_access_log, host=a.host),
    "nginx-h2c": lambda a: nginx(h2c=True, cpu=a.cpu, access_log=not a.no_access_log,
                                 host=a.host),
    "nginx-tls": lambda a: nginx(cpu=a.cpu, access_log=not a.no_access_log, host=a.host, tls=True),
    "h2o": lambda a: h2o(cpu=a.cpu, access_log=not a.no_access_log),
    "nghttpd-tls": lambda a: nghttpd_tls(cpu=a.cpu),
    "fastload": lambda a: fastload_server(delay=a.delay, cpu=a.cpu),
    "h3": lambda a: h3_server(cpu=a.cpu, delay=a.delay),
    "caddy": lambda a: caddy(cpu=a.cpu),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Start one reference server; print "
                                 '{"url", "pid", "cert"} as one JSON line; stop it when stdin '
                                 "closes or on SIGTERM.")
    ap.add_argument("kind", choices=sorted(LAUNCHERS))
    ap.add_argument("--cpu", type=int, default=None, help="pin the server with taskset -c CPU")
    ap.add_argument("--no-access-log", action="store_true", help="nginx, h2o: no access log")
    ap.add_argument("--delay", default="0", help="fastload, h3: response delay (e.g. 5ms)")
    ap.add_argument("--host", default="127.0.0.1", help="nginx: the address to listen on")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop the server on the way out
    try:
        peer = LAUNCHERS[args.kind](args)
    except (PeerError, OSError, subprocess.CalledProcessError) as e:
        print(f"{args.kind}: {e}", file=sys.stderr)
        return 1
    with peer:
        assert peer.proc is not None
        print(json.dumps({"url": peer.url, "pid": peer.proc.pid,
                          "cert": str(getattr(peer, "cert_path", "")) or None}), flush=True)
        sys.stdin.read()
    return 0


if __name__ == "__main__":
    sys.exit(main())

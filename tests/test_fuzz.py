"""A bounded libFuzzer run (atheris) over each native parser, seeded with valid traffic so the
mutations stay close to real protocol bytes. Any crash or uncaught exception fails the test.
(The hypothesis fuzz properties in test_h1_parser/test_hpack/test_h2_core cover the same
ground without atheris.)"""

from __future__ import annotations

import os
import subprocess
import sys

import h2.config
import h2.connection
import hpack
import pytest

pytest.importorskip("atheris")

HERE = os.path.dirname(__file__)
RUNS = "200000"


def h1_seeds() -> list[bytes]:
    return [
        b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 12\r\n\r\nhello world\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\nT: 1\r\n\r\n",
        b"HTTP/1.0 404 Not Found\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil close",
    ]


def hpack_seeds() -> list[bytes]:
    enc = hpack.Encoder()
    blocks = [enc.encode([(":status", "200"), ("content-type", "text/plain"), ("x-n", str(i))]) for i in range(3)]
    return [b"\xfe\xfe".join(blocks), bytes.fromhex("828684418cf1e3c2e5f23a6ba0ab90f4ff")]


def h2_seeds() -> list[bytes]:
    cli = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    cli.initiate_connection()
    for sid in (1, 3, 5):
        cli.send_headers(sid, [(":method", "GET"), (":scheme", "http"), (":authority", "x"), (":path", "/")],
                         end_stream=True)
    srv = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    srv.initiate_connection()
    srv.receive_data(cli.data_to_send())
    for sid in (1, 3, 5):
        srv.send_headers(sid, [(":status", "200"), ("content-length", "5")])
        srv.send_data(sid, b"hello", end_stream=True)
    srv.ping(b"12345678")
    return [srv.data_to_send()]


@pytest.mark.parametrize("target,seeds", [("h1", h1_seeds), ("hpack", hpack_seeds), ("h2", h2_seeds)])
def test_bounded_fuzzing_finds_nothing(target, seeds, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i, seed in enumerate(seeds()):
        (corpus / f"seed{i}").write_bytes(seed)
    p = subprocess.run([sys.executable, os.path.join(HERE, "fuzz_native.py"), target, str(corpus),
                        f"-runs={RUNS}", "-max_len=4096", "-timeout=10", "-rss_limit_mb=2048"],
                       capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    assert f"Done {RUNS} runs" in p.stderr

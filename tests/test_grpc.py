"""Unary gRPC against a real grpcio server: exact call counts and per-code statuses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from contextlib import contextmanager

import grpc
import pytest

from fastload.grpc.call import frame_message
from support import SERVERS

HERE = os.path.dirname(os.path.abspath(__file__))


@contextmanager
def grpc_server(fail_every: int = 0):
    proc = subprocess.Popen([sys.executable, str(SERVERS / "grpc_server.py"), str(fail_every)],
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        port = int(proc.stdout.readline().split()[-1])

        def stats() -> dict:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
                return json.loads(ch.unary_unary("/test.Echo/Stats")(b"", timeout=10))

        yield f"http://127.0.0.1:{port}", stats
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
        proc.stdout.close()


def fastload(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fastload", *args], capture_output=True, text=True,
                          timeout=120)


def test_frame_message():
    assert frame_message(b"") == b"\0\0\0\0\0"
    assert frame_message(b"abc") == b"\0\0\0\0\x03abc"


def test_unary_calls_counted_exactly_with_their_status_codes():
    with grpc_server(fail_every=5) as (url, stats):
        r = fastload("grpc", url, "--method", "test.Echo/Unary", "--data-b64", "aGVsbG8gZ3JwYw==",
                     "-n", "500", "-c", "2", "-m", "8", "-w", "1", "--json", "-", "--quiet")
        assert r.returncode == 0, r.stderr
        served = stats()
    doc = json.loads(r.stdout)
    assert doc["requests"] == 500 and doc["errors"]["total"] == 0
    assert doc["target"]["protocol"] == "h2" and doc["config"]["grpc_method"] == "test.Echo/Unary"
    assert served["calls"] == 500 and served["bytes"] == 500 * len(b"hello grpc")
    assert doc["grpc_status"] == {"0": served["ok"], "14": served["unavailable"]} == {"0": 400, "14": 100}
    assert doc["status_codes"] == {"200": 500}


def test_message_from_file_and_summary_line(tmp_path):
    msg = tmp_path / "msg.bin"
    msg.write_bytes(bytes(range(256)) * 4)
    with grpc_server() as (url, stats):
        r = fastload("grpc", url, "--method", "/test.Echo/Unary", "--data-file", str(msg), "-n", "50",
                     "-c", "1", "-w", "1")
        served = stats()
    assert r.returncode == 0, r.stderr
    assert "gRPC status: 0: 50" in r.stdout
    assert served["calls"] == 50 and served["bytes"] == 50 * 1024


def test_unknown_method_is_unimplemented_not_a_transport_error():
    with grpc_server() as (url, _):
        r = fastload("grpc", url, "--method", "test.Echo/Nope", "-n", "20", "-c", "1", "-w", "1",
                     "--json", "-", "--quiet")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["grpc_status"] == {"12": 20} and doc["errors"]["total"] == 0


@pytest.mark.parametrize("args, needle", [
    (["--method", "no-slash"], "not a gRPC method"),
    (["--method", "a.B/C", "--data-b64", "!!"], "not valid base64"),
    (["--method", "a.B/C", "--data-file", "/nonexistent/msg.bin"], "cannot read"),
    (["--method", "a.B/C", "--data-file", "x", "--data-b64", "eA=="], "exclusive"),
])
def test_bad_grpc_input_exits_2_before_traffic(args, needle):
    r = fastload("grpc", "http://127.0.0.1:9/", *args, "-n", "1")
    assert r.returncode == 2 and needle in r.stderr and "Traceback" not in r.stderr


def test_server_streaming_calls_count_every_message_and_the_first_one():
    # 6 messages, 20 ms apart, the first 20 ms after the call: time to first message ~20 ms.
    with grpc_server() as (url, stats):
        r = fastload("grpc", url, "--method", "test.Echo/Stream", "--data-b64", "NiwyMA==",
                     "-n", "40", "-c", "1", "-m", "4", "-w", "1", "--json", "-", "--quiet")
        assert r.returncode == 0, r.stderr
        served = stats()
    doc = json.loads(r.stdout)
    assert doc["requests"] == 40 and doc["grpc_status"] == {"0": 40}
    assert served["stream_calls"] == 40 and served["stream_messages"] == 240
    assert doc["events"] == {"streams": 40, "total": 240, "mean": 6.0, "p50": 6, "max": 6}
    assert 20_000 <= doc["ttfe_us"]["min"] and abs(doc["ttfe_us"]["p50"] - 20_000) <= 3_000
    assert abs(doc["event_gap_us"]["p50"] - 20_000) <= 3_000
    assert doc["latency_us"]["min"] >= 120_000


PROTO = os.path.join(HERE, "echo.proto")


def test_message_from_proto_and_json():
    # {"text": "hi", "n": 3}: field 1 (string) 0a 02 'h' 'i', field 2 (varint) 10 03.
    with grpc_server() as (url, stats):
        r = fastload("grpc", url, "--method", "test.Echo/Unary", "--proto", PROTO,
                     "--message", '{"text": "hi", "n": 3}', "-n", "50", "-c", "1", "-w", "1",
                     "--json", "-", "--quiet")
        assert r.returncode == 0, r.stderr
        served = stats()
    doc = json.loads(r.stdout)
    assert doc["requests"] == 50 and doc["grpc_status"] == {"0": 50}
    assert served["calls"] == 50 and served["bytes"] == 50 * len(b"\x0a\x02hi\x10\x03")
    assert doc["bytes_out"] > 50 * (5 + 6)


@pytest.mark.parametrize(("args", "needle"), [
    (["--proto", PROTO], "--proto and --message go together"),
    (["--message", "{}"], "--proto and --message go together"),
    (["--proto", PROTO, "--message", "{}", "--data-b64", "AA=="], "exclusive"),
    (["--proto", "/nonexistent/x.proto", "--message", "{}"], "does not exist"),
    (["--proto", PROTO, "--message", '{"nope": 1}'], "not a valid test.EchoRequest"),
    (["--proto", PROTO, "--message", "{", ], "not a valid test.EchoRequest"),
])
def test_bad_proto_input_exits_2(args, needle):
    r = fastload("grpc", "http://127.0.0.1:9/", "--method", "test.Echo/Unary", *args, "-n", "1")
    assert r.returncode == 2 and needle in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_proto_names_the_missing_method_and_refuses_client_streaming(tmp_path):
    r = fastload("grpc", "http://127.0.0.1:9/", "--method", "test.Echo/Nope", "--proto", PROTO,
                 "--message", "{}", "-n", "1")
    assert r.returncode == 2 and "has no method 'Nope'" in r.stderr and "Unary" in r.stderr
    r = fastload("grpc", "http://127.0.0.1:9/", "--method", "other.Svc/Unary", "--proto", PROTO,
                 "--message", "{}", "-n", "1")
    assert r.returncode == 2 and "test.Echo" in r.stderr
    r = fastload("grpc", "http://127.0.0.1:9/", "--method", "test.Echo/Upload", "--proto", PROTO,
                 "--message", "{}", "-n", "1")
    assert r.returncode == 2 and "client-streaming" in r.stderr
    bad = tmp_path / "bad.proto"
    bad.write_text('syntax = "proto3";\nmessage X { strin a = 1; }\n')
    r = fastload("grpc", "http://127.0.0.1:9/", "--method", "a.B/C", "--proto", str(bad),
                 "--message", "{}", "-n", "1")
    assert r.returncode == 2 and "does not compile" in r.stderr and "bad.proto" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1

"""Hostile HTTP/1.1 servers: every misbehaviour is counted in its error class, exactly, and the
run goes on over fresh connections."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from contextlib import contextmanager

import pytest

from fastload.errors import ERROR_CLASSES
from support import SERVERS
from support.run import run_json


@contextmanager
def fault_server(mode: str, good: int = 3):
    proc = subprocess.Popen([sys.executable, str(SERVERS / "fault_server.py"), mode, str(good)],
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        port = int(proc.stdout.readline().split()[-1])
        url = f"http://127.0.0.1:{port}/"

        def stats() -> dict:
            with urllib.request.urlopen(url + "__stats", timeout=5) as r:
                return json.loads(r.read())

        yield url, stats
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
        proc.stdout.close()


@pytest.mark.parametrize(
    "mode,error_class",
    [("rst", "reset"), ("close", "reset"), ("midclose", "reset"), ("short", "reset"),
     ("garbage", "protocol"), ("nocrlf", "protocol"), ("badchunk", "protocol"),
     ("hugeheaders", "protocol"), ("slow", "timeout"), ("trickle", "timeout")],
)
def test_each_fault_is_counted_exactly(mode, error_class):
    # Each connection serves 3 good responses and then misbehaves once. -n 30 over one
    # connection at a time therefore takes 10 connections, and 9 of them fail once (the 10th
    # reaches the 30th response before its 4th request).
    with fault_server(mode) as (url, stats):
        doc = run_json(url, "-n", "30", "-c", "1", "-w", "1", "--timeout", "300ms")
        served = stats()
    assert doc["requests"] == 30
    assert doc["status_codes"] == {"200": 30}
    expected = dict.fromkeys(ERROR_CLASSES, 0)
    expected[error_class] = 9
    assert doc["errors"] == {"total": 9, **expected}
    assert served == {"connections": 10, "good": 30, "faults": 9}


def test_accept_then_close_counts_every_connection(tmp_path):
    with fault_server("close", good=0) as (url, stats):
        doc = run_json(url, "-d", "1s", "-c", "2", "-w", "1")
        faults = stats()["faults"]
    assert doc["requests"] == 0
    assert faults > 10
    # Only a failure in flight at the deadline can go uncounted, one per connection.
    assert faults - 2 <= doc["errors"]["reset"] <= faults
    assert doc["errors"]["total"] == doc["errors"]["reset"]


@contextmanager
def h2_fault_server(mode: str, good: int = 3):
    proc = subprocess.Popen([sys.executable, str(SERVERS / "h2_fault_server.py"), mode, str(good)],
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        port = int(proc.stdout.readline().split()[-1])
        url = f"http://127.0.0.1:{port}/"

        def stats() -> dict:
            with urllib.request.urlopen(url + "__stats", timeout=5) as r:
                return json.loads(r.read())

        yield url, stats
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
        proc.stdout.close()


@pytest.mark.parametrize(
    "mode,error_class,connections",
    [("goaway", "reset", 10),      # the stream above last-stream-id never ran: reconnect, count it
     ("rst", "reset", 1),          # RST_STREAM on every 4th stream: the connection stays
     ("badframe", "protocol", 10),  # PING of the wrong length: connection error
     ("badhpack", "protocol", 10)],  # undecodable header block: COMPRESSION_ERROR
)
def test_h2_faults_are_counted_exactly(mode, error_class, connections):
    with h2_fault_server(mode) as (url, stats):
        doc = run_json(url, "--h2c", "-n", "30", "-c", "1", "-m", "1", "-w", "1", "--timeout", "2s")
        served = stats()
    assert doc["requests"] == 30
    expected = dict.fromkeys(ERROR_CLASSES, 0)
    expected[error_class] = 9
    assert doc["errors"] == {"total": 9, **expected}
    assert served["good"] == 30 and served["faults"] == 9
    assert served["connections"] == connections


def test_h2_server_limit_of_one_stream_is_respected():
    with h2_fault_server("maxstreams") as (url, stats):
        doc = run_json(url, "--h2c", "-n", "200", "-c", "1", "-m", "8", "-w", "1")
        served = stats()
    assert doc["requests"] == 200 and doc["errors"]["total"] == 0
    assert served["peak_streams"] == 1


def test_h2_window_that_never_opens_gives_timeouts_not_a_hang(tmp_path):
    # The server sets a zero stream window and never updates it. The body is larger than the
    # 65535 bytes a client may send before it sees that: each request waits for window until
    # --timeout, is cancelled and counted, and the next one waits in its turn.
    body = tmp_path / "body.bin"
    body.write_bytes(b"b" * 100_000)
    with h2_fault_server("zerowindow") as (url, stats):
        doc = run_json(url, "--h2c", "-X", "POST", "--body-file", str(body), "-d", "2s", "-c", "1",
                       "-m", "1", "-w", "1", "--timeout", "300ms")
        served = stats()
    assert doc["requests"] == 0
    timeouts = doc["errors"]["timeout"]
    assert doc["errors"]["total"] == timeouts >= 4
    # Every stream the server saw timed out, but the one still waiting at the deadline.
    assert served["faults"] - 1 <= timeouts <= served["faults"]
    # One connection. The SETTINGS normally reach the client before the start barrier opens
    # (nothing crosses); at most the default window's worth may precede them, never more.
    assert served["connections"] == 1
    assert served["body_bytes"] in (0, 65535)
    assert doc["duration_s"] < 3

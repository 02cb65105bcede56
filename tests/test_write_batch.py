"""HTTP/1.1, closed model: the requests one loop iteration's responses make room for are written
together after the iteration's reads (sessions.WriteBatch), stamped when written. Counts must
stay exact (warm-up, quota; the deadline is test_run's), latency must still never be below
what the server held, and the worker's system calls must show every read of an iteration
before its writes."""

from __future__ import annotations

import collections
import os
import shutil
import subprocess
import sys

import pytest

from support.run import check_document, run_json


@pytest.mark.parametrize("peer, args", [
    ("nginx_h1", ["-c", "8"]),
    ("nginx_h1", ["-c", "4", "--pipeline", "4"]),
    ("nginx_tls", ["--insecure", "--protocol", "h1", "-c", "8"]),
    ("nginx_tls", ["--insecure", "--protocol", "h1", "-c", "8", "--tls-path", "python"]),
])
def test_counts_equal_the_servers_with_and_without_a_warmup(request, peer, args):
    server = request.getfixturevalue(peer)
    before = server.count_requests()
    doc = run_json(server.url, *args, "-n", "3000", "-w", "1")
    check_document(doc, 3000)
    assert doc["errors"]["total"] == 0
    assert server.count_requests() - before == 3000
    # Requests taken during the warm-up and written just after it stay out of the window and
    # out of the quota: exactly 3000 are measured, and nothing is sent beyond them.
    before = server.count_requests()
    doc = run_json(server.url, *args, "-n", "3000", "-w", "1", "--warmup", "300ms")
    check_document(doc, 3000)
    assert doc["errors"]["total"] == 0
    served = server.count_requests() - before
    assert served > 3000  # the warm-up's own requests
    assert doc["requests"] == 3000


def test_latency_stays_within_what_the_server_held(delay_server):
    # A request's clock starts when it is written: never below the server's hold, and no
    # more above it than without the batch (test_run's bound). Stamping at the take instead
    # would add only the rest of one iteration, microseconds: these bounds do not see that.
    delay_server.reset()
    doc = run_json(delay_server.url, "-n", "1200", "-c", "40", "-w", "1")
    check_document(doc, 1200)
    held = delay_server.stats()["held_us"]
    assert held["count"] == 1200
    assert doc["latency_us"]["min"] >= held["min"]
    assert held["p50"] <= doc["latency_us"]["p50"] < held["p50"] + 1000


def _syscalls_by_thread(url: str, tmp_path) -> dict[int, list[str]]:
    data = tmp_path / "perf.data"
    events = ",".join(f"syscalls:sys_enter_{s}" for s in ("epoll_pwait", "epoll_wait", "read",
                                                          "sendto"))
    subprocess.run(["perf", "record", "-q", "-e", events, "-o", str(data), "--",
                    sys.executable, "-m", "fastload", "run", url, "-n", "5000", "-c", "8", "-w",
                    "1", "--quiet"], check=True, capture_output=True, timeout=120)
    out = subprocess.run(["perf", "script", "-i", str(data), "-F", "tid,event"], check=True,
                         capture_output=True, text=True, timeout=120).stdout
    seq: dict[int, list[str]] = collections.defaultdict(list)
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].isdigit():
            seq[int(parts[0])].append(parts[1].rsplit("_", 1)[-1].rstrip(":"))
    return seq


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("perf") is None,
                    reason="needs perf and root for the system-call tracepoints")
def test_an_iterations_reads_all_come_before_its_writes(nginx_h1, tmp_path):
    seq = _syscalls_by_thread(nginx_h1.url, tmp_path)
    # The worker: the thread that sent the 5000 requests.
    calls = max(seq.values(), key=lambda s: s.count("sendto"))
    assert calls.count("sendto") >= 1000
    iterations = []
    current: list[str] = []
    for c in calls:
        if c in ("pwait", "wait"):
            iterations.append(current)
            current = []
        else:
            current.append(c)
    iterations.append(current)
    # Within an iteration the writes (the batch, run before the next poll) follow the reads;
    # writing each request as its response is read would interleave them.
    interleaved = [it for it in iterations if "sendto" in it
                   and "read" in it[it.index("sendto"):]]
    assert not interleaved, interleaved[:3]
    # And the batches are real: many iterations write for several connections at once.
    assert sum(1 for it in iterations if it.count("sendto") >= 2) >= 50

"""HTTP/3 (`--protocol h3`, aioquic) end to end against the project's aioquic server on
loopback: exact counts against what the server counted, TLS verification, the open model,
latency against a known delay, and the error classes of a server that misbehaves."""

from __future__ import annotations

import importlib.util
import json
import socket

import pytest
from aioquic.quic.events import ConnectionTerminated

from fastload import native
from fastload.config.plan import build_plan
from fastload.h3.session import handshake_error, termination_class
from support import peers
from support.run import check_document, fastload, run_json

H3 = ("--protocol", "h3")
# Every test runs on each QUIC library fastload offers (--h3-backend) that is installed.
BACKENDS = ["aioquic"] + (["qh3"] if importlib.util.find_spec("qh3") else [])


@pytest.fixture(autouse=True, scope="module", params=BACKENDS)
def h3_backend(request):
    global H3
    H3 = ("--protocol", "h3", "--h3-backend", request.param)
    yield request.param
    H3 = ("--protocol", "h3")


def run_h3(url: str, *args: str) -> dict:
    return run_json(url, *H3, *args)


def test_exact_count_matches_the_server(h3_server):
    before = h3_server.count_requests()
    doc = run_h3(h3_server.url, "--insecure", "-n", "1000", "-c", "2", "-m", "4", "-w", "1")
    check_document(doc, 1000)
    assert doc["target"]["protocol"] == "h3"
    assert doc["config"]["protocol"] == "h3" and doc["config"]["streams"] == 4
    assert doc["status_codes"] == {"200": 1000}
    assert doc["errors"]["total"] == 0
    assert h3_server.count_requests() - before == 1000
    assert doc["bytes_in"] > 0 and doc["bytes_out"] > 0


def test_warmup_requests_are_not_counted_in_the_quota(h3_server):
    before = h3_server.count_requests()
    doc = run_h3(h3_server.url, "--insecure", "--warmup", "300ms", "-n", "500", "-c", "2", "-w", "1")
    check_document(doc, 500)
    assert h3_server.count_requests() - before > 500  # the warm-up's requests were served too


def test_two_workers_merge_into_the_same_totals(h3_server):
    before = h3_server.count_requests()
    doc = run_h3(h3_server.url, "--insecure", "-n", "1001", "-c", "4", "-w", "2")
    check_document(doc, 1001)
    assert doc["config"]["streams"] == 10  # the h3 default, like h2
    assert sorted(w["requests"] for w in doc["workers"]) == [500, 501]
    assert h3_server.count_requests() - before == 1001


def test_post_body_is_sent(h3_server):
    before = h3_server.count_requests()
    doc = run_h3(h3_server.url, "--insecure", "-X", "POST", "--body", "x" * 3000, "-n", "50",
                 "-c", "1", "-w", "1")
    check_document(doc, 50)
    assert doc["bytes_out"] > 50 * 3000
    assert h3_server.count_requests() - before == 50


def test_ca_file_verifies_the_certificate(h3_server):
    doc = run_h3(h3_server.url, "--ca", str(h3_server.cert_path), "-n", "100", "-c", "1", "-w", "1")
    check_document(doc, 100)


def test_self_signed_certificate_is_rejected_without_insecure(h3_server):
    before = h3_server.count_requests()
    p = fastload("run", h3_server.url, *H3, "-n", "10", "-c", "1")
    assert p.returncode == 3, p.stderr
    assert "certificate" in p.stderr.lower() and "--insecure" in p.stderr
    assert "Traceback" not in p.stderr
    assert h3_server.count_requests() == before


def test_nothing_listening_exits_3():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = fastload("run", f"https://127.0.0.1:{port}/", *H3, "--insecure", "-n", "10",
                 timeout=60)
    assert p.returncode == 3, p.stderr
    assert "cannot connect" in p.stderr
    assert "Traceback" not in p.stderr


def test_open_model_reaches_the_target_rate(h3_server):
    doc = run_h3(h3_server.url, "--insecure", "-R", "400", "-d", "2s", "-c", "4", "-w", "1")
    assert doc["rps"] == pytest.approx(400, rel=0.1)
    assert doc["errors"]["total"] == 0
    assert doc["config"]["rate"] == 400


def test_latency_matches_a_known_server_delay():
    delay_us = 20_000
    with peers.h3_server(delay="20ms") as srv:
        # Few requests at a time: the aioquic server handles a burst one request after the
        # other (~0.1-0.3 ms each here) and its timers have 1 ms granularity; both add to p50.
        doc = run_h3(srv.url, "--insecure", "-n", "300", "-c", "2", "-m", "1", "-w", "1")
        check_document(doc, 300)
        assert srv.count_requests() == 300
        held = srv.stats()["held_us"]
    lat = doc["latency_us"]
    assert held["count"] == 300 and held["min"] >= delay_us
    # As over h1: bounded against what the server held each request for, which its timers
    # stretch past 20 ms on a loaded machine; the rest is QUIC at both ends and the generator.
    assert lat["min"] >= held["min"]
    assert held["p50"] <= lat["p50"] < held["p50"] + 2000


def test_sse_over_h3_has_the_streaming_metrics():
    # 5 events 20 ms apart, the first 20 ms after the headers.
    with peers.h3_server(sse="5,20") as srv:
        doc = run_h3(srv.url, "--insecure", "-n", "30", "-c", "1", "-m", "2", "-w", "1")
        check_document(doc, 30)
    assert doc["events"] == {"streams": 30, "total": 150, "mean": 5.0, "p50": 5, "max": 5}
    # The server times its events from when it sent the headers, so the first event comes
    # 20 ms after the first byte (aioquic at both ends adds its processing to both).
    ttfb, ttfe = doc["ttfb_us"], doc["ttfe_us"]
    assert ttfe["min"] >= 20_000 and abs(ttfe["p50"] - ttfb["p50"] - 20_000) <= 2_000
    assert abs(doc["event_gap_us"]["p50"] - 20_000) <= 2_000


def test_streams_beyond_the_servers_max_streams_wait_unstarted():
    # aioquic's server allows 128 concurrent request streams. Asking for 200, the other 72
    # must not start their clocks while aioquic would hold them unsent: every request then
    # takes the 200 ms delay plus processing, not a second delay spent queued (p90 ~400 ms).
    with peers.h3_server(delay="200ms") as srv:
        doc = run_h3(srv.url, "--insecure", "-n", "400", "-c", "1", "-m", "200", "-w", "1")
        check_document(doc, 400)
        assert srv.count_requests() == 400
    lat = doc["latency_us"]
    assert lat["min"] >= 200_000
    assert lat["p90"] < 300_000


def test_timeouts_are_counted_and_the_run_ends():
    with peers.h3_server(delay="3s") as srv:
        doc = run_h3(srv.url, "--insecure", "-d", "1s", "--timeout", "200ms", "-c", "1", "-m", "2",
                     "-w", "1")
    assert doc["requests"] == 0
    # 2 streams, each timed out within 200 ms plus the sweep period, then replaced.
    assert doc["errors"]["timeout"] >= 4
    assert doc["errors"]["total"] == doc["errors"]["timeout"]


def test_stream_resets_are_reset_errors_and_do_not_use_the_quota():
    with peers.h3_server(reset_every=7) as srv:
        doc = run_h3(srv.url, "--insecure", "-n", "300", "-c", "2", "-m", "4", "-w", "1")
        stats = srv.stats()
    check_document(doc, 300)
    assert doc["errors"]["reset"] == stats["resets"] > 0
    assert doc["errors"]["total"] == doc["errors"]["reset"]
    assert stats["responses"] == 300


def test_connection_closed_mid_run_fails_in_flight_requests_as_resets():
    with peers.h3_server(close_after=50) as srv:
        doc = run_h3(srv.url, "--insecure", "-n", "400", "-c", "2", "-m", "4", "-w", "1")
        stats = srv.stats()
    check_document(doc, 400)
    assert stats["responses"] == 400  # every response sent before a close was received
    assert stats["closes"] >= 7  # at most 50 per connection
    # What was in flight at each close (at most -m 4 streams) failed as a reset.
    assert 0 < doc["errors"]["reset"] <= 4 * stats["closes"]
    assert doc["errors"]["total"] == doc["errors"]["reset"]


def test_goaway_drains_the_connection_and_the_run_goes_on_on_new_ones():
    with peers.h3_server(goaway_after=50) as srv:
        doc = run_h3(srv.url, "--insecure", "-n", "400", "-c", "2", "-m", "4", "-w", "1",
                     "--timeout", "5s")
        stats = srv.stats()
    check_document(doc, 400)
    assert stats["responses"] == 400 and stats["goaways"] >= 7
    # No new request after a GOAWAY; those already sent on streams from its id on were not
    # processed and fail as resets (as refused HTTP/2 streams do), nothing waits for --timeout.
    assert doc["errors"]["total"] == doc["errors"]["reset"] <= 4 * stats["goaways"]
    assert stats["connections"] >= stats["goaways"]


def test_server_gone_mid_run_counts_resets_then_connect_errors():
    import subprocess
    import sys
    import time

    srv = peers.h3_server()
    try:
        run = subprocess.Popen([sys.executable, "-m", "fastload", "run", srv.url, *H3, "--insecure",
                                "-d", "2s", "-c", "2", "-m", "4", "-w", "1", "--json", "-",
                                "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
        deadline = time.monotonic() + 20
        while srv.stats()["responses"] < 100 and time.monotonic() < deadline:
            time.sleep(0.02)  # kill it once the run is under way
    finally:
        srv.stop()
    out, err = run.communicate(timeout=60)
    assert run.returncode == 0, err
    doc = json.loads(out)
    # The streams in flight when the server vanished (ICMP port unreachable): reset; then the
    # reconnects fail: connect. Nothing is left hanging until --timeout.
    assert 0 < doc["errors"]["reset"] <= 8
    assert doc["errors"]["connect"] > 0
    assert doc["errors"]["timeout"] == doc["errors"]["protocol"] == 0
    assert doc["duration_s"] == pytest.approx(2.0, abs=0.1)


def test_response_without_status_is_a_protocol_error():
    with peers.h3_server(no_status_every=20) as srv:
        doc = run_h3(srv.url, "--insecure", "-n", "200", "-c", "1", "-m", "1", "-w", "1")
        stats = srv.stats()
    check_document(doc, 200)
    assert doc["errors"]["protocol"] == stats["malformed"] > 0
    assert doc["errors"]["reset"] == 0


def test_body_shorter_than_content_length_is_a_protocol_error_head_is_not(h3_server):
    with peers.h3_server(bad_length_every=10) as srv:
        doc = run_h3(srv.url, "--insecure", "-n", "100", "-c", "1", "-m", "2", "-w", "1")
        stats = srv.stats()
    check_document(doc, 100)
    assert doc["errors"]["protocol"] == stats["malformed"] > 0
    assert doc["errors"]["total"] == doc["errors"]["protocol"]
    # HEAD: Content-Length 12, no body, as RFC 9110 says (aioquic alone rejects it).
    doc = run_h3(h3_server.url, "--insecure", "-X", "HEAD", "-n", "100", "-c", "1", "-w", "1")
    check_document(doc, 100)
    assert doc["errors"]["total"] == 0


@pytest.mark.parametrize(
    "args,needle",
    [(["http://127.0.0.1/"], "needs an https:// URL"),
     (["https://127.0.0.1/", "--h2c"], "--h2c conflicts with --protocol h3"),
     (["https://127.0.0.1/", "--pipeline", "4"], "use --streams for HTTP/3"),
     (["https://127.0.0.1/", "--check-status", "200"], "not supported with --protocol h3")],
)
def test_bad_usage_exits_2_before_traffic(args, needle):
    p = fastload("run", *args, *H3)
    assert p.returncode == 2, p.stderr
    assert needle in p.stderr
    assert p.stderr.count("\n") == 1 and "Traceback" not in p.stderr


def test_plan_defaults_and_config():
    plan = build_plan("https://example.com/x", protocol="h3")
    assert plan.protocol == "h3" and plan.protocol_forced and plan.streams == 10
    assert plan.config()["protocol"] == "h3"
    assert build_plan("https://example.com/", protocol="h3", streams=3).streams == 3


@pytest.mark.parametrize(
    "code,frame_type,cls",
    [(0x100, None, native.ERROR_RESET),        # H3_NO_ERROR: the server closed
     (0x10C, None, native.ERROR_RESET),        # H3_REQUEST_CANCELLED
     (0x10E, None, native.ERROR_PROTOCOL),     # H3_MESSAGE_ERROR
     (0x105, None, native.ERROR_PROTOCOL),     # H3_FRAME_UNEXPECTED
     (0x200, None, native.ERROR_PROTOCOL),     # QPACK_DECOMPRESSION_FAILED
     (0x0, 0x1C, native.ERROR_RESET),          # transport NO_ERROR
     (0x1, 0x0, native.ERROR_RESET),           # idle timeout (aioquic: INTERNAL_ERROR)
     (0xA, 0x8, native.ERROR_PROTOCOL)],       # PROTOCOL_VIOLATION
)
def test_termination_classes(code, frame_type, cls):
    ev = ConnectionTerminated(error_code=code, frame_type=frame_type, reason_phrase="")
    assert termination_class(ev) == cls


def test_handshake_error_messages():
    bad_cert = ConnectionTerminated(error_code=0x100 + 42, frame_type=0x6,
                                    reason_phrase="unable to get local issuer certificate")
    msg = handshake_error(bad_cert, "127.0.0.1", 4433)
    assert msg.startswith("TLS certificate verification failed for 127.0.0.1")
    no_alpn = ConnectionTerminated(error_code=0x100 + 120, frame_type=0x6, reason_phrase="")
    assert "did not negotiate h3" in handshake_error(no_alpn, "h", 1)


def test_json_document_round_trips(h3_server, tmp_path):
    out = tmp_path / "r.json"
    p = fastload("run", h3_server.url, *H3, "--insecure", "-n", "50", "-c", "1", "-w", "1",
                 "--json", str(out))
    assert p.returncode == 0, p.stderr
    assert "(h3)" in p.stdout and "x 10 streams" in p.stdout
    assert json.loads(out.read_text())["target"]["protocol"] == "h3"


def test_the_backend_is_in_the_result_and_only_for_h3(h3_server, h3_backend):
    doc = run_h3(h3_server.url, "--insecure", "-n", "20", "-c", "1", "-w", "1")
    assert doc["target"]["h3_backend"] == h3_backend == doc["config"]["h3_backend"]
    p = fastload("run", "http://127.0.0.1:9/", "--h3-backend", h3_backend, "-n", "1")
    assert p.returncode == 2 and "--h3-backend applies to --protocol h3" in p.stderr

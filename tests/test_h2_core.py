"""H2ClientCore against h2 (python-hyper) as the reference server, plus raw-frame edge cases."""

import random
import struct
import warnings

import h2.config
import h2.connection
import h2.events
import h2.settings
import hpack
import pytest
from h2.settings import SettingCodes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastload.native.h2 import (
    F_CONTINUATION,
    F_DATA,
    F_GOAWAY,
    F_HEADERS,
    F_PING,
    F_PRIORITY,
    F_PUSH_PROMISE,
    F_RST_STREAM,
    F_SETTINGS,
    F_WINDOW_UPDATE,
    FL_ACK,
    FL_END_HEADERS,
    FL_END_STREAM,
    FL_PADDED,
    FL_PRIORITY,
)
from fastload.native.testing import H2TestCore, h2_bench
from support.h2frames import REQUEST_HEADERS, SETTINGS_EMPTY, frame, request_block

# On a failure hypothesis imports libcst to print a patch; libcst's import warns, and with the
# project's filterwarnings=error that hides the failing example behind an INTERNALERROR.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import hypothesis.extra._patching  # noqa: F401
    except ImportError:
        pass

EV_DONE, EV_RESET, EV_REFUSED, EV_TIMEOUT = 1, 2, 3, 4
PROTOCOL_ERROR, FLOW_CONTROL_ERROR, FRAME_SIZE_ERROR, COMPRESSION_ERROR = 1, 3, 6, 9
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"



def split_random(data, rng, max_cut=64):
    out, i = [], 0
    while i < len(data):
        n = rng.randint(1, max_cut) if rng.random() < 0.7 else rng.randint(1, len(data))
        out.append(data[i : i + n])
        i += n
    return out



class H2Server:
    """An h2 server connection driven in memory; fails the test on any protocol error from us."""

    def __init__(self, **local):
        self.conn = h2.connection.H2Connection(
            config=h2.config.H2Configuration(client_side=False, header_encoding=None)
        )
        if local:
            self.conn.local_settings = h2.settings.Settings(
                client=False, initial_values={getattr(SettingCodes, k): v for k, v in local.items()}
            )
        self.conn.initiate_connection()
        self.requests = {}
        self.bodies = {}
        self.ended = set()
        self.pings = []
        self.settings_acked = False

    def feed(self, data):
        for ev in self.conn.receive_data(data):
            assert not isinstance(ev, h2.events.ConnectionTerminated), ev
            assert not isinstance(ev, h2.events.StreamReset), ev
            if isinstance(ev, h2.events.RequestReceived):
                self.requests[ev.stream_id] = dict(ev.headers)
                self.bodies[ev.stream_id] = b""
                if ev.stream_ended is not None:
                    self.ended.add(ev.stream_id)
            elif isinstance(ev, h2.events.DataReceived):
                self.bodies[ev.stream_id] += ev.data
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                self.ended.add(ev.stream_id)
            elif isinstance(ev, h2.events.SettingsAcknowledged):
                self.settings_acked = True
            elif isinstance(ev, h2.events.PingAckReceived):
                self.pings.append(ev.ping_data)

    def out(self):
        return self.conn.data_to_send()


def handshake(core, server):
    server.feed(core.start_py())
    events, out = core.receive_py(server.out())
    assert events == [] and core.error_code == 0
    server.feed(out)
    return out


def test_start_preface_settings_window():
    core = H2TestCore(request_block())
    out = core.start_py()
    assert out.startswith(PREFACE)
    server = H2Server()
    server.feed(out)
    # ENABLE_PUSH=0 and the large stream window were applied by the peer.
    assert server.conn.remote_settings.enable_push == 0
    assert server.conn.remote_settings.initial_window_size == 2**31 - 1
    assert server.conn.outbound_flow_control_window == 2**31 - 1
    events, ack = core.receive_py(server.out())
    assert events == []
    assert frame(F_SETTINGS, FL_ACK, 0) in ack  # SETTINGS ACK for the server's SETTINGS
    server.feed(ack)
    assert server.settings_acked


response_plan = st.fixed_dictionaries(
    {
        "status": st.integers(200, 599),
        "extra": st.lists(
            st.tuples(st.sampled_from([b"x-a", b"x-b", b"server", b"etag", b"x-long"]),
                      st.binary(min_size=0, max_size=40).map(lambda b: b.hex().encode())),
            max_size=4,
        ),
        "body": st.integers(0, 40000),
        "chunks": st.integers(1, 5),
        "pad": st.one_of(st.none(), st.integers(0, 255)),
        "trailers": st.booleans(),
        "informational": st.booleans(),
        "content_length": st.booleans(),
    }
)


def respond(server, sid, plan):
    conn = server.conn
    if plan["informational"]:
        conn.send_headers(sid, [(b":status", b"100")])
    headers = [(b":status", str(plan["status"]).encode()), *plan["extra"]]
    if plan["content_length"]:
        headers.append((b"content-length", str(plan["body"]).encode()))
    body = b"x" * plan["body"]
    end_on_headers = not body and not plan["trailers"]
    conn.send_headers(sid, headers, end_stream=end_on_headers)
    if body:
        n = plan["chunks"]
        step = max(1, len(body) // n)
        pieces = [body[i : i + step] for i in range(0, len(body), step)]
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1 and not plan["trailers"]
            pad = plan["pad"]
            # h2 keeps frames within max frame size including padding.
            while piece:
                room = 16384 - (0 if pad is None else pad + 1)
                part, piece = piece[:room], piece[room:]
                conn.send_data(sid, part, end_stream=last and not piece, pad_length=pad)
    if plan["trailers"]:
        conn.send_headers(sid, [(b"x-trailer", b"1")], end_stream=True)


def drive(core, server, rng, plans, body=b"", max_streams=100):
    """Runs all plans through the pair; returns {sid: event}; checks accounting on the way."""
    handshake(core, server)
    results = {}
    submitted = {}
    next_plan = 0
    n_submitted = 0
    now = 1000
    pending_out = b""
    while next_plan < len(plans) or core.in_flight:
        batch = bytearray(pending_out)
        pending_out = b""
        while next_plan < len(plans) and core.can_submit_py():
            now += 1
            out = core.submit_py(now)
            assert out is not None
            batch += out
            next_plan += 1
            n_submitted += 1
        assert core.in_flight <= max_streams
        server.feed(bytes(batch))
        for sid in sorted(server.requests):
            # A body larger than the windows arrives in parts as h2's WINDOW_UPDATEs let it.
            if sid in submitted or sid not in server.ended:
                continue
            assert server.bodies[sid] == body
            submitted[sid] = plans[len(submitted)]
            respond(server, sid, submitted[sid])
        data = server.out()
        assert data, "no progress"
        for piece in split_random(data, rng):
            events, out = core.receive_py(piece)
            assert core.error_code == 0, core.error_msg()
            # Fed back with the next batch: h2 raises if our DATA overran a window.
            pending_out += out
            for kind, status, sent_ns, nbytes in events:
                assert kind == EV_DONE
                assert sent_ns not in results
                results[sent_ns] = (status, nbytes)
            assert core.in_flight == n_submitted - len(results)
    return submitted, results


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plans=st.lists(response_plan, min_size=1, max_size=40), seed=st.integers(0, 2**32),
       max_streams=st.sampled_from([1, 3, 32]),
       body_size=st.sampled_from([0, 5, 20480, 100400]),
       window=st.sampled_from([65535, 1000, 16385]))
def test_random_responses_against_h2(plans, seed, max_streams, body_size, window):
    rng = random.Random(seed)
    body = bytes(range(251)) * (body_size // 251) + b"hello"[: body_size % 251]
    core = H2TestCore(request_block(), body, max_streams)
    server = H2Server(INITIAL_WINDOW_SIZE=window)
    submitted, results = drive(core, server, rng, plans, body, max_streams)
    assert core.in_flight == 0
    assert len(results) == len(plans)
    # sent_ns increase with submission order and so do stream ids: pair them up.
    for (sid, plan), sent in zip(sorted(submitted.items()), sorted(results), strict=True):
        assert results[sent] == (plan["status"], plan["body"]), sid
    assert not core.exhausted


def test_request_body_and_small_server_windows():
    body = bytes(range(256)) * 120  # 30720 bytes
    core = H2TestCore(request_block(), body, 32)
    server = H2Server(INITIAL_WINDOW_SIZE=40000)
    handshake(core, server)
    # The connection window (65535) takes two whole bodies and the start of a third.
    out = core.submit_py(1) + core.submit_py(2) + core.submit_py(3)
    assert core.conn_send_window == 0
    server.feed(out)
    assert server.bodies == {1: body, 3: body, 5: body[: 65535 - 2 * len(body)]}
    assert server.ended == {1, 3}
    # h2 acknowledged the data: its WINDOW_UPDATEs reopen the window, the rest follows.
    events, out = core.receive_py(server.out())
    assert events == []
    server.feed(out)
    assert server.bodies[5] == body and server.ended == {1, 3, 5}


def test_request_body_flow_control_round_trip():
    body = bytes(range(256)) * 120
    core = H2TestCore(request_block(), body, 32)
    server = H2Server(INITIAL_WINDOW_SIZE=40000)
    plans = [dict(status=200, extra=[], body=5, chunks=1, pad=None, trailers=False,
                  informational=False, content_length=True)] * 9
    submitted, results = drive(core, server, random.Random(1), plans, body=body)
    assert len(results) == 9
    assert all(r == (200, 5) for r in results.values())


def test_body_larger_than_stream_window_goes_out_as_the_window_opens():
    body = bytes(range(200)) * 10
    core = H2TestCore(request_block(), body, 8)
    server = H2Server(INITIAL_WINDOW_SIZE=1000)
    handshake(core, server)
    out = core.submit_py(1)
    assert out.endswith(frame(F_DATA, 0, 1, body[:1000]))
    server.feed(out)
    assert server.bodies[1] == body[:1000] and 1 not in server.ended
    events, out = core.receive_py(server.out())
    assert out == frame(F_DATA, FL_END_STREAM, 1, body[1000:])
    server.feed(out)
    assert server.bodies[1] == body and 1 in server.ended


def test_zero_window_holds_the_body_until_updates_arrive():
    body = b"0123456789"
    core = H2TestCore(request_block(), body, 8)
    core.start_py()
    core.receive_py(settings_frame(INITIAL_WINDOW_SIZE=0))
    out = core.submit_py(100) + core.submit_py(101)
    # HEADERS only, without END_STREAM: the body waits for the window.
    assert out == frame(F_HEADERS, FL_END_HEADERS, 1, request_block()) + frame(F_HEADERS, FL_END_HEADERS, 3, request_block())
    _, out = core.receive_py(frame(F_WINDOW_UPDATE, 0, 1, struct.pack(">I", 4)))
    assert out == frame(F_DATA, 0, 1, b"0123")
    # The connection window (65535) is not what holds stream 3; its own window is.
    _, out = core.receive_py(frame(F_WINDOW_UPDATE, 0, 0, struct.pack(">I", 100)))
    assert out == b""
    # A larger initial window releases both streams, after the SETTINGS ACK.
    _, out = core.receive_py(settings_frame(INITIAL_WINDOW_SIZE=6))
    assert out == frame(F_SETTINGS, FL_ACK, 0) + frame(F_DATA, FL_END_STREAM, 1, b"456789") + frame(F_DATA, 0, 3, b"012345")
    # A stream that times out while its body waits stops waiting for window.
    events, out = core.expire_py(102)
    assert sorted(events) == [(EV_TIMEOUT, 0, 100, 0), (EV_TIMEOUT, 0, 101, 0)]
    _, out = core.receive_py(frame(F_WINDOW_UPDATE, 0, 3, struct.pack(">I", 100)))
    assert out == b"" and core.error_code == 0


def test_response_before_the_whole_body_closes_our_half():
    core = H2TestCore(request_block(), b"b" * 100, 8)
    core.start_py()
    core.receive_py(settings_frame(INITIAL_WINDOW_SIZE=10))
    out = core.submit_py(7)
    assert out.endswith(frame(F_DATA, 0, 1, b"b" * 10))
    enc = hpack.Encoder()
    events, out = core.receive_py(frame(F_HEADERS, FL_END_HEADERS | FL_END_STREAM, 1, enc.encode([(":status", "413")])))
    assert events == [(EV_DONE, 413, 7, 0)]
    assert out == frame(F_RST_STREAM, 0, 1, struct.pack(">I", 0))  # RST_STREAM(NO_ERROR)
    _, out = core.receive_py(frame(F_WINDOW_UPDATE, 0, 1, struct.pack(">I", 1000)))
    assert out == b""


def test_body_split_by_peer_max_frame_size():
    body = b"z" * 40000
    core = H2TestCore(request_block(), body, 4)
    server = H2Server(INITIAL_WINDOW_SIZE=100000)
    handshake(core, server)
    out = core.submit_py(1)
    server.feed(out)
    assert server.bodies[1] == body and 1 in server.ended
    assert len(out) == len(request_block()) + 9 + len(body) + 9 * 3


def test_max_concurrent_streams_one():
    core = H2TestCore(request_block(), b"", 32)
    server = H2Server(MAX_CONCURRENT_STREAMS=1)
    handshake(core, server)
    assert core.submit_py(1) is not None
    assert core.in_flight == 1
    assert not core.can_submit_py()
    assert core.submit_py(2) is None
    plans = [dict(status=204, extra=[], body=0, chunks=1, pad=None, trailers=False,
                  informational=False, content_length=False)] * 5
    core2 = H2TestCore(request_block(), b"", 32)
    submitted, results = drive(core2, H2Server(MAX_CONCURRENT_STREAMS=1), random.Random(2), plans)
    assert sorted(results.values()) == [(204, 0)] * 5


def test_goaway_refuses_streams_above_last_stream_id():
    core = H2TestCore(request_block(), b"", 32)
    server = H2Server()
    handshake(core, server)
    out = b"".join(core.submit_py(t) for t in range(10, 20))
    server.feed(out)
    sids = sorted(server.requests)
    assert sids == list(range(1, 20, 2))
    server.conn.send_headers(1, [(b":status", b"200")], end_stream=True)
    server.conn.close_connection(last_stream_id=5)
    events, _ = core.receive_py(server.out())
    assert core.goaway_received and core.last_stream_id == 5
    assert events[0] == (EV_DONE, 200, 10, 0)
    refused = sorted(e[2] for e in events if e[0] == EV_REFUSED)
    assert refused == list(range(13, 20))  # streams 7..19
    assert core.in_flight == 2 and not core.exhausted
    assert not core.can_submit_py()
    # A GOAWAY arriving before responses: streams at or below last_stream_id still complete.
    enc = hpack.Encoder()
    core2 = raw_core(n_submit=3)  # streams 1, 3, 5
    data = frame(F_GOAWAY, 0, 0, struct.pack(">II", 3, 0))
    data += frame(F_HEADERS, FL_END_HEADERS | FL_END_STREAM, 1, enc.encode([(":status", "200")]))
    data += frame(F_HEADERS, FL_END_HEADERS | FL_END_STREAM, 3, enc.encode([(":status", "404")]))
    data += frame(F_HEADERS, FL_END_HEADERS | FL_END_STREAM, 5, enc.encode([(":status", "200")]))  # refused already: ignored
    events, _ = core2.receive_py(data)
    assert core2.error_code == 0, core2.error_msg()
    assert events == [(EV_REFUSED, 0, 102, 0), (EV_DONE, 200, 100, 0), (EV_DONE, 404, 101, 0)]
    assert core2.in_flight == 0 and core2.exhausted


def test_rst_stream_refused_and_reset():
    core = H2TestCore(request_block(), b"", 32)
    server = H2Server()
    handshake(core, server)
    server.feed(core.submit_py(1) + core.submit_py(2) + core.submit_py(3))
    server.conn.reset_stream(1, error_code=7)
    server.conn.reset_stream(3, error_code=2)
    server.conn.send_headers(5, [(b":status", b"500")])
    server.conn.send_data(5, b"abc", end_stream=True)
    events, out = core.receive_py(server.out())
    assert events == [(EV_REFUSED, 0, 1, 0), (EV_RESET, 0, 2, 0), (EV_DONE, 500, 3, 3)]
    assert core.in_flight == 0
    server.feed(out)


def test_ping_ack_payload():
    core = H2TestCore(request_block())
    server = H2Server()
    handshake(core, server)
    server.conn.ping(b"12345678")
    events, out = core.receive_py(server.out())
    assert events == []
    assert out == frame(F_PING, FL_ACK, 0, b"12345678")
    server.feed(out)
    assert server.pings == [b"12345678"]
    # A PING ACK from the peer is not answered.
    events, out = core.receive_py(frame(F_PING, FL_ACK, 0, b"abcdefgh"))
    assert out == b"" and core.error_code == 0


def test_continuation_big_header_blocks_both_ways():
    big_req = [*REQUEST_HEADERS, *[(f"x-req-{i}".encode(), b"v" * 200) for i in range(150)]]
    block = request_block(big_req)
    assert len(block) > 16384
    core = H2TestCore(block, b"", 8)
    server = H2Server()
    handshake(core, server)
    out = core.submit_py(7)
    assert out[3] == 1 and out[4] == 1  # HEADERS with END_STREAM but without END_HEADERS
    server.feed(out)
    assert server.requests[1][b"x-req-149"] == b"v" * 200
    extra = [(f"x-resp-{i}".encode(), str(i).encode() * 30) for i in range(300)]
    server.conn.send_headers(1, [(b":status", b"201"), *extra])
    server.conn.send_data(1, b"q" * 100, end_stream=True)
    data = server.out()
    assert data[3] == 1 and data[4] & 4 == 0  # h2 needed CONTINUATION frames
    events = []
    for piece in split_random(data, random.Random(5), 700):
        ev, _ = core.receive_py(piece)
        events += ev
    assert events == [(EV_DONE, 201, 7, 100)]


def test_large_body_needs_no_flow_control_stall():
    core = H2TestCore(request_block(), b"", 4)
    server = H2Server()
    handshake(core, server)
    server.feed(core.submit_py(1))
    body = b"B" * 3_000_000
    server.conn.send_headers(1, [(b":status", b"200")])
    # h2 would raise FlowControlError if our advertised windows did not cover the body.
    for i in range(0, len(body), 16384):
        server.conn.send_data(1, body[i : i + 16384], end_stream=i + 16384 >= len(body))
    events, out = core.receive_py(server.out())
    assert events == [(EV_DONE, 200, 1, len(body))]
    server.feed(out)


def test_receive_windows_replenished_in_batches():
    core = raw_core(n_submit=2)  # stream 1 sent at 100, stream 3 at 101
    enc = hpack.Encoder()
    core.receive_py(frame(F_HEADERS, FL_END_HEADERS, 3, enc.encode([(":status", "200")])))
    assert core.expire_py(101)[0] == [(EV_TIMEOUT, 0, 100, 0)]
    on_closed, on_open = frame(F_DATA, 0, 1, b"d" * 16384), frame(F_DATA, 0, 3, b"d" * 16384)
    updates = []
    # 2**16 frames of 16 KiB = 2**30 bytes just exceeds half of the 2**31-1 window. Half of
    # them go to the cancelled stream 1: they still count against the connection window.
    for i in range(2**16):
        _, out = core.receive_py(on_open if i % 2 else on_closed)
        if out:
            updates.append((i, out))
    assert updates == [(2**16 - 1, frame(F_WINDOW_UPDATE, 0, 0, struct.pack(">I", 2**30)))]
    for i in range(2**15):
        _, out = core.receive_py(on_open)
        if out:
            updates.append((i, out))
    assert updates[1:] == [(2**15 - 1, frame(F_WINDOW_UPDATE, 0, 3, struct.pack(">I", 2**30)))]
    events, _ = core.receive_py(frame(F_DATA, FL_END_STREAM, 3, b"end"))
    assert events == [(EV_DONE, 200, 101, 2**30 + 3)]
    assert core.error_code == 0


def raw_core(max_streams=8, n_submit=2):
    core = H2TestCore(request_block(), b"", max_streams)
    core.start_py()
    events, out = core.receive_py(SETTINGS_EMPTY)
    assert out == frame(F_SETTINGS, FL_ACK, 0)
    for t in range(n_submit):
        assert core.submit_py(100 + t) is not None
    return core


def test_padding_priority_informational_trailers_raw():
    core = raw_core()
    enc = hpack.Encoder()
    hb = enc.encode([(":status", "103"), ("link", "</a>")])
    # Padded + PRIORITY informational HEADERS, then the final response, then trailers.
    data = frame(F_HEADERS, FL_END_HEADERS | FL_PADDED | FL_PRIORITY, 1, bytes([3]) + b"\x00\x00\x00\x03\x10" + hb + b"\0\0\0")
    data += frame(F_HEADERS, FL_END_HEADERS, 1, enc.encode([(":status", "200"), ("server", "raw")]))
    data += frame(F_DATA, FL_PADDED, 1, bytes([10]) + b"hello" + b"\0" * 10)
    data += frame(F_DATA, 0, 1, b"world!")
    data += frame(F_HEADERS, FL_END_STREAM | FL_PADDED, 1, bytes([2]) + b"\0\0")  # trailers: empty fragment, padded
    data += frame(F_CONTINUATION, FL_END_HEADERS, 1, enc.encode([("x-trailer", "yes")]))
    data += frame(F_PRIORITY, 0, 3, b"\x00\x00\x00\x01\x10")  # PRIORITY: ignored
    data += frame(0xEE, 0xFF, 3, b"unknown frame types are ignored")
    data += frame(F_HEADERS, FL_END_HEADERS | FL_END_STREAM, 3, enc.encode([(":status", "302")]))
    events, out = core.receive_py(data)
    assert core.error_code == 0, core.error_msg()
    assert events == [(EV_DONE, 200, 100, 11), (EV_DONE, 302, 101, 0)]
    assert out == b""


def test_byte_at_a_time():
    core = raw_core()
    enc = hpack.Encoder()
    data = frame(F_HEADERS, FL_END_HEADERS, 1, enc.encode([(":status", "200")])) + frame(F_DATA, FL_END_STREAM, 1, b"x" * 300)
    data += frame(F_PING, 0, 0, b"pingpong") + frame(F_HEADERS, FL_END_HEADERS | FL_END_STREAM, 3, enc.encode([(":status", "200")]))
    events, out = [], b""
    for i in range(len(data)):
        ev, o = core.receive_py(data[i : i + 1])
        events += ev
        out += o
    assert events == [(EV_DONE, 200, 100, 300), (EV_DONE, 200, 101, 0)]
    assert out == frame(F_PING, FL_ACK, 0, b"pingpong")


def test_expire_cancels_and_late_frames_are_ignored():
    core = raw_core(n_submit=3)
    events, out = core.expire_py(102)
    assert sorted(events) == [(EV_TIMEOUT, 0, 100, 0), (EV_TIMEOUT, 0, 101, 0)]
    assert out == frame(F_RST_STREAM, 0, 1, struct.pack(">I", 8)) + frame(F_RST_STREAM, 0, 3, struct.pack(">I", 8))
    assert core.in_flight == 1
    enc = hpack.Encoder()
    # Late response on a cancelled stream: its block still feeds the HPACK dynamic table.
    late = frame(F_HEADERS, FL_END_HEADERS, 1, enc.encode([(":status", "200"), ("x-indexed", "value")]))
    late += frame(F_DATA, FL_END_STREAM, 1, b"late")
    late += frame(F_HEADERS, FL_END_HEADERS | FL_END_STREAM, 5, enc.encode([(":status", "200"), ("x-indexed", "value")]))
    events, out = core.receive_py(late)
    assert core.error_code == 0, core.error_msg()
    assert events == [(EV_DONE, 200, 102, 0)]
    assert core.in_flight == 0


def test_stream_ids_increase_and_skip_busy_slots():
    core = H2TestCore(request_block(), b"", 2)  # 4 slots
    core.start_py()
    core.receive_py(SETTINGS_EMPTY)
    enc = hpack.Encoder()
    assert core.submit_py(0)[5:9] == struct.pack(">I", 1)  # stays open: slot 0 is busy
    sids = []
    for t in range(1, 12):
        out = core.submit_py(t)
        sid = struct.unpack(">I", out[5:9])[0]
        sids.append(sid)
        ev, _ = core.receive_py(frame(F_HEADERS, FL_END_HEADERS | FL_END_STREAM, sid, enc.encode([(":status", "200")])))
        assert ev == [(EV_DONE, 200, t, 0)]
    # Ids mapping onto slot 0 (9, 17, 25, ...) are skipped while stream 1 is open.
    assert sids == [3, 5, 7, 11, 13, 15, 19, 21, 23, 27, 29]
    assert core.in_flight == 1


ok_hdr = hpack.Encoder().encode([(":status", "200")])


@pytest.mark.parametrize(
    "data, code",
    [
        (frame(F_DATA, 0, 1, b"x" * 16385), FRAME_SIZE_ERROR),
        (frame(F_SETTINGS, 0, 0, b"\0\0\0\0\0"), FRAME_SIZE_ERROR),
        (frame(F_SETTINGS, FL_ACK, 0, b"\0\0\0\0\0\0"), FRAME_SIZE_ERROR),
        (frame(F_SETTINGS, 0, 1, b""), PROTOCOL_ERROR),
        (frame(F_SETTINGS, 0, 0, b"\0\x04\x80\0\0\0"), FLOW_CONTROL_ERROR),
        (frame(F_SETTINGS, 0, 0, b"\0\x05\0\0\x10\0"), PROTOCOL_ERROR),
        (frame(F_SETTINGS, 0, 0, b"\0\x02\0\0\0\x01"), PROTOCOL_ERROR),
        (frame(F_PING, 0, 0, b"1234567"), FRAME_SIZE_ERROR),
        (frame(F_PING, 0, 1, b"12345678"), PROTOCOL_ERROR),
        (frame(F_WINDOW_UPDATE, 0, 0, b"\0\0\1"), FRAME_SIZE_ERROR),
        (frame(F_WINDOW_UPDATE, 0, 0, b"\0\0\0\0"), PROTOCOL_ERROR),
        (frame(F_WINDOW_UPDATE, 0, 0, struct.pack(">I", 2**31 - 1)), FLOW_CONTROL_ERROR),
        (frame(F_RST_STREAM, 0, 1, b"\0\0\0"), FRAME_SIZE_ERROR),
        (frame(F_RST_STREAM, 0, 0, b"\0\0\0\0"), PROTOCOL_ERROR),
        (frame(F_RST_STREAM, 0, 99, b"\0\0\0\0"), PROTOCOL_ERROR),
        (frame(F_GOAWAY, 0, 0, b"\0\0\0\0\0\0\0"), FRAME_SIZE_ERROR),
        (frame(F_GOAWAY, 0, 1, b"\0" * 8), PROTOCOL_ERROR),
        (frame(F_PRIORITY, 0, 1, b"\0" * 4), FRAME_SIZE_ERROR),
        (frame(F_PRIORITY, 0, 0, b"\0" * 5), PROTOCOL_ERROR),
        (frame(F_CONTINUATION, FL_END_HEADERS, 1, ok_hdr), PROTOCOL_ERROR),
        (frame(F_HEADERS, 0, 1, ok_hdr) + frame(F_PING, 0, 0, b"12345678"), PROTOCOL_ERROR),
        (frame(F_HEADERS, 0, 1, ok_hdr) + frame(F_CONTINUATION, FL_END_HEADERS, 3, b""), PROTOCOL_ERROR),
        (frame(F_HEADERS, FL_END_HEADERS, 1, b"\xff\xff\xff\xff\xff"), COMPRESSION_ERROR),
        (frame(F_HEADERS, FL_END_HEADERS, 1, b"\x7f"), COMPRESSION_ERROR),
        (frame(F_HEADERS, 0, 1, b"\x40\x85") + frame(F_CONTINUATION, FL_END_HEADERS, 1, b"\xff"), COMPRESSION_ERROR),
        (frame(F_HEADERS, FL_END_HEADERS, 0, ok_hdr), PROTOCOL_ERROR),
        (frame(F_HEADERS, FL_END_HEADERS, 2, ok_hdr), PROTOCOL_ERROR),
        (frame(F_HEADERS, FL_END_HEADERS, 7, ok_hdr), PROTOCOL_ERROR),
        (frame(F_HEADERS, FL_END_HEADERS | FL_PADDED, 1, b"\x05" + ok_hdr), PROTOCOL_ERROR),
        (frame(F_DATA, 0, 0, b"x"), PROTOCOL_ERROR),
        (frame(F_DATA, 0, 5, b"x"), PROTOCOL_ERROR),
        (frame(F_DATA, FL_PADDED, 1, b"\x01"), PROTOCOL_ERROR),
        (frame(F_PUSH_PROMISE, FL_END_HEADERS, 1, b"\0\0\0\2" + ok_hdr), PROTOCOL_ERROR),
    ],
)
def test_invalid_frames_are_connection_errors(data, code):
    core = raw_core()
    events, out = core.receive_py(data)
    assert core.error_code == code, core.error_msg()
    assert core.error_msg()
    assert out.endswith(frame(F_GOAWAY, 0, 0, struct.pack(">II", 0, code)))
    assert core.receive_py(SETTINGS_EMPTY)[1] == b""  # dead: nothing more is processed
    assert not core.can_submit_py()


def test_preface_must_be_settings():
    core = H2TestCore(request_block())
    core.start_py()
    core.receive_py(frame(F_PING, 0, 0, b"12345678"))
    assert core.error_code == PROTOCOL_ERROR


def test_stream_errors_reset_only_the_stream():
    core = raw_core(n_submit=3)
    enc = hpack.Encoder()
    data = frame(F_DATA, FL_END_STREAM, 1, b"data before headers")
    data += frame(F_HEADERS, FL_END_HEADERS | FL_END_STREAM, 3, enc.encode([("server", "no-status")]))
    data += frame(F_HEADERS, FL_END_HEADERS, 5, enc.encode([(":status", "200")])) + frame(F_HEADERS, FL_END_HEADERS, 5, enc.encode([("x", "y")]))
    events, out = core.receive_py(data)
    assert core.error_code == 0, core.error_msg()
    assert events == [(EV_RESET, -1, 100, 0), (EV_RESET, -1, 101, 0), (EV_RESET, -1, 102, 0)]
    assert out == b"".join(frame(F_RST_STREAM, 0, s, struct.pack(">I", 1)) for s in (1, 3, 5))


def test_stream_ids_run_out():
    core = raw_core(n_submit=0)
    core.next_stream_id = 2**31 - 3
    assert core.submit_py(1)[5:9] == struct.pack(">I", 2**31 - 3)
    assert core.submit_py(2)[5:9] == struct.pack(">I", 2**31 - 1)
    assert not core.can_submit_py() and core.submit_py(3) is None
    enc = hpack.Encoder()
    core.receive_py(frame(F_HEADERS, FL_END_HEADERS | FL_END_STREAM, 2**31 - 3, enc.encode([(":status", "200")])))
    assert not core.exhausted
    events, _ = core.receive_py(frame(F_HEADERS, FL_END_HEADERS | FL_END_STREAM, 2**31 - 1, enc.encode([(":status", "200")])))
    assert events == [(EV_DONE, 200, 2, 0)]
    assert core.exhausted


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.integers(1, 50))
def test_fuzz_never_crashes(data, cut):
    core = raw_core()
    for i in range(0, len(data), cut):
        core.receive_py(data[i : i + cut])
    assert core.in_flight in (0, 1, 2)
    assert core.error_code >= 0


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10), st.integers(0, 255), st.integers(0, 7),
                          st.binary(max_size=40)), max_size=20))
def test_fuzz_structured_frames(frames):
    core = raw_core()
    data = b"".join(frame(t, f, s, p) for t, f, s, p in frames)
    events, _ = core.receive_py(data)
    assert 0 <= core.in_flight <= 2
    assert core.in_flight + len(events) == 2 or core.error_code


def _record_server_flight(n_streams, body_size=612):
    """Bytes of one realistic server flight (h2o-like headers) answering n_streams requests."""
    core = H2TestCore(request_block(), b"", n_streams)
    server = H2Server()
    handshake(core, server)
    server.feed(b"".join(core.submit_py(i) for i in range(n_streams)))
    headers = [
        (b":status", b"200"),
        (b"server", b"h2o/2.2.6"),
        (b"date", b"Sun, 22 Nov 2026 14:00:00 GMT"),
        (b"content-type", b"text/html"),
        (b"last-modified", b"Tue, 01 Sep 2026 10:00:00 GMT"),
        (b"etag", b'"5f4e1c00-264"'),
        (b"accept-ranges", b"bytes"),
        (b"content-length", str(body_size).encode()),
    ]
    for sid in sorted(server.requests):
        server.conn.send_headers(sid, headers)
        server.conn.send_data(sid, b"b" * body_size, end_stream=True)
    return server.out()


def _bench(n_streams=32, rounds=20000):
    """ns per completed response for submit(n) + receive(one flight) + clear, all in C."""
    flight = _record_server_flight(n_streams)
    return h2_bench(request_block(), flight, n_streams, rounds)


def test_bench_runs():
    assert _bench(rounds=50) > 0


def settings_frame(**values):
    payload = b"".join(struct.pack(">HI", getattr(SettingCodes, k), v) for k, v in values.items())
    return frame(F_SETTINGS, 0, 0, payload)


def test_initial_window_change_applies_to_open_streams():
    core = raw_core(n_submit=2)
    events, out = core.receive_py(frame(F_WINDOW_UPDATE, 0, 1, struct.pack(">I", 2**31 - 1 - 65535)))
    assert out == b"" and core.error_code == 0
    # Stream 1 is at 2**31-1 now: raising the initial window by one overflows it.
    events, out = core.receive_py(settings_frame(INITIAL_WINDOW_SIZE=65536))
    assert core.error_code == FLOW_CONTROL_ERROR


def test_stream_window_overflow_resets_only_that_stream():
    core = raw_core(n_submit=2)
    events, out = core.receive_py(frame(F_WINDOW_UPDATE, 0, 3, struct.pack(">I", 2**31 - 1)))
    assert events == [(EV_RESET, -1, 101, 0)]
    assert out == frame(F_RST_STREAM, 0, 3, struct.pack(">I", FLOW_CONTROL_ERROR))
    assert core.in_flight == 1 and core.error_code == 0


def test_peer_max_frame_size_rebuilds_the_template():
    big = [*REQUEST_HEADERS, *[(f"x-h-{i}".encode(), b"w" * 100) for i in range(250)]]
    block = request_block(big)
    assert 16384 < len(block) < 65536
    core = H2TestCore(block, b"p" * 70000, 4)
    core.start_py()
    events, out = core.receive_py(
        settings_frame(MAX_FRAME_SIZE=65536, INITIAL_WINDOW_SIZE=1 << 20)
        + frame(F_WINDOW_UPDATE, 0, 0, struct.pack(">I", 1 << 20))
    )
    assert core.peer_max_frame_size == 65536
    out = core.submit_py(1)
    # One HEADERS frame with END_HEADERS, then DATA frames of at most 65536 bytes.
    assert out[:5] == struct.pack(">I", len(block))[1:] + bytes([1, 4])
    rest = out[9 + len(block) :]
    assert rest[:5] == struct.pack(">I", 65536)[1:] + bytes([0, 0])
    assert rest[9 + 65536 : 9 + 65536 + 5] == struct.pack(">I", 70000 - 65536)[1:] + bytes([0, 1])
    assert len(rest) == 18 + 70000
    # h2 with the same settings reassembles the request.
    server = H2Server()
    # A SETTINGS change (not initial values) so that h2 also raises its own inbound limit on ACK.
    server.conn.update_settings(
        {SettingCodes.MAX_FRAME_SIZE: 65536, SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20}
    )
    core2 = H2TestCore(block, b"p" * 70000, 4)
    server.feed(core2.start_py())
    server.conn.increment_flow_control_window(1 << 20)
    events, out = core2.receive_py(server.out())
    server.feed(out)  # h2 applies a new inbound frame limit only from its next receive_data()
    server.feed(core2.submit_py(1))
    assert server.bodies[1] == b"p" * 70000 and server.requests[1][b"x-h-249"] == b"w" * 100


# ---- request blocks that use the server's dynamic table -------------------------------------

def _session_core(headers=REQUEST_HEADERS, max_streams=8):
    from fastload.workload.hpack import encode_block, encode_session_blocks

    first, steady, need = encode_session_blocks(headers)
    return H2TestCore(steady, b"", max_streams, first, need, encode_block(headers)), need


def test_indexed_blocks_decode_to_the_same_request_on_every_stream():
    core, need = _session_core()
    assert need > 0
    srv = H2Server()
    srv.feed(core.start_py())
    core.receive_py(srv.out())
    sizes = []
    for _ in range(5):
        out = core.submit_py(1)
        sizes.append(len(out))
        srv.feed(out)
    assert len(srv.requests) == 5
    expected = {k.encode() if isinstance(k, str) else k: v.encode() if isinstance(v, str) else v
                for k, v in REQUEST_HEADERS}
    for headers in srv.requests.values():
        assert headers == expected
    # After the first stream, each field is one index byte.
    assert sizes[1] == 9 + len(REQUEST_HEADERS) and sizes[1:] == [sizes[1]] * 4
    assert sizes[0] > sizes[1]


@pytest.mark.parametrize("table_size", [0, 64])
def test_server_shrinking_its_table_gets_a_size_update_then_stateless_blocks(table_size):
    core, need = _session_core()
    assert need > table_size
    srv = H2Server(HEADER_TABLE_SIZE=table_size)
    srv.feed(core.start_py())
    srv.feed(core.submit_py(1))  # first block already inserted entries
    _, out = core.receive_py(srv.out())  # the server's SETTINGS arrive; we ACK them
    srv.feed(out)
    for _ in range(4):
        srv.feed(core.submit_py(1))
    assert len(srv.requests) == 5
    assert len({tuple(sorted(h.items())) for h in srv.requests.values()}) == 1
    assert srv.conn.decoder.header_table_size <= table_size


# ---- gRPC: grpc-status from trailers ---------------------------------------------------------

def test_grpc_status_from_trailers_and_trailers_only_responses():
    core = H2TestCore(request_block(), b"\0\0\0\0\x02hi", 8, grpc=True)
    server = H2Server()
    handshake(core, server)
    out = b"".join(core.submit_py(t) for t in range(10, 15))
    server.feed(out)
    conn = server.conn
    msg = b"\0\0\0\0\x03abc"
    # 1: OK with a message; 3: UNAVAILABLE in trailers; 5: trailers-only NOT_FOUND;
    # 7: no grpc-status at all; 9: a value that is not a code.
    for sid, trailer in ((1, b"0"), (3, b"14"), (7, None), (9, b"x1")):
        conn.send_headers(sid, [(b":status", b"200"), (b"content-type", b"application/grpc")])
        conn.send_data(sid, msg, end_stream=trailer is None)
        if trailer is not None:
            conn.send_headers(sid, [(b"grpc-status", trailer), (b"grpc-message", b"m")], end_stream=True)
    conn.send_headers(5, [(b":status", b"200"), (b"content-type", b"application/grpc"),
                          (b"grpc-status", b"5")], end_stream=True)
    events, _ = core.receive_py(server.out())
    assert sorted(events, key=lambda e: e[2]) == [
        (EV_DONE, 200, 10, 8, 0), (EV_DONE, 200, 11, 8, 14), (EV_DONE, 200, 12, 0, 5),
        (EV_DONE, 200, 13, 8, -1), (EV_DONE, 200, 14, 8, -2)]
    # Statuses indexed in h2's dynamic table are found again on later streams.
    server.feed(core.submit_py(20))
    conn.send_headers(11, [(b":status", b"200"), (b"content-type", b"application/grpc")])
    conn.send_headers(11, [(b"grpc-status", b"14"), (b"grpc-message", b"m")], end_stream=True)
    events, _ = core.receive_py(server.out())
    assert events == [(EV_DONE, 200, 20, 0, 14)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(response_plan, st.booleans(), st.integers(0, 3000)), min_size=1, max_size=12),
       st.integers(1, 70000))
def test_variants_and_captured_bodies(streams, limit):
    """submit_entry: each stream's own header block and body reach the server; events carry the
    stream's entry, and a sampled stream's response body (DATA payloads, padding excluded,
    across frames, up to capture_limit)."""
    core = H2TestCore(request_block(), b"", 100)
    core.capture_limit = limit
    server = H2Server()
    handshake(core, server)
    blocks = [request_block([*REQUEST_HEADERS[:3], (b":path", f"/v{i}".encode())]) for i in range(len(streams))]
    bodies = [b"b" * n for _, _, n in streams]
    out = bytearray()
    for i, (_, capture, _) in enumerate(streams):
        out += core.submit_entry_py(1000 + i, i, blocks[i], bodies[i], capture)
    server.feed(bytes(out))
    sids = sorted(server.requests)
    assert [server.requests[sid][b":path"] for sid in sids] == [f"/v{i}".encode() for i in range(len(streams))]
    assert [server.bodies[sid] for sid in sids] == bodies
    for sid, (plan, _, _) in zip(sids, streams, strict=True):
        respond(server, sid, plan)
    events, _ = core.receive_entries_py(server.out())
    assert sorted(e[2] for e in events) == list(range(len(streams)))
    for kind, status, entry, captured in events:
        plan, capture, _ = streams[entry]
        assert kind == EV_DONE and status == plan["status"]
        if capture:
            assert captured == b"x" * min(plan["body"], limit)
        else:
            assert captured is None

"""The native event scanners (SSE events, gRPC messages) and the parsers that run them agree
with the plain-Python references in fastload.stream_events, at any split of the stream."""

from __future__ import annotations

import random

import hpack
from hypothesis import given, settings
from hypothesis import strategies as st

from fastload import native
from fastload.native.h2 import F_DATA, F_HEADERS, FL_END_HEADERS, FL_END_STREAM
from fastload.native.stream_events import grpc_messages, sse_events
from fastload.native.testing import H2TestCore
from support.h2frames import SETTINGS_EMPTY, frame, request_block

SSE_PIECES = [b"data", b"data:", b"data: tok", b":", b": ping", b"event: x", b"id: 1", b"dat", b"x",
              b" ", b"\r", b"\n", b"\r\n", b"\n\n", b"\xef\xbb\xbf", b"\xef\xbb", b"retry: 5", b"Data:"]


def feed_cumulative(kind: str, data: bytes, cuts: list[int]) -> list[tuple[int, int]]:
    """(offset, events so far) after each piece, from the native scanner."""
    scanner = native.StreamScanner(kind)
    points = sorted({c % (len(data) + 1) for c in cuts} | {len(data)})
    out, total, prev = [], 0, 0
    for p in points:
        total += scanner.feed(data[prev:p])
        out.append((p, total))
        prev = p
    return out


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(SSE_PIECES), max_size=40), st.lists(st.integers(0, 400), max_size=12))
def test_sse_scanner_agrees_with_the_reference_at_any_split(pieces, cuts):
    data = b"".join(pieces)
    for offset, events in feed_cumulative("sse", data, cuts):
        assert events == sse_events(data[:offset]), (data, offset)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.lists(st.integers(0, 300), max_size=8))
def test_sse_scanner_on_arbitrary_bytes(data, cuts):
    for offset, events in feed_cumulative("sse", data, cuts):
        assert events == sse_events(data[:offset])


def test_sse_examples_from_the_spec():
    # WHATWG HTML 9.2.6 examples: comments and fields without data dispatch nothing.
    assert sse_events(b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\n"
                      b"data:  third event\n\n") == 3
    assert sse_events(b"data\n\ndata\ndata\n\ndata:\n") == 2
    assert sse_events(b"event: add\n\n") == 0
    assert sse_events(b"\xef\xbb\xbfdata: x\r\n\r\n") == 1
    assert native.StreamScanner("sse").feed(b"data: a\r\rdata: b\n\n") == 2


def grpc_stream(lengths: list[int]) -> bytes:
    return b"".join(b"\x00" + n.to_bytes(4, "big") + bytes(n) for n in lengths)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 300), max_size=12), st.lists(st.integers(0, 4000), max_size=12))
def test_grpc_scanner_counts_messages_at_any_split(lengths, cuts):
    data = grpc_stream(lengths)
    points = feed_cumulative("grpc", data, cuts)
    assert points[-1] == (len(data), len(lengths))
    for offset, messages in points:
        assert messages == grpc_messages(data[:offset])


# --- the HTTP/1.1 parser runs the scanner on the decoded body --------------------------------

def chunked(body: bytes, rng: random.Random) -> bytes:
    out, i = b"", 0
    while i < len(body):
        n = rng.randint(1, 40)
        out += b"%x\r\n" % len(body[i:i + n]) + body[i:i + n] + b"\r\n"
        i += n
    return out + b"0\r\n\r\n"


def h1_feed(raw: bytes, rng: random.Random, eof: bool = False) -> list[tuple]:
    parser = native.H1ResponseParser()
    out, i = [], 0
    while i < len(raw):
        n = rng.randint(1, 50)
        out += parser.feed_py(raw[i:i + n], True)
        i += n
    if eof:
        r = parser.eof_py(True)
        if r:
            out.append(r)
    return out


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(SSE_PIECES), max_size=30), st.integers(0, 2**32),
       st.sampled_from(["chunked", "length", "eof"]),
       st.sampled_from([b"text/event-stream", b"Text/Event-Stream; charset=utf-8", b"text/event-stream "]))
def test_h1_sse_events_match_the_reference(pieces, seed, framing, ctype):
    body = b"".join(pieces)
    rng = random.Random(seed)
    head = b"HTTP/1.1 200 OK\r\nContent-Type: " + ctype + b"\r\n"
    if framing == "chunked":
        raw = head + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(body, rng)
    elif framing == "length":
        raw = head + b"Content-Length: %d\r\n\r\n" % len(body) + body
    else:
        raw = head + b"Connection: close\r\n\r\n" + body
    got = h1_feed(raw, rng, eof=framing == "eof")
    assert got == [(200, len(body), framing != "eof", sse_events(body), True)]


def test_h1_plain_chunked_counts_chunks_and_plain_bodies_are_not_streams():
    rng = random.Random(1)
    raw = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n1;ext\r\nd\r\n0\r\n\r\n"
           b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/event-streams\r\n\r\nok"
           b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\ncontent-type:text/event-stream\r\n\r\ndata: 1\n\n\n\n")
    assert h1_feed(raw, rng) == [(200, 4, True, 2, True), (200, 2, True, 0, False),
                                 (200, 11, True, 1, True)]


# --- the HTTP/2 core: events per DATA frame, first-byte times, event counts ------------------

def response_headers(sid: int, ctype: bytes, enc: hpack.Encoder, end: bool = False) -> bytes:
    block = enc.encode([(b":status", b"200"), (b"content-type", ctype)])
    return frame(F_HEADERS, FL_END_HEADERS | (FL_END_STREAM if end else 0), sid, block)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(SSE_PIECES), max_size=30), st.integers(0, 2**32))
def test_h2_sse_observations_match_the_reference(pieces, seed):
    body = b"".join(pieces)
    rng = random.Random(seed)
    core = H2TestCore(request_block(), b"", 4)
    core.start_py()
    core.receive_stream_py(SETTINGS_EMPTY, 1)
    assert core.submit_py(100) is not None
    enc = hpack.Encoder()
    ev, obs, _ = core.receive_stream_py(response_headers(1, b"text/event-stream", enc), 1000)
    assert ev == [] and obs == []
    seen, t, last = 0, 1000, -1
    i = 0
    while i < len(body):
        n = rng.randint(1, 30)
        t += 10
        ev, obs, _ = core.receive_stream_py(frame(F_DATA, 0, 1, body[i:i + n]), t)
        i += n
        expect = sse_events(body[:i]) - seen
        assert ev == []
        assert obs == ([(100, last, expect)] if expect else [])
        if expect:
            seen += expect
            last = t
    ev, obs, _ = core.receive_stream_py(frame(F_DATA, FL_END_STREAM, 1), t + 10)
    assert ev == [(1, 200, 100, 1000, sse_events(body))] and obs == []


def test_h2_plain_responses_are_not_streams_and_grpc_messages_are_events():
    enc = hpack.Encoder()
    core = H2TestCore(request_block(), b"", 4)
    core.start_py()
    core.receive_stream_py(SETTINGS_EMPTY, 1)
    core.submit_py(100)
    ev, obs, _ = core.receive_stream_py(
        response_headers(1, b"text/plain", enc) + frame(F_DATA, FL_END_STREAM, 1, b"data: x\n\n"), 500)
    assert ev == [(1, 200, 100, 500, -1)] and obs == []

    core = H2TestCore(request_block(), b"", 4, grpc=True)
    core.start_py()
    core.receive_stream_py(SETTINGS_EMPTY, 1)
    core.submit_py(100)
    msgs = grpc_stream([3, 0, 20])
    enc = hpack.Encoder()
    ev, obs, _ = core.receive_stream_py(response_headers(1, b"application/grpc", enc), 200)
    ev, obs, _ = core.receive_stream_py(frame(F_DATA, 0, 1, msgs[:15]), 300)  # 8 + 5 + 2 bytes
    assert obs == [(100, -1, 2)]
    ev, obs, _ = core.receive_stream_py(frame(F_DATA, 0, 1, msgs[15:]), 400)
    assert obs == [(100, 300, 1)]
    trailers = enc.encode([(b"grpc-status", b"0")])
    ev, obs, _ = core.receive_stream_py(frame(F_HEADERS, FL_END_HEADERS | FL_END_STREAM, 1, trailers), 450)
    assert ev == [(1, 200, 100, 200, 3)] and obs == []

"""The native HTTP/1.1 response parser against h11 (the reference), on arbitrary responses cut
at arbitrary points, plus byte-exact cases for each framing rule and each error."""

from __future__ import annotations

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastload.errors import ProtocolError
from fastload.native import MAX_HEADER_BYTES, H1ResponseParser


def feed_in_pieces(data: bytes, cuts: list[int]) -> list[tuple[int, int, bool]]:
    p = H1ResponseParser()
    out = []
    prev = 0
    for c in sorted(set(cuts)) + [len(data)]:
        out += p.feed_py(data[prev:c])
        prev = c
    return out


def h11_reference(data: bytes) -> list[tuple[int, int, bool]]:
    """What h11 makes of the same bytes, as (status, body length, keep-alive). h11 clients do not
    pipeline, so each request is sent once the previous response is complete."""
    conn = h11.Connection(h11.CLIENT)
    conn.receive_data(data)
    out = []
    status = body = None
    while True:
        if conn.our_state is h11.IDLE:
            conn.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
            conn.send(h11.EndOfMessage())
        ev = conn.next_event()
        if ev is h11.NEED_DATA or ev is h11.PAUSED or isinstance(ev, h11.ConnectionClosed):
            break
        if isinstance(ev, h11.InformationalResponse):
            continue
        if isinstance(ev, h11.Response):
            status, body = ev.status_code, 0
        elif isinstance(ev, h11.Data):
            body += len(ev.data)
        elif isinstance(ev, h11.EndOfMessage):
            keep = conn.our_state is h11.DONE and conn.their_state is h11.DONE
            out.append((status, body, keep))
            if not keep:
                break
            conn.start_next_cycle()
    return out


header_name = st.sampled_from(["Server", "Date", "Content-Type", "X-Custom", "cache-control", "X-A-B"])
header_value = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789 ;=/-.,", min_size=0, max_size=30).map(str.strip)


@st.composite
def response(draw) -> tuple[bytes, bool]:
    """One response with random framing; returns (bytes, reusable)."""
    status = draw(st.sampled_from([200, 201, 204, 301, 304, 404, 418, 500, 503]))
    lines = [f"HTTP/1.1 {status} {draw(st.sampled_from(['OK', 'Whatever', '', 'Not Found']))}"]
    for _ in range(draw(st.integers(0, 5))):
        lines.append(f"{draw(header_name)}: {draw(header_value)}")
    close = draw(st.booleans())
    if close:
        lines.append(draw(st.sampled_from(["Connection: close", "connection: Close", "Connection: close, TE"])))
    elif draw(st.booleans()):
        lines.append("Connection: keep-alive")
    body = draw(st.binary(max_size=200)) if status not in (204, 304) else b""
    chunked = draw(st.booleans()) and status not in (204, 304)
    if chunked:
        # (h11 only accepts a lone "chunked"; "gzip, chunked" is covered by a byte-exact case.)
        lines.append(draw(st.sampled_from(["Transfer-Encoding: chunked", "transfer-encoding: Chunked",
                                           "Transfer-Encoding:  chunked "])))
        wire = b""
        rest = body
        while rest:
            n = draw(st.integers(1, len(rest)))
            ext = draw(st.sampled_from(["", ";name=value", ";x"]))
            size = draw(st.sampled_from([f"{n:x}", f"{n:X}", f"{n:04x}"]))
            wire += f"{size}{ext}\r\n".encode() + rest[:n] + b"\r\n"
            rest = rest[n:]
        wire += b"0\r\n"
        if draw(st.booleans()):
            wire += b"Trailer-Field: 1\r\n"
        wire += b"\r\n"
    else:
        if status not in (204, 304) or draw(st.booleans()):
            lines.append(f"{draw(st.sampled_from(['Content-Length', 'content-length']))}: {len(body)}")
        wire = body
    head = ("\r\n".join(lines) + "\r\n\r\n").encode()
    return head + wire, not close


@st.composite
def pipelined(draw) -> tuple[bytes, int]:
    parts = []
    for _ in range(draw(st.integers(1, 4))):
        data, reusable = draw(response())
        if draw(st.booleans()):
            parts.append(b"HTTP/1.1 100 Continue\r\n\r\n")
        parts.append(data)
        if not reusable:
            break
    return b"".join(parts), len(parts)


@settings(max_examples=300, deadline=None)
@given(pipelined(), st.lists(st.integers(0, 2000), max_size=12))
def test_agrees_with_h11_at_any_split(stream, cuts):
    data, n = stream
    expected = h11_reference(data)
    assert len(expected) == n - data.count(b" 100 Continue")
    cuts = [c % (len(data) + 1) for c in cuts]
    assert feed_in_pieces(data, cuts) == expected


def test_byte_at_a_time_equals_whole():
    data = (b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 5\r\n\r\nhello"
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3;x=1\r\nabc\r\n0\r\nT: 1\r\n\r\n"
            b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")
    whole = H1ResponseParser().feed_py(data)
    assert H1ResponseParser().feed_py(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n") == [(200, 2, True)]
    assert whole == [(200, 5, True), (404, 3, True), (200, 0, False)]
    p = H1ResponseParser()
    assert [r for i in range(len(data)) for r in p.feed_py(data[i:i + 1])] == whole


def test_read_until_close_and_eof():
    p = H1ResponseParser()
    assert p.feed_py(b"HTTP/1.1 200 OK\r\nServer: x\r\n\r\nsome body") == []
    assert p.feed_py(b" more") == []
    assert p.eof_py() == (200, 14, False)
    assert H1ResponseParser().eof_py() is None


def test_head_and_no_body_statuses():
    p = H1ResponseParser()
    p.expect_no_body = True
    assert p.feed_py(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n") == [(200, 0, True)]
    assert H1ResponseParser().feed_py(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n") == [(304, 0, True)]


def test_lf_only_line_endings_are_tolerated():
    assert H1ResponseParser().feed_py(b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok") == [(200, 2, True)]


def test_keep_alive_rules():
    assert H1ResponseParser().feed_py(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n") == [(200, 0, True)]
    assert H1ResponseParser().feed_py(b"HTTP/1.1 200 OK\r\nConnection: Keep-Alive, close\r\nContent-Length: 0\r\n\r\n") == [(200, 0, False)]
    assert H1ResponseParser().feed_py(b"HTTP/1.1 200 OK\r\nConnection: closed\r\nContent-Length: 0\r\n\r\n") == [(200, 0, True)]
    # chunked not last: the body is delimited by the close.
    p = H1ResponseParser()
    assert p.feed_py(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\nabc") == []
    assert p.eof_py() == (200, 3, False)


@pytest.mark.parametrize(
    "data,needle",
    [(b"HTTQ/1.1 200 OK\r\n\r\n", "status line"),
     (b"HTTP/1.1 2000 OK\r\n\r\n", "status line"),
     (b"HTTP/1.1 20 OK\r\n\r\n", "status line"),
     (b"HTTP/2.0 200 OK\r\n\r\n", "status line"),
     (b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n", "header"),
     (b"HTTP/1.1 200 OK\r\n Folded: x\r\n\r\n", "header"),
     (b"HTTP/1.1 200 OK\r\nContent-Length: 12a\r\n\r\n", "Content-Length"),
     (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", "Content-Length"),
     (b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n", "Content-Length"),
     (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "chunked"),
     (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX", "chunked"),
     (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\n", "chunked"),
     (b"garbage garbage", "status line")],
)
def test_errors(data, needle):
    with pytest.raises(ProtocolError, match=needle):
        H1ResponseParser().feed_py(data)


def test_header_section_limit_catches_endless_status_line():
    p = H1ResponseParser()
    with pytest.raises(ProtocolError, match="64 KiB"):
        for _ in range(MAX_HEADER_BYTES // 4096 + 1):
            p.feed_py(b"HTTP/1.1 200 " + b"x" * 4096)


def test_truncated_response_on_eof():
    p = H1ResponseParser()
    p.feed_py(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    with pytest.raises(ProtocolError, match="closed before"):
        p.eof_py()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.lists(st.integers(0, 400), max_size=6))
def test_arbitrary_bytes_never_crash(data, cuts):
    p = H1ResponseParser()
    prev = 0
    for c in sorted(c % (len(data) + 1) for c in cuts) + [len(data)]:
        try:
            p.feed_py(data[prev:c])
        except ProtocolError:
            break
        prev = c
    try:
        p.eof_py()
    except ProtocolError:
        pass

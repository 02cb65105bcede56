"""The proxy's HTTP/1.1 framer (fastload.faults.http1), bytes in, events out: however a stream
is cut into reads, the same messages are found and every byte is accounted for exactly once."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from fastload.faults.http1 import DATA, END, HEAD, Framer

REQUESTS = [
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"\r\nHEAD /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
    b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n10\r\n" + b"z" * 16
    + b"\r\n0\r\nTrailer: 1\r\n\r\n",
    b"GET /old HTTP/1.0\r\n\r\n",
]
RESPONSES = [  # (method of the request, response)
    ("GET", b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"),
    ("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n"),
    ("GET", b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"),
    ("GET", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nwxyz\r\n0\r\n\r\n"),
    ("GET", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n"),
]


def _run(framer: Framer, stream: bytes, cuts: list[int]) -> tuple[bytes, list[tuple]]:
    """Feed stream cut at cuts; (the bytes the events cover, in order; the heads and ends)."""
    covered = bytearray()
    marks: list[tuple] = []
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    for a, b in zip(points, points[1:], strict=False):
        data = stream[a:b]
        for ev in framer.feed(data):
            if ev.kind == HEAD:
                covered += ev.carry + data[ev.start:ev.end]
                marks.append(("head", ev.head))
            elif ev.kind == DATA:
                covered += data[ev.start:ev.end]
            else:
                assert ev.kind == END
                marks.append(("end",))
    return bytes(covered), marks


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(range(len(REQUESTS))), min_size=1, max_size=12),
       st.lists(st.integers(min_value=0, max_value=10_000), max_size=30))
def test_requests_whatever_the_cuts(order, cuts):
    stream = b"".join(REQUESTS[i] for i in order)
    covered, marks = _run(Framer(True), stream, cuts)
    assert covered == stream  # nothing lost, nothing twice, in order
    heads = [m[1] for m in marks if m[0] == "head"]
    assert [h.method for h in heads] == [REQUESTS[i].split()[0].decode() for i in order]
    assert marks == [m for h in heads for m in (("head", h), ("end",))]
    assert [h.keep_alive for h in heads] == [i not in (1, 4) for i in order]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(range(len(RESPONSES))), min_size=1, max_size=12),
       st.lists(st.integers(min_value=0, max_value=10_000), max_size=30))
def test_responses_whatever_the_cuts(order, cuts):
    framer = Framer(False)
    framer.methods.extend(RESPONSES[i][0] for i in order)  # the forwarded requests, in order
    stream = b"".join(RESPONSES[i][1] for i in order)
    covered, marks = _run(framer, stream, cuts)
    assert covered == stream
    finals = [m for m in marks if m[0] == "head" and not m[1].interim]
    assert [h[1].status for h in finals] == [int(RESPONSES[i][1].rsplit(b"HTTP/1.1 ", 1)[1][:3])
                                             for i in order]
    assert sum(m[0] == "end" for m in marks) == len(order) + sum(i == 2 for i in order)
    assert not framer.methods and not framer.opaque


def test_unframeable_input_turns_opaque_and_passes_through():
    for stream in (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04",  # the h2c preface
                   b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
                   b"GET / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
                   b"\x16\x03\x01\x02\x00" + b"\x00" * 200 + b"\r\n\r\n"):  # TLS, not HTTP
        framer = Framer(True)
        covered, marks = _run(framer, stream + b"more", [7])
        assert covered == stream + b"more" and framer.opaque
        assert marks == [("head", None)]


def test_a_tunnel_ends_the_framing():
    framer = Framer(False)
    framer.methods.append("GET")
    stream = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n\x00\x00\x00\x04"
    covered, marks = _run(framer, stream, [3, 60])
    assert covered == stream and framer.opaque and marks[0][1].status == 101

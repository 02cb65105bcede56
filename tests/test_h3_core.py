"""The HTTP/3 request layer without a network: native/h3.pyx (H3Core) against its plain-Python
reference native/h3_events.py, event for event on any split of the same stream bytes; QPACK
against pylsqpack (the C library aioquic uses) as an independent reference; and the
connection-level streams of h3/control.py."""

from __future__ import annotations

import pylsqpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastload import native
from fastload.h3.control import (
    CLIENT_CONTROL_STREAM,
    H3_CLOSED_CRITICAL_STREAM,
    H3_FRAME_UNEXPECTED,
    H3_ID_ERROR,
    H3_MISSING_SETTINGS,
    H3_SETTINGS_ERROR,
    H3_STREAM_CREATION_ERROR,
    QPACK_ENCODER_STREAM_ERROR,
    ServerStreams,
)
from fastload.native import h3_events as ref
from fastload.native.h3 import H3Core
from fastload.native.testing import h3_feed
from fastload.workload.hpack import huffman_encode
from fastload.workload.qpack import (
    STATIC_TABLE,
    encode_field_section,
    encode_request,
    frame,
    huffman_decode,
    varint,
)

SID = 8
HEADERS, DATA = 0x1, 0x0


def both(head: bool = False, sids: tuple[int, ...] = (SID,)) -> tuple[H3Core, ref.ResponseParser]:
    core, parser = H3Core(None, 64, head), ref.ResponseParser(head)
    for sid in sids:
        core.start(sid, 1000 + sid, 2000 + sid)
        parser.start(sid, 1000 + sid, 2000 + sid)
    return core, parser


def feed_both(chunks: list[bytes], head: bool = False) -> list:
    """Feeds both the same chunks (end of stream with the last); asserts they agree on every
    call and returns the native results."""
    core, parser = both(head)
    out = []
    for i, chunk in enumerate(chunks):
        end = i == len(chunks) - 1
        now = 10_000 + i
        native = h3_feed(core, SID, chunk, end, now)
        assert native == parser.feed(SID, chunk, end, now), (i, chunks)
        out.append(native)
    return out


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, prev = [], 0
    for p in points:
        pieces.append(data[prev:p])
        prev = p
    pieces.append(data[prev:])
    return pieces


def lsqpack_block(headers: list[tuple[bytes, bytes]]) -> bytes:
    # Capacity 0, as our SETTINGS say: static table and (Huffman) literals only.
    return pylsqpack.Encoder().encode(0, headers)[1]


# -- hypothesis: response streams built from parts

_NAMES = st.sampled_from([b"server", b"date", b"x-request-id", b"cache-control", b"vary",
                          b"set-cookie", b"content-encoding", b"x-a"])
_VALUES = st.binary(min_size=0, max_size=24).map(
    lambda b: bytes(c % 94 + 33 for c in b))  # visible ASCII: never malformed
_FIELD = st.tuples(_NAMES, _VALUES)
_SSE_BODY = st.lists(st.sampled_from([b"data: x\n\n", b"data: y\r\n\r\n", b": c\n", b"event: e\n",
                                      b"data:", b"\n", b"\r"]), max_size=12).map(b"".join)


@st.composite
def response_streams(draw: st.DrawFn) -> bytes:
    encode = draw(st.sampled_from([encode_field_section, lsqpack_block]))
    out = b""
    if draw(st.booleans()):
        out += frame(HEADERS, encode([(b":status", draw(st.sampled_from([b"100", b"103"])))]))
    status = draw(st.sampled_from([b"200", b"204", b"304", b"404", b"503", b"299"]))
    sse = draw(st.booleans())
    body = draw(_SSE_BODY) if sse else draw(st.binary(max_size=200))
    fields = [(b":status", status)] + draw(st.lists(_FIELD, max_size=5))
    if sse:
        fields.append((b"content-type", draw(st.sampled_from(
            [b"text/event-stream", b"Text/Event-Stream; charset=utf-8", b"text/plain"]))))
    length = draw(st.sampled_from(["right", "wrong", "none"]))
    if length != "none":
        fields.append((b"content-length", str(len(body) + (length == "wrong")).encode()))
    if draw(st.integers(0, 9)) == 0:  # something malformed in the section
        fields.append(draw(st.sampled_from([(b"Upper", b"x"), (b"x", b" lead"), (b":path", b"/"),
                                            (b"connection", b"close"), (b"te", b"gzip")])))
    out += frame(HEADERS, encode(fields))
    pieces = draw(st.lists(st.integers(1, 64), max_size=4))
    off = 0
    for n in pieces + [len(body)]:
        if off >= len(body):
            break
        out += frame(DATA, body[off:off + n])
        off += n
        if draw(st.booleans()):
            out += frame(draw(st.sampled_from([0x21, 0x40, 0x1F * 3 + 0x21])), draw(st.binary(max_size=9)))
    if draw(st.booleans()):
        out += frame(HEADERS, encode([(b"x-trailer", b"1")]))
    if draw(st.integers(0, 7)) == 0:
        out += draw(st.binary(max_size=12))  # whatever follows: errors must agree too
    return out


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(response_streams(), st.lists(st.integers(0, 10_000), max_size=8), st.booleans())
def test_native_and_reference_agree_on_any_split(stream, cuts, head):
    feed_both(split(stream, cuts), head)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120), st.lists(st.integers(0, 1000), max_size=5), st.booleans())
def test_native_and_reference_agree_on_arbitrary_bytes(tail, cuts, valid_start):
    start = frame(HEADERS, encode_field_section([(b":status", b"200")])) if valid_start else b""
    feed_both(split(start + tail, cuts))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.binary(min_size=1, max_size=20), st.binary(max_size=40)), min_size=1, max_size=8))
def test_field_sections_agree_with_pylsqpack(headers):
    headers = [(n.lower(), v) for n, v in headers]
    # pylsqpack's encoding (Huffman where shorter, static references) read by the reference
    assert list(ref.decode_field_section(lsqpack_block(headers))) == headers
    # and ours read by pylsqpack's decoder, with the table capacity we advertise
    assert pylsqpack.Decoder(0, 0).feed_header(0, encode_field_section(headers))[1] == headers


@given(st.binary(max_size=64))
def test_huffman_decoding_inverts_the_encoder(data):
    assert huffman_decode(huffman_encode(data)) == data


def test_the_static_table_is_the_one_pylsqpack_uses():
    # Every entry as an indexed field line: pylsqpack must read back the same field.
    for i, field in enumerate(STATIC_TABLE):
        block = bytes([0, 0]) + (bytes([0xC0 | i]) if i < 63 else bytes([0xFF, i - 63]))
        assert pylsqpack.Decoder(0, 0).feed_header(0, block)[1] == [field]


def test_a_request_is_headers_then_data():
    headers = [(b":method", b"POST"), (b":scheme", b"https"), (b":authority", b"h:1"),
               (b":path", b"/x"), (b"content-type", b"application/json")]
    wire = encode_request(headers, b"{}")
    block = encode_field_section(headers)
    assert wire == varint(HEADERS) + varint(len(block)) + block + b"\x00\x02{}"
    # static entries: POST (20), https (23), then a name reference for :authority
    assert block[:4] == b"\x00\x00\xd4\xd7"
    assert encode_request(headers, b"") == frame(HEADERS, block)


# -- byte-exact outcomes

def one(chunks: list[bytes], head: bool = False) -> tuple[int, list]:
    results = feed_both(chunks, head)
    return results[-1][0], [e for _, evs in results for e in evs]


def hdr(*fields: tuple[bytes, bytes]) -> bytes:
    return frame(HEADERS, encode_field_section(list(fields)))


OK = hdr((b":status", b"200"), (b"content-length", b"5"))


def test_a_response_completes_with_status_body_and_first_headers_time():
    rc, evs = one([OK, frame(DATA, b"hello"), b""])
    assert rc == 0
    assert evs == [(ref.EV_DONE, SID, 200, 5, -1, 10_000, 1000 + SID, 2000 + SID)]


def test_interim_responses_and_trailers_and_unknown_frames_are_passed_over():
    rc, evs = one([hdr((b":status", b"103")) + frame(0x21, b"xyz") + OK,
                   frame(DATA, b"hel") + frame(0x40, b"") + frame(DATA, b"lo")
                   + hdr((b"x-t", b"1"))])
    assert rc == 0 and evs[0][:4] == (ref.EV_DONE, SID, 200, 5)


@pytest.mark.parametrize("stream, code", [
    (frame(DATA, b"x"), ref.H3_FRAME_UNEXPECTED),                      # DATA before HEADERS
    (OK + frame(0x4, b""), ref.H3_FRAME_UNEXPECTED),                   # SETTINGS on a request
    (OK + frame(0x5, b"\x00"), ref.H3_ID_ERROR),                       # PUSH_PROMISE, no push
    (frame(HEADERS, b"\x01\x00\xc0"), ref.QPACK_DECOMPRESSION_FAILED),  # Required Insert Count 1
    (frame(HEADERS, b"\x00\x00\x80"), ref.QPACK_DECOMPRESSION_FAILED),  # dynamic index
    (frame(HEADERS, b"\x00\x00\x10"), ref.QPACK_DECOMPRESSION_FAILED),  # post-base index
    (frame(HEADERS, b"\x00\x00\xff\x7f"), ref.QPACK_DECOMPRESSION_FAILED),  # static index 190
    (OK + b"\x00\x05hel", ref.H3_FRAME_ERROR),                          # DATA cut by the end
    (OK + hdr((b"x", b"1")) + hdr((b"x", b"1")), ref.H3_FRAME_UNEXPECTED),  # after trailers
])
def test_connection_errors(stream, code):
    assert one([stream])[0] == code


@pytest.mark.parametrize("fields", [
    [(b"content-length", b"0")],                                   # no :status
    [(b":status", b"20")], [(b":status", b"2x0")], [(b":status", b"600")],
    [(b":status", b"200"), (b":status", b"200")],
    [(b"x", b"1"), (b":status", b"200")],                          # pseudo after regular
    [(b":status", b"200"), (b":path", b"/")],
    [(b":status", b"200"), (b"X-Upper", b"1")],
    [(b":status", b"200"), (b"x", b"a\r\nb")],
    [(b":status", b"200"), (b"x", b"trailing ")],
    [(b":status", b"200"), (b"transfer-encoding", b"chunked")],
    [(b":status", b"200"), (b"content-length", b"1"), (b"content-length", b"2")],
    [(b":status", b"200"), (b"content-length", b"-1")],
])
def test_malformed_responses_are_stream_errors(fields):
    results = feed_both([hdr(*fields), b""])
    assert results[0][0] == ref.RC_STREAM_ERROR  # still open: the session cancels it
    assert results[0][1][0][0] == ref.EV_MALFORMED
    assert results[1] == (0, [])  # the rest of the stream is no longer ours


def test_content_length_is_held_against_the_body_except_head_and_304():
    assert one([OK + frame(DATA, b"hell")])[1][0][0] == ref.EV_MALFORMED
    assert one([OK], head=True)[1][0][0] == ref.EV_DONE
    assert one([hdr((b":status", b"304"), (b"content-length", b"5"))])[1][0][0] == ref.EV_DONE
    assert one([hdr((b":status", b"200"))])[1][0][0] == ref.EV_DONE
    assert one([hdr((b":status", b"100"))])[1][0][0] == ref.EV_MALFORMED  # never a final one


def test_sse_events_are_observed_per_piece_and_counted():
    head = hdr((b":status", b"200"), (b"content-type", b"text/event-stream"))
    rc, evs = one([head + frame(DATA, b"data: 1\n\ndata: 2\n\n"), frame(DATA, b"data: 3\n\n"), b""])
    obs = [e for e in evs if e[0] == ref.EV_OBSERVED]
    assert [(e[4], e[5]) for e in obs] == [(2, -1), (1, 10_000)]
    assert evs[-1][:5] == (ref.EV_DONE, SID, 200, 27, 3)


def test_many_streams_complete_in_any_order():
    sids = tuple(range(0, 4 * 40, 4))
    core, parser = both(sids=sids)
    assert core.inflight == 40
    for sid in sorted(sids, key=lambda s: (s * 7919) % 97):
        got = h3_feed(core, sid, OK + frame(DATA, b"hello"), True, 5)
        assert got == parser.feed(sid, OK + frame(DATA, b"hello"), True, 5)
        assert got[1][0][1] == sid and got[1][0][0] == ref.EV_DONE
    assert core.inflight == 0 and core.oldest_sent_ns() == -1
    assert h3_feed(core, 3, b"\x00", False, 5) == (ref.RC_UNI, [])


# -- the connection-level streams

SETTINGS = frame(0x4, varint(0x6) + varint(4096))


def test_our_control_stream_advertises_no_dynamic_table():
    assert CLIENT_CONTROL_STREAM == b"\x00" + b"\x04\x04" + b"\x01\x00" + b"\x07\x00"


def test_server_control_stream_settings_then_goaway_in_pieces():
    s = ServerStreams()
    data = b"\x00" + SETTINGS + frame(0x21, b"ab") + frame(0x7, varint(16))
    for i in range(len(data)):
        assert s.feed(3, data[i:i + 1], False) == 0
    assert s.settings == {0x6: 4096} and s.goaway == 16
    assert s.feed(3, frame(0x7, varint(20)), False) == H3_ID_ERROR  # may only go down


@pytest.mark.parametrize("stream_type, data, end, code", [
    (0x0, frame(0x7, varint(0)), False, H3_MISSING_SETTINGS),
    (0x0, SETTINGS + SETTINGS, False, H3_FRAME_UNEXPECTED),
    (0x0, SETTINGS + frame(0x1, b""), False, H3_FRAME_UNEXPECTED),
    (0x0, frame(0x4, varint(0x2) + varint(1)), False, H3_SETTINGS_ERROR),  # HTTP/2's ENABLE_PUSH
    (0x0, SETTINGS, True, H3_CLOSED_CRITICAL_STREAM),
    (0x1, b"", False, H3_ID_ERROR),                      # push stream: we allow none
    (0x2, b"\x20", False, 0),                            # Set Dynamic Table Capacity 0
    (0x2, b"\x3f\xe1\x1f", False, QPACK_ENCODER_STREAM_ERROR),  # capacity 4096
    (0x2, b"\xc0\x01x", False, QPACK_ENCODER_STREAM_ERROR),     # an insertion
    (0x3, b"\x81", False, 0),                            # decoder stream: about our table
    (0x21, b"anything", True, 0),                        # unknown types are ignored
])
def test_server_streams(stream_type, data, end, code):
    assert ServerStreams().feed(3, varint(stream_type) + data, end) == code


def test_a_second_control_stream_is_an_error():
    s = ServerStreams()
    assert s.feed(3, b"\x00" + SETTINGS, False) == 0
    assert s.feed(7, b"\x00", False) == H3_STREAM_CREATION_ERROR


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_the_stream_table_holds_any_set_of_open_streams(data):
    # Stream ids far apart collide in the table (it is sized for the streams in flight, not
    # for the ids): every removal order must keep every open stream findable.
    n = data.draw(st.integers(1, 24))
    core, parser = H3Core(None, n), ref.ResponseParser()
    open_: set[int] = set()
    next_sid = 0
    for step in range(data.draw(st.integers(1, 120))):
        if data.draw(st.booleans()) and len(open_) < n:
            core.start(next_sid, step, step)
            parser.start(next_sid, step, step)
            open_.add(next_sid)
            next_sid += 4 * data.draw(st.integers(1, 40))
        elif open_:
            sid = data.draw(st.sampled_from(sorted(open_)))
            chunk = data.draw(st.sampled_from([OK, OK + frame(DATA, b"hello"), b"", b"\x21\x00"]))
            end = data.draw(st.booleans())
            assert h3_feed(core, sid, chunk, end, step) == parser.feed(sid, chunk, end, step)
            if sid not in parser.streams:
                open_.discard(sid)
        assert core.inflight == len(open_) == len(parser.streams)
        assert core.oldest_sent_ns() == min((parser.streams[s].sent_ns for s in open_), default=-1)


def test_outcomes_are_recorded_into_worker_stats():
    stats = native.WorkerStats()
    stats.record_from_ns = 0
    core = H3Core(stats, 8)
    for sid in (0, 4, 8, 12, 16):
        core.start(sid, 100, 100)
    assert core.feed(0, OK + frame(DATA, b"hello"), True, 1_000_100) == 0
    assert core.feed(4, hdr((b":status", b"200"), (b"X", b"1")), False, 200) == ref.RC_STREAM_ERROR
    assert core.reset(8, 300) and not core.reset(8, 300)
    core.restamp(500, 0)  # 12 and 16 now count as sent at 500
    assert core.oldest_sent_ns() == 500
    assert core.refuse_from(16, 600) == [16]
    assert core.expire(501, 700) == [12]
    assert core.inflight == 0
    errors = stats.error_counts()
    assert (errors["protocol"], errors["reset"], errors["timeout"]) == (1, 2, 1)
    assert stats.requests == 1 and stats.status_counts() == {"200": 1}

"""Plain-Python reference of native/h3.pyx: HTTP/3 response streams (RFC 9114 frames, RFC 9204
QPACK field sections without a dynamic table) into per-stream outcome events. Written from
the specifications, buffering freely, so the tests can check that the native parser agrees
event for event on any split of the same bytes.

Events are tuples (kind, stream id, status, body bytes, count, time, intended ns, sent ns):
- EV_DONE: a complete response; count = SSE events (-1 if not an event stream), time = arrival
  of the first HEADERS.
- EV_MALFORMED: the response broke RFC 9114 §4.1.2 (a stream error: the session cancels the
  stream with H3_MESSAGE_ERROR); status, count and time are 0.
- EV_OBSERVED: count SSE events completed by one piece of a DATA frame; body bytes so far,
  time = the stream's previous event (-1 before the first), sent ns = now.
EV_RESET and EV_TIMEOUT are the native core's own (a QUIC reset, --timeout), never parsed.

feed() returns (code, events): code 0, RC_STREAM_ERROR after EV_MALFORMED on a stream that has
not ended, RC_UNI for a server-initiated unidirectional stream (not parsed here), or an HTTP/3
or QPACK error code: the connection must be closed with it.
"""

from __future__ import annotations

from fastload.native.stream_events import sse_events
from fastload.workload.qpack import STATIC_TABLE, huffman_decode

EV_DONE = 1
EV_MALFORMED = 2
EV_RESET = 3
EV_TIMEOUT = 4
EV_OBSERVED = 5

RC_OK = 0
RC_STREAM_ERROR = 1
RC_UNI = 2

H3_FRAME_UNEXPECTED = 0x105
H3_FRAME_ERROR = 0x106
H3_ID_ERROR = 0x108
H3_MESSAGE_ERROR = 0x10E
QPACK_DECOMPRESSION_FAILED = 0x200

# A HEADERS frame larger than this is refused as malformed rather than buffered (the same
# bound as the HTTP/2 core's header list).
MAX_FIELD_SECTION = 65536
# Frame types that are errors on a request stream (RFC 9114 §7.2): CANCEL_PUSH, SETTINGS,
# GOAWAY, MAX_PUSH_ID, and the HTTP/2 types with no HTTP/3 meaning.
_UNEXPECTED_ON_REQUEST = {0x2, 0x3, 0x4, 0x6, 0x7, 0x8, 0x9, 0xD}
_PUSH_PROMISE = 0x5
# Connection-specific fields, malformed in HTTP/3 (RFC 9114 §4.2).
_CONNECTION_FIELDS = {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding",
                      b"upgrade"}
# RFC 9110 tchar without uppercase letters: HTTP/3 field names are lowercase.
_NAME_CHARS = frozenset(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz")


class _Malformed(Exception):
    pass


class _ConnectionError(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


def is_event_stream(value: bytes) -> bool:
    return (len(value) >= 17 and value[:17].lower() == b"text/event-stream"
            and (len(value) == 17 or value[17] in b"; \t"))


def read_varint(buf: bytes | bytearray, pos: int) -> tuple[int, int] | None:
    """(value, next position), or None if buf ends inside it."""
    if pos >= len(buf):
        return None
    n = 1 << (buf[pos] >> 6)
    if pos + n > len(buf):
        return None
    return int.from_bytes(buf[pos:pos + n], "big") & ((1 << (8 * n - 2)) - 1), pos + n


def _qint(block: bytes, pos: int, prefix: int) -> tuple[int, int]:
    """A prefix integer; the same limits as the HPACK decoder (at most 2**32 - 1)."""
    if pos >= len(block):
        raise _ConnectionError(QPACK_DECOMPRESSION_FAILED)
    mask = (1 << prefix) - 1
    v = block[pos] & mask
    pos += 1
    if v == mask:
        shift = 0
        while True:
            if pos >= len(block) or shift > 28:
                raise _ConnectionError(QPACK_DECOMPRESSION_FAILED)
            b = block[pos]
            pos += 1
            v += (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        if v > 0xFFFFFFFF:
            raise _ConnectionError(QPACK_DECOMPRESSION_FAILED)
    return v, pos


def _qstring(block: bytes, pos: int, prefix: int) -> tuple[bytes, int]:
    huffman = block[pos] & (1 << prefix)
    n, pos = _qint(block, pos, prefix)
    if pos + n > len(block):
        raise _ConnectionError(QPACK_DECOMPRESSION_FAILED)
    raw = block[pos:pos + n]
    if huffman:
        try:
            raw = huffman_decode(raw)
        except ValueError:
            raise _ConnectionError(QPACK_DECOMPRESSION_FAILED) from None
    return raw, pos + n


def decode_field_section(block: bytes) -> list[tuple[bytes, bytes]]:
    """The fields of a section that may use the static table only (we advertise a dynamic
    table capacity of 0): any dynamic reference is QPACK_DECOMPRESSION_FAILED."""
    ric, pos = _qint(block, 0, 8)
    if ric != 0:
        raise _ConnectionError(QPACK_DECOMPRESSION_FAILED)
    _, pos = _qint(block, pos, 7)  # sign and Delta Base: no meaning without a dynamic table
    fields = []
    while pos < len(block):
        b = block[pos]
        if b & 0x80:  # indexed field line, T = 0x40
            if not b & 0x40:
                raise _ConnectionError(QPACK_DECOMPRESSION_FAILED)
            i, pos = _qint(block, pos, 6)
            if i >= len(STATIC_TABLE):
                raise _ConnectionError(QPACK_DECOMPRESSION_FAILED)
            fields.append(STATIC_TABLE[i])
        elif b & 0x40:  # literal with name reference, T = 0x10
            if not b & 0x10:
                raise _ConnectionError(QPACK_DECOMPRESSION_FAILED)
            i, pos = _qint(block, pos, 4)
            if i >= len(STATIC_TABLE) or pos >= len(block):
                raise _ConnectionError(QPACK_DECOMPRESSION_FAILED)
            value, pos = _qstring(block, pos, 7)
            fields.append((STATIC_TABLE[i][0], value))
        elif b & 0x20:  # literal with literal name, H = 0x08
            name, pos = _qstring(block, pos, 3)
            if pos >= len(block):
                raise _ConnectionError(QPACK_DECOMPRESSION_FAILED)
            value, pos = _qstring(block, pos, 7)
            fields.append((name, value))
        else:  # post-base index or name reference: dynamic
            raise _ConnectionError(QPACK_DECOMPRESSION_FAILED)
    return fields


def _valid_value(value: bytes) -> bool:
    return not (b"\x00" in value or b"\r" in value or b"\n" in value
                or (value and (value[0] in b" \t" or value[-1] in b" \t")))


class _Stream:
    def __init__(self, intended_ns: int, sent_ns: int) -> None:
        self.intended_ns = intended_ns
        self.sent_ns = sent_ns
        self.buf = bytearray()  # frame header / HEADERS payload not yet complete
        self.data_left = 0      # payload bytes still to come of the current DATA frame
        self.skip_left = 0      # of an unknown frame, skipped
        self.phase = 0          # 0: before the final HEADERS, 1: body, 2: after trailers
        self.status = 0
        self.first_ns = 0
        self.content_length = -1
        self.body_bytes = 0
        self.sse: bytearray | None = None
        self.events = 0
        self.last_event_ns = -1


class ResponseParser:
    """The request streams of one connection (client-initiated bidirectional)."""

    def __init__(self, head: bool = False) -> None:
        self.head = head
        self.streams: dict[int, _Stream] = {}

    def start(self, stream_id: int, intended_ns: int, sent_ns: int) -> None:
        self.streams[stream_id] = _Stream(intended_ns, sent_ns)

    def feed(self, stream_id: int, data: bytes, end_stream: bool, now: int
             ) -> tuple[int, list[tuple]]:
        if stream_id & 3 == 3:
            return RC_UNI, []
        s = self.streams.get(stream_id)
        events: list[tuple] = []
        if s is None:  # timed out, reset, or already malformed: the rest is not ours
            return RC_OK, events
        try:
            self._feed(stream_id, s, bytes(data), now, events)
            if end_stream:
                del self.streams[stream_id]
                if s.buf or s.data_left or s.skip_left:
                    raise _ConnectionError(H3_FRAME_ERROR)
                bad_length = (s.content_length >= 0 and s.body_bytes != s.content_length
                              and not (self.head or s.status == 304))
                if s.phase == 0 or bad_length:
                    events.append((EV_MALFORMED, stream_id, 0, s.body_bytes, 0, 0,
                                   s.intended_ns, s.sent_ns))
                else:
                    events.append((EV_DONE, stream_id, s.status, s.body_bytes,
                                   s.events if s.sse is not None else -1, s.first_ns,
                                   s.intended_ns, s.sent_ns))
        except _Malformed:
            del self.streams[stream_id]
            events.append((EV_MALFORMED, stream_id, 0, s.body_bytes, 0, 0, s.intended_ns,
                           s.sent_ns))
            return (RC_OK if end_stream else RC_STREAM_ERROR), events
        except _ConnectionError as e:
            self.streams.pop(stream_id, None)
            return e.code, events
        return RC_OK, events

    def _feed(self, sid: int, s: _Stream, data: bytes, now: int, events: list[tuple]) -> None:
        pos = 0
        while pos < len(data):
            if s.data_left:
                take = min(s.data_left, len(data) - pos)
                piece = data[pos:pos + take]
                pos += take
                s.data_left -= take
                s.body_bytes += take
                if s.sse is not None:
                    before = sse_events(bytes(s.sse))
                    s.sse += piece
                    k = sse_events(bytes(s.sse)) - before
                    if k:
                        events.append((EV_OBSERVED, sid, 0, s.body_bytes, k, s.last_event_ns,
                                       s.intended_ns, now))
                        s.events += k
                        s.last_event_ns = now
                continue
            if s.skip_left:
                take = min(s.skip_left, len(data) - pos)
                pos += take
                s.skip_left -= take
                continue
            s.buf += data[pos:pos + 1]
            pos += 1
            t = read_varint(s.buf, 0)
            if t is None:
                continue
            length = read_varint(s.buf, t[1])
            if length is None:
                continue
            ftype, flen, hdr = t[0], length[0], length[1]
            if ftype == 0x1:
                if s.phase == 2:
                    raise _ConnectionError(H3_FRAME_UNEXPECTED)
                if flen > MAX_FIELD_SECTION:
                    raise _Malformed()
                take = min(hdr + flen - len(s.buf), len(data) - pos)
                s.buf += data[pos:pos + take]
                pos += take
                if len(s.buf) < hdr + flen:
                    continue
                block = bytes(s.buf[hdr:])
                s.buf.clear()
                self._headers(s, decode_field_section(block), now)
                continue
            s.buf.clear()
            if ftype == 0x0:
                if s.phase != 1:
                    raise _ConnectionError(H3_FRAME_UNEXPECTED)
                s.data_left = flen
            elif ftype in _UNEXPECTED_ON_REQUEST:
                raise _ConnectionError(H3_FRAME_UNEXPECTED)
            elif ftype == _PUSH_PROMISE:
                raise _ConnectionError(H3_ID_ERROR)  # we never allow a push (no MAX_PUSH_ID)
            else:
                s.skip_left = flen  # reserved and unknown frame types are ignored

    def _headers(self, s: _Stream, fields: list[tuple[bytes, bytes]], now: int) -> None:
        if s.first_ns == 0:
            s.first_ns = now
        trailers = s.phase == 1
        status = -1
        length = -1
        sse = None
        regular = False
        for name, value in fields:
            if not name:
                raise _Malformed()
            if name[0] == 0x3A:  # ':'
                if trailers or regular or name != b":status" or status != -1:
                    raise _Malformed()
                if len(value) != 3 or not value.isdigit() or not 100 <= int(value) <= 599:
                    raise _Malformed()
                status = int(value)
                continue
            regular = True
            if not set(name) <= _NAME_CHARS or not _valid_value(value):
                raise _Malformed()
            if name in _CONNECTION_FIELDS or (name == b"te" and value != b"trailers"):
                raise _Malformed()
            if trailers:
                continue
            if name == b"content-length":
                if not value.isdigit() or len(value) > 18:
                    raise _Malformed()
                if length != -1 and int(value) != length:
                    raise _Malformed()
                length = int(value)
            elif name == b"content-type" and sse is None:
                sse = is_event_stream(value)
        if trailers:
            s.phase = 2
            return
        if status == -1:
            raise _Malformed()
        if status >= 200:
            s.phase = 1
            s.status = status
            s.content_length = length
            if sse:
                s.sse = bytearray()

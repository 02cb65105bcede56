"""The connection-level side of HTTP/3 for the client (RFC 9114 §6.2, RFC 9204 §4.2): our
control stream's bytes, and the server's unidirectional streams (control, QPACK encoder and
decoder; unknown types ignored). A few events per connection, so plain Python; request
streams are native/h3.pyx's."""

from __future__ import annotations

from fastload.native.h3_events import read_varint
from fastload.workload.qpack import FRAME_SETTINGS, frame, varint

# Stream types (RFC 9114 §6.2, RFC 9204 §4.2).
_CONTROL = 0x0
_PUSH = 0x1
_QPACK_ENCODER = 0x2
_QPACK_DECODER = 0x3
_IGNORED = -1

_GOAWAY = 0x7
# Frames a server must not send on its control stream: DATA, HEADERS, PUSH_PROMISE,
# MAX_PUSH_ID, and the HTTP/2 types with no HTTP/3 meaning.
_NOT_ON_CONTROL = {0x0, 0x1, 0x2, 0x5, 0x6, 0x8, 0x9, 0xD}
# HTTP/2 setting ids reserved in HTTP/3 (RFC 9114 §7.2.4.1).
_H2_SETTINGS = {0x2, 0x3, 0x4, 0x5}

H3_NO_ERROR = 0x100
H3_STREAM_CREATION_ERROR = 0x103
H3_CLOSED_CRITICAL_STREAM = 0x104
H3_FRAME_UNEXPECTED = 0x105
H3_FRAME_ERROR = 0x106
H3_ID_ERROR = 0x108
H3_SETTINGS_ERROR = 0x109
H3_MISSING_SETTINGS = 0x10A
QPACK_ENCODER_STREAM_ERROR = 0x201

SETTINGS_QPACK_MAX_TABLE_CAPACITY = 0x1
SETTINGS_QPACK_BLOCKED_STREAMS = 0x7

# Our control stream: no dynamic table, so the server's encoder may only reference the static
# table and literals, and no stream is ever blocked on QPACK (native/h3.pyx relies on both).
CLIENT_CONTROL_STREAM = varint(_CONTROL) + frame(
    FRAME_SETTINGS, varint(SETTINGS_QPACK_MAX_TABLE_CAPACITY) + varint(0)
    + varint(SETTINGS_QPACK_BLOCKED_STREAMS) + varint(0))


class ServerStreams:
    """The server's unidirectional streams of one connection. feed() returns 0, or the HTTP/3
    or QPACK error code to close the connection with. `goaway` is the last GOAWAY's stream id
    (-1: none): requests on streams from it on will not be processed."""

    def __init__(self) -> None:
        self.kinds: dict[int, int] = {}
        self.bufs: dict[int, bytearray] = {}
        self.opened: set[int] = set()
        self.settings: dict[int, int] | None = None
        self.goaway = -1

    def feed(self, stream_id: int, data: bytes, end_stream: bool) -> int:
        kind = self.kinds.get(stream_id)
        buf = self.bufs.setdefault(stream_id, bytearray())
        buf += data
        if kind is None:
            v = read_varint(buf, 0)
            if v is None:
                return 0  # closed before its type: to be tolerated (RFC 9114 §6.2)
            kind, pos = v
            del buf[:pos]
            if kind == _PUSH:
                return H3_ID_ERROR  # no push without our MAX_PUSH_ID
            if kind in (_CONTROL, _QPACK_ENCODER, _QPACK_DECODER):
                if kind in self.opened:
                    return H3_STREAM_CREATION_ERROR
                self.opened.add(kind)
            else:
                kind = _IGNORED
            self.kinds[stream_id] = kind
        if kind == _IGNORED or kind == _QPACK_DECODER:
            # Decoder instructions are about our dynamic table, which we never use.
            buf.clear()
        elif kind == _QPACK_ENCODER:
            # With a capacity of 0 the only valid instruction is Set Dynamic Table Capacity 0.
            if buf.strip(b"\x20"):
                return QPACK_ENCODER_STREAM_ERROR
            buf.clear()
        else:
            code = self._control(buf)
            if code:
                return code
        if end_stream and kind != _IGNORED:
            return H3_CLOSED_CRITICAL_STREAM
        return 0

    def _control(self, buf: bytearray) -> int:
        while True:
            t = read_varint(buf, 0)
            if t is None:
                return 0
            length = read_varint(buf, t[1])
            if length is None or len(buf) < length[1] + length[0]:
                return 0
            ftype, payload = t[0], bytes(buf[length[1]:length[1] + length[0]])
            del buf[:length[1] + length[0]]
            if self.settings is None:
                if ftype != FRAME_SETTINGS:
                    return H3_MISSING_SETTINGS
                code = self._settings(payload)
                if code:
                    return code
            elif ftype == FRAME_SETTINGS or ftype in _NOT_ON_CONTROL:
                return H3_FRAME_UNEXPECTED
            elif ftype == _GOAWAY:
                v = read_varint(payload, 0)
                if v is None or v[1] != len(payload):
                    return H3_FRAME_ERROR
                if self.goaway >= 0 and v[0] > self.goaway:
                    return H3_ID_ERROR  # a GOAWAY may only lower the limit
                self.goaway = v[0]
            # CANCEL_PUSH (we allow no push), reserved and unknown types: nothing to do.

    def _settings(self, payload: bytes) -> int:
        settings: dict[int, int] = {}
        pos = 0
        while pos < len(payload):
            k = read_varint(payload, pos)
            v = read_varint(payload, k[1]) if k is not None else None
            if k is None or v is None:
                return H3_FRAME_ERROR
            if k[0] in _H2_SETTINGS or k[0] in settings:
                return H3_SETTINGS_ERROR
            settings[k[0]] = v[0]
            pos = v[1]
        self.settings = settings
        return 0

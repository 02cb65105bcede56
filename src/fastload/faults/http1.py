"""HTTP/1.1 message boundaries in a byte stream (RFC 9112 section 6), for the proxy's
http_status fault: where each request and response starts and ends, nothing more.

Sans-I/O: feed() takes the bytes of one read and returns events whose offsets point into them, so
the proxy forwards what it received without copying it. Only a head that is still incomplete is
held back (the proxy decides per request, when its head is known, whether to forward it).
Anything this framer does not understand turns it opaque: from then on the stream is one body
and the proxy forwards it untouched and injects nothing into it.
"""

from __future__ import annotations

from collections import deque
from typing import NamedTuple

HEAD, DATA, END = 0, 1, 2
_LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _TRAILER, _UNTIL_CLOSE, _OPAQUE = range(1, 7)
MAX_HEAD = 65536  # bytes of a head, as nginx's large_client_header_buffers allows (4 x 8k ~ 32k)
MAX_LINE = 4096  # a chunk-size or trailer line


class Head(NamedTuple):
    method: str  # requests; "" for responses
    status: int  # responses; 0 for requests
    keep_alive: bool
    interim: bool  # a 1xx response other than 101: the final response follows


class Event(NamedTuple):
    kind: int  # HEAD, DATA or END
    start: int  # offsets into the bytes given to feed()
    end: int
    head: Head | None = None  # HEAD only
    carry: bytes = b""  # HEAD only: the head's first bytes, held from earlier reads


class Framer:
    """One direction. `request=True` frames requests; otherwise responses, whose framing depends
    on the method of the request they answer (a HEAD's has no body): the caller appends each
    forwarded request's method to `methods`, and each final response takes the first."""

    def __init__(self, request: bool):
        self.request = request
        self.methods: deque[str] = deque()
        self.state = 0  # 0: expecting a head
        self.left = 0
        self.buf = bytearray()
        self.opaque = False

    def to_opaque(self) -> None:
        self.state = _OPAQUE
        self.opaque = True
        self.buf.clear()

    def feed(self, data: bytes) -> list[Event]:
        events: list[Event] = []
        pos, n = 0, len(data)
        while pos < n:
            st = self.state
            if st == _OPAQUE or st == _UNTIL_CLOSE:
                events.append(Event(DATA, pos, n))
                return events
            if st == 0:
                pos = self._head(data, pos, events)
                if pos < 0:  # incomplete head, held in buf
                    return events
            elif st == _LENGTH or st == _CHUNK_DATA:
                take = min(self.left, n - pos)
                events.append(Event(DATA, pos, pos + take))
                pos += take
                self.left -= take
                if self.left == 0:
                    if st == _LENGTH:
                        events.append(Event(END, pos, pos))
                        self.state = 0
                    else:
                        self.state, self.left = _CHUNK_SIZE, -2  # its CRLF, then the next size
            else:  # _CHUNK_SIZE or _TRAILER: lines
                pos = self._line(data, pos, events)
        return events

    def _head(self, data: bytes, pos: int, events: list[Event]) -> int:
        carry = b""
        if self.buf:
            carry = bytes(self.buf)
            joined = carry + data[pos:]
            idx = joined.find(b"\r\n\r\n", max(0, len(carry) - 3))
            if idx < 0:
                self.buf += data[pos:]
                if len(self.buf) > MAX_HEAD:
                    self._fail(events, carry, pos, len(data))
                return -1
            end = pos + idx + 4 - len(carry)
            head = joined[:idx + 4]
            self.buf.clear()
        else:
            idx = data.find(b"\r\n\r\n", pos)
            if idx < 0:
                self.buf += data[pos:]
                if len(self.buf) > MAX_HEAD:
                    self._fail(events, b"", pos, len(data))
                return -1
            end = idx + 4
            head = data[pos:end]
        try:
            info, body = self._parse(head)
        except ValueError:
            self._fail(events, carry, pos, len(data))
            return len(data)
        events.append(Event(HEAD, pos, end, info, carry))
        if body == -1:
            self.state = _CHUNK_SIZE
        elif body == -2:
            self.state = _UNTIL_CLOSE
        elif body == -3:
            self.to_opaque()
        elif body > 0:
            self.state, self.left = _LENGTH, body
        else:
            events.append(Event(END, end, end))
        return end

    def _fail(self, events: list[Event], carry: bytes, start: int, end: int) -> None:
        # What was held back goes out as it came, with a HEAD of None-like meaning: not framed.
        events.append(Event(HEAD, start, end, None, carry))
        self.to_opaque()

    def _line(self, data: bytes, pos: int, events: list[Event]) -> int:
        if self.left == -2:  # the CRLF after a chunk's data
            need = min(2 - len(self.buf), len(data) - pos)
            self.buf += data[pos:pos + need]
            events.append(Event(DATA, pos, pos + need))
            if len(self.buf) < 2:
                return pos + need
            ok = self.buf == b"\r\n"
            self.buf.clear()
            self.left = 0
            if not ok:
                self.to_opaque()
            return pos + need
        idx = data.find(b"\n", pos)
        stop = len(data) if idx < 0 else idx + 1
        events.append(Event(DATA, pos, stop))
        self.buf += data[pos:stop]
        if idx < 0:
            if len(self.buf) > MAX_LINE:
                self.to_opaque()
            return stop
        line = bytes(self.buf).rstrip(b"\r\n")
        self.buf.clear()
        if self.state == _TRAILER:
            if not line:
                events.append(Event(END, stop, stop))
                self.state = 0
            return stop
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            self.to_opaque()
            return stop
        if size == 0:
            self.state = _TRAILER
        else:
            self.state, self.left = _CHUNK_DATA, size
        return stop

    def _parse(self, head: bytes) -> tuple[Head, int]:
        """(the head, body: >=0 a length, -1 chunked, -2 until close, -3 opaque after the head)."""
        lines = head.lstrip(b"\r\n").split(b"\r\n")
        first = lines[0].decode("latin-1")
        length = chunked = None
        conn = ""
        for raw in lines[1:]:
            if not raw:
                continue
            name, sep, value = raw.partition(b":")
            if not sep or name != name.strip():
                raise ValueError("bad header line")
            key = name.lower()
            if key == b"content-length":
                if length is not None or not value.strip().isdigit():
                    raise ValueError("bad or repeated content-length")
                length = int(value)
            elif key == b"transfer-encoding":
                chunked = value.strip().lower().endswith(b"chunked")
                if not chunked:
                    raise ValueError("a transfer coding that is not chunked")
            elif key == b"connection":
                conn += value.decode("latin-1").lower()
        if self.request:
            method, target, version = first.split(" ")
            if method == "PRI" and version == "HTTP/2.0":
                raise ValueError("the HTTP/2 preface")
            if version not in ("HTTP/1.1", "HTTP/1.0") or not method or not target:
                raise ValueError("not an HTTP/1.x request line")
            keep = "close" not in conn if version == "HTTP/1.1" else "keep-alive" in conn
            body = -1 if chunked else (length or 0)
            return Head(method, 0, keep, False), body
        version, _, rest = first.partition(" ")
        if not version.startswith("HTTP/1.") or len(rest) < 3 or not rest[:3].isdigit():
            raise ValueError("not an HTTP/1.x status line")
        status = int(rest[:3])
        keep = "close" not in conn if version == "HTTP/1.1" else "keep-alive" in conn
        method = self.methods[0] if self.methods else "GET"  # unasked: framed as for a GET
        if not 100 <= status < 200 and self.methods:
            self.methods.popleft()
        if status == 101 or (method == "CONNECT" and 200 <= status < 300):
            return Head("", status, keep, False), -3  # a tunnel: no more HTTP/1.1
        if 100 <= status < 200:
            return Head("", status, keep, True), 0
        if method == "HEAD" or status in (204, 304):
            return Head("", status, keep, False), 0
        if chunked:
            return Head("", status, keep, False), -1
        if length is not None:
            return Head("", status, keep, False), length
        return Head("", status, False, False), -2

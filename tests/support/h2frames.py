"""Raw HTTP/2 frames and request header blocks for driving H2ClientCore by hand."""

import struct

import hpack

from fastload.native.h2 import F_SETTINGS

REQUEST_HEADERS = [
    (b":method", b"GET"),
    (b":scheme", b"http"),
    (b":authority", b"localhost"),
    (b":path", b"/index.html"),
    (b"user-agent", b"fastload"),
]


def request_block(headers=REQUEST_HEADERS):
    """A stateless block: literals without indexing never touch the peer's dynamic table."""
    enc = hpack.Encoder()
    return enc.encode([hpack.NeverIndexedHeaderTuple(n, v) for n, v in headers])


def frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", sid) + payload


SETTINGS_EMPTY = frame(F_SETTINGS, 0, 0)

"""HTTP/3 request framing with a stateless QPACK (RFC 9204) field section, and the QPACK static
table the native response parser builds its tables from.

Like workload/hpack.py: every field section built here uses only the static table and
literals (Required Insert Count 0), so one pre-encoded request stays valid on every stream of
every connection and needs no encoder stream. Runs once per run, so it is plain Python.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastload.workload.hpack import HUFFMAN_CODES

__all__ = ["STATIC_TABLE", "encode_field_section", "encode_request", "frame", "huffman_decode",
           "varint"]

# HTTP/3 frame types (RFC 9114 §7.2).
FRAME_DATA = 0x0
FRAME_HEADERS = 0x1
FRAME_SETTINGS = 0x4

# RFC 9204 Appendix A; index i on the wire (0-based, unlike HPACK).
STATIC_TABLE: tuple[tuple[bytes, bytes], ...] = (
    (b':authority', b''),
    (b':path', b'/'),
    (b'age', b'0'),
    (b'content-disposition', b''),
    (b'content-length', b'0'),
    (b'cookie', b''),
    (b'date', b''),
    (b'etag', b''),
    (b'if-modified-since', b''),
    (b'if-none-match', b''),
    (b'last-modified', b''),
    (b'link', b''),
    (b'location', b''),
    (b'referer', b''),
    (b'set-cookie', b''),
    (b':method', b'CONNECT'),
    (b':method', b'DELETE'),
    (b':method', b'GET'),
    (b':method', b'HEAD'),
    (b':method', b'OPTIONS'),
    (b':method', b'POST'),
    (b':method', b'PUT'),
    (b':scheme', b'http'),
    (b':scheme', b'https'),
    (b':status', b'103'),
    (b':status', b'200'),
    (b':status', b'304'),
    (b':status', b'404'),
    (b':status', b'503'),
    (b'accept', b'*/*'),
    (b'accept', b'application/dns-message'),
    (b'accept-encoding', b'gzip, deflate, br'),
    (b'accept-ranges', b'bytes'),
    (b'access-control-allow-headers', b'cache-control'),
    (b'access-control-allow-headers', b'content-type'),
    (b'access-control-allow-origin', b'*'),
    (b'cache-control', b'max-age=0'),
    (b'cache-control', b'max-age=2592000'),
    (b'cache-control', b'max-age=604800'),
    (b'cache-control', b'no-cache'),
    (b'cache-control', b'no-store'),
    (b'cache-control', b'public, max-age=31536000'),
    (b'content-encoding', b'br'),
    (b'content-encoding', b'gzip'),
    (b'content-type', b'application/dns-message'),
    (b'content-type', b'application/javascript'),
    (b'content-type', b'application/json'),
    (b'content-type', b'application/x-www-form-urlencoded'),
    (b'content-type', b'image/gif'),
    (b'content-type', b'image/jpeg'),
    (b'content-type', b'image/png'),
    (b'content-type', b'text/css'),
    (b'content-type', b'text/html; charset=utf-8'),
    (b'content-type', b'text/plain'),
    (b'content-type', b'text/plain;charset=utf-8'),
    (b'range', b'bytes=0-'),
    (b'strict-transport-security', b'max-age=31536000'),
    (b'strict-transport-security', b'max-age=31536000; includesubdomains'),
    (b'strict-transport-security', b'max-age=31536000; includesubdomains; preload'),
    (b'vary', b'accept-encoding'),
    (b'vary', b'origin'),
    (b'x-content-type-options', b'nosniff'),
    (b'x-xss-protection', b'1; mode=block'),
    (b':status', b'100'),
    (b':status', b'204'),
    (b':status', b'206'),
    (b':status', b'302'),
    (b':status', b'400'),
    (b':status', b'403'),
    (b':status', b'421'),
    (b':status', b'425'),
    (b':status', b'500'),
    (b'accept-language', b''),
    (b'access-control-allow-credentials', b'FALSE'),
    (b'access-control-allow-credentials', b'TRUE'),
    (b'access-control-allow-headers', b'*'),
    (b'access-control-allow-methods', b'get'),
    (b'access-control-allow-methods', b'get, post, options'),
    (b'access-control-allow-methods', b'options'),
    (b'access-control-expose-headers', b'content-length'),
    (b'access-control-request-headers', b'content-type'),
    (b'access-control-request-method', b'get'),
    (b'access-control-request-method', b'post'),
    (b'alt-svc', b'clear'),
    (b'authorization', b''),
    (b'content-security-policy', b"script-src 'none'; object-src 'none'; base-uri 'none'"),
    (b'early-data', b'1'),
    (b'expect-ct', b''),
    (b'forwarded', b''),
    (b'if-range', b''),
    (b'origin', b''),
    (b'purpose', b'prefetch'),
    (b'server', b''),
    (b'timing-allow-origin', b'*'),
    (b'upgrade-insecure-requests', b'1'),
    (b'user-agent', b''),
    (b'x-forwarded-for', b''),
    (b'x-frame-options', b'deny'),
    (b'x-frame-options', b'sameorigin'),
)

_BY_FIELD = {field: i for i, field in reversed(list(enumerate(STATIC_TABLE)))}
_BY_NAME = {name: i for i, (name, _) in reversed(list(enumerate(STATIC_TABLE)))}


def varint(v: int) -> bytes:
    """A QUIC variable-length integer (RFC 9000 §16), in its shortest form."""
    if v < 0x40:
        return bytes([v])
    if v < 0x4000:
        return (v | 0x4000).to_bytes(2, "big")
    if v < 0x40000000:
        return (v | 0x80000000).to_bytes(4, "big")
    if v < 0x4000000000000000:
        return (v | 0xC000000000000000).to_bytes(8, "big")
    raise ValueError(f"{v} does not fit a QUIC varint")


def frame(frame_type: int, payload: bytes) -> bytes:
    return varint(frame_type) + varint(len(payload)) + payload


def _int(out: bytearray, first: int, prefix: int, v: int) -> None:
    """A QPACK/HPACK prefix integer; first holds the bits above the prefix."""
    mask = (1 << prefix) - 1
    if v < mask:
        out.append(first | v)
        return
    out.append(first | mask)
    v -= mask
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)


def encode_field_section(headers: Sequence[tuple[bytes, bytes]]) -> bytes:
    """A field section that references the static table only, strings without Huffman (the
    block is encoded once; a few bytes saved per request would not pay for the clarity)."""
    out = bytearray(b"\x00\x00")  # Required Insert Count 0, Delta Base 0
    for name, value in headers:
        i = _BY_FIELD.get((name, value))
        if i is not None:  # indexed field line, static: 11xxxxxx
            _int(out, 0xC0, 6, i)
            continue
        i = _BY_NAME.get(name)
        if i is not None:  # literal with static name reference: 01N1xxxx
            _int(out, 0x50, 4, i)
        else:  # literal with literal name: 001N0xxx
            _int(out, 0x20, 3, len(name))
            out += name
        _int(out, 0x00, 7, len(value))
        out += value
    return bytes(out)


def encode_request(headers: Sequence[tuple[bytes, bytes]], body: bytes) -> bytes:
    """The bytes of a whole request stream: HEADERS, then DATA if there is a body."""
    out = frame(FRAME_HEADERS, encode_field_section(headers))
    if body:
        out += frame(FRAME_DATA, body)
    return out


_HUFFMAN_BY_CODE = {(length, code): sym for sym, (code, length) in enumerate(HUFFMAN_CODES)}


def huffman_decode(data: bytes) -> bytes:
    """RFC 7541 Appendix B decoding, bit by bit (the reference; the native parser uses
    native/hpack.pyx's automaton). ValueError on EOS, or padding longer than 7 bits or not
    all ones."""
    out = bytearray()
    code = length = 0
    for byte in data:
        for k in range(7, -1, -1):
            code = (code << 1) | ((byte >> k) & 1)
            length += 1
            sym = _HUFFMAN_BY_CODE.get((length, code))
            if sym is not None:
                if sym == 256:
                    raise ValueError("EOS in a Huffman string")
                out.append(sym)
                code = length = 0
            elif length > 30:
                raise ValueError("invalid Huffman code")
    if length > 7 or code != (1 << length) - 1:
        raise ValueError("invalid Huffman padding")
    return bytes(out)

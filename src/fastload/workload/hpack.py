"""Stateless HPACK (RFC 7541) block encoder for request templates.

A load generator sends the same header block on every stream of a connection. Blocks built
here never insert into (or reference) the peer's dynamic table, so one pre-encoded block stays
valid for the whole connection regardless of what other streams did. Runs once per run, so it
is plain Python; the tables below are also the source the native decoder builds its tables from.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["STATIC_TABLE", "HUFFMAN_CODES", "encode_block", "huffman_encode"]

# RFC 7541 Appendix A; index i + 1 on the wire.
STATIC_TABLE: tuple[tuple[bytes, bytes], ...] = (
    (b':authority', b''),
    (b':method', b'GET'),
    (b':method', b'POST'),
    (b':path', b'/'),
    (b':path', b'/index.html'),
    (b':scheme', b'http'),
    (b':scheme', b'https'),
    (b':status', b'200'),
    (b':status', b'204'),
    (b':status', b'206'),
    (b':status', b'304'),
    (b':status', b'400'),
    (b':status', b'404'),
    (b':status', b'500'),
    (b'accept-charset', b''),
    (b'accept-encoding', b'gzip, deflate'),
    (b'accept-language', b''),
    (b'accept-ranges', b''),
    (b'accept', b''),
    (b'access-control-allow-origin', b''),
    (b'age', b''),
    (b'allow', b''),
    (b'authorization', b''),
    (b'cache-control', b''),
    (b'content-disposition', b''),
    (b'content-encoding', b''),
    (b'content-language', b''),
    (b'content-length', b''),
    (b'content-location', b''),
    (b'content-range', b''),
    (b'content-type', b''),
    (b'cookie', b''),
    (b'date', b''),
    (b'etag', b''),
    (b'expect', b''),
    (b'expires', b''),
    (b'from', b''),
    (b'host', b''),
    (b'if-match', b''),
    (b'if-modified-since', b''),
    (b'if-none-match', b''),
    (b'if-range', b''),
    (b'if-unmodified-since', b''),
    (b'last-modified', b''),
    (b'link', b''),
    (b'location', b''),
    (b'max-forwards', b''),
    (b'proxy-authenticate', b''),
    (b'proxy-authorization', b''),
    (b'range', b''),
    (b'referer', b''),
    (b'refresh', b''),
    (b'retry-after', b''),
    (b'server', b''),
    (b'set-cookie', b''),
    (b'strict-transport-security', b''),
    (b'transfer-encoding', b''),
    (b'user-agent', b''),
    (b'vary', b''),
    (b'via', b''),
    (b'www-authenticate', b''),
)

# RFC 7541 Appendix B: (code, bit length) per symbol; symbol 256 is EOS.
HUFFMAN_CODES: tuple[tuple[int, int], ...] = (
    (0x1ff8, 13), (0x7fffd8, 23), (0xfffffe2, 28), (0xfffffe3, 28), (0xfffffe4, 28),
    (0xfffffe5, 28), (0xfffffe6, 28), (0xfffffe7, 28), (0xfffffe8, 28), (0xffffea, 24),
    (0x3ffffffc, 30), (0xfffffe9, 28), (0xfffffea, 28), (0x3ffffffd, 30), (0xfffffeb, 28),
    (0xfffffec, 28), (0xfffffed, 28), (0xfffffee, 28), (0xfffffef, 28), (0xffffff0, 28),
    (0xffffff1, 28), (0xffffff2, 28), (0x3ffffffe, 30), (0xffffff3, 28), (0xffffff4, 28),
    (0xffffff5, 28), (0xffffff6, 28), (0xffffff7, 28), (0xffffff8, 28), (0xffffff9, 28),
    (0xffffffa, 28), (0xffffffb, 28), (0x14, 6), (0x3f8, 10), (0x3f9, 10), (0xffa, 12),
    (0x1ff9, 13), (0x15, 6), (0xf8, 8), (0x7fa, 11), (0x3fa, 10), (0x3fb, 10), (0xf9, 8),
    (0x7fb, 11), (0xfa, 8), (0x16, 6), (0x17, 6), (0x18, 6), (0x0, 5), (0x1, 5), (0x2, 5),
    (0x19, 6), (0x1a, 6), (0x1b, 6), (0x1c, 6), (0x1d, 6), (0x1e, 6), (0x1f, 6), (0x5c, 7),
    (0xfb, 8), (0x7ffc, 15), (0x20, 6), (0xffb, 12), (0x3fc, 10), (0x1ffa, 13), (0x21, 6),
    (0x5d, 7), (0x5e, 7), (0x5f, 7), (0x60, 7), (0x61, 7), (0x62, 7), (0x63, 7), (0x64, 7),
    (0x65, 7), (0x66, 7), (0x67, 7), (0x68, 7), (0x69, 7), (0x6a, 7), (0x6b, 7), (0x6c, 7),
    (0x6d, 7), (0x6e, 7), (0x6f, 7), (0x70, 7), (0x71, 7), (0x72, 7), (0xfc, 8), (0x73, 7),
    (0xfd, 8), (0x1ffb, 13), (0x7fff0, 19), (0x1ffc, 13), (0x3ffc, 14), (0x22, 6), (0x7ffd, 15),
    (0x3, 5), (0x23, 6), (0x4, 5), (0x24, 6), (0x5, 5), (0x25, 6), (0x26, 6), (0x27, 6), (0x6, 5),
    (0x74, 7), (0x75, 7), (0x28, 6), (0x29, 6), (0x2a, 6), (0x7, 5), (0x2b, 6), (0x76, 7),
    (0x2c, 6), (0x8, 5), (0x9, 5), (0x2d, 6), (0x77, 7), (0x78, 7), (0x79, 7), (0x7a, 7),
    (0x7b, 7), (0x7ffe, 15), (0x7fc, 11), (0x3ffd, 14), (0x1ffd, 13), (0xffffffc, 28),
    (0xfffe6, 20), (0x3fffd2, 22), (0xfffe7, 20), (0xfffe8, 20), (0x3fffd3, 22), (0x3fffd4, 22),
    (0x3fffd5, 22), (0x7fffd9, 23), (0x3fffd6, 22), (0x7fffda, 23), (0x7fffdb, 23),
    (0x7fffdc, 23), (0x7fffdd, 23), (0x7fffde, 23), (0xffffeb, 24), (0x7fffdf, 23),
    (0xffffec, 24), (0xffffed, 24), (0x3fffd7, 22), (0x7fffe0, 23), (0xffffee, 24),
    (0x7fffe1, 23), (0x7fffe2, 23), (0x7fffe3, 23), (0x7fffe4, 23), (0x1fffdc, 21),
    (0x3fffd8, 22), (0x7fffe5, 23), (0x3fffd9, 22), (0x7fffe6, 23), (0x7fffe7, 23),
    (0xffffef, 24), (0x3fffda, 22), (0x1fffdd, 21), (0xfffe9, 20), (0x3fffdb, 22), (0x3fffdc, 22),
    (0x7fffe8, 23), (0x7fffe9, 23), (0x1fffde, 21), (0x7fffea, 23), (0x3fffdd, 22),
    (0x3fffde, 22), (0xfffff0, 24), (0x1fffdf, 21), (0x3fffdf, 22), (0x7fffeb, 23),
    (0x7fffec, 23), (0x1fffe0, 21), (0x1fffe1, 21), (0x3fffe0, 22), (0x1fffe2, 21),
    (0x7fffed, 23), (0x3fffe1, 22), (0x7fffee, 23), (0x7fffef, 23), (0xfffea, 20), (0x3fffe2, 22),
    (0x3fffe3, 22), (0x3fffe4, 22), (0x7ffff0, 23), (0x3fffe5, 22), (0x3fffe6, 22),
    (0x7ffff1, 23), (0x3ffffe0, 26), (0x3ffffe1, 26), (0xfffeb, 20), (0x7fff1, 19),
    (0x3fffe7, 22), (0x7ffff2, 23), (0x3fffe8, 22), (0x1ffffec, 25), (0x3ffffe2, 26),
    (0x3ffffe3, 26), (0x3ffffe4, 26), (0x7ffffde, 27), (0x7ffffdf, 27), (0x3ffffe5, 26),
    (0xfffff1, 24), (0x1ffffed, 25), (0x7fff2, 19), (0x1fffe3, 21), (0x3ffffe6, 26),
    (0x7ffffe0, 27), (0x7ffffe1, 27), (0x3ffffe7, 26), (0x7ffffe2, 27), (0xfffff2, 24),
    (0x1fffe4, 21), (0x1fffe5, 21), (0x3ffffe8, 26), (0x3ffffe9, 26), (0xffffffd, 28),
    (0x7ffffe3, 27), (0x7ffffe4, 27), (0x7ffffe5, 27), (0xfffec, 20), (0xfffff3, 24),
    (0xfffed, 20), (0x1fffe6, 21), (0x3fffe9, 22), (0x1fffe7, 21), (0x1fffe8, 21), (0x7ffff3, 23),
    (0x3fffea, 22), (0x3fffeb, 22), (0x1ffffee, 25), (0x1ffffef, 25), (0xfffff4, 24),
    (0xfffff5, 24), (0x3ffffea, 26), (0x7ffff4, 23), (0x3ffffeb, 26), (0x7ffffe6, 27),
    (0x3ffffec, 26), (0x3ffffed, 26), (0x7ffffe7, 27), (0x7ffffe8, 27), (0x7ffffe9, 27),
    (0x7ffffea, 27), (0x7ffffeb, 27), (0xffffffe, 28), (0x7ffffec, 27), (0x7ffffed, 27),
    (0x7ffffee, 27), (0x7ffffef, 27), (0x7fffff0, 27), (0x3ffffee, 26), (0x3fffffff, 30),
)


_STATIC_EXACT: dict[tuple[bytes, bytes], int] = {}
_STATIC_NAME: dict[bytes, int] = {}
for _i, (_n, _v) in enumerate(STATIC_TABLE, 1):
    _STATIC_EXACT.setdefault((_n, _v), _i)
    _STATIC_NAME.setdefault(_n, _i)


def huffman_encode(data: bytes) -> bytes:
    """Huffman-encodes data with the RFC 7541 Appendix B code, padded with EOS-prefix 1 bits."""
    acc = 0
    nbits = 0
    codes = HUFFMAN_CODES
    for byte in data:
        code, length = codes[byte]
        acc = (acc << length) | code
        nbits += length
    pad = -nbits % 8
    acc = (acc << pad) | ((1 << pad) - 1)
    return acc.to_bytes((nbits + pad) // 8, "big")


def _encode_int(value: int, prefix_bits: int, flags: int) -> bytearray:
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytearray((flags | value,))
    out = bytearray((flags | limit,))
    value -= limit
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return out


def _encode_str(data: bytes, huffman: bool) -> bytearray:
    if huffman:
        encoded = huffman_encode(data)
        if len(encoded) < len(data):
            return _encode_int(len(encoded), 7, 0x80) + encoded
    return _encode_int(len(data), 7, 0) + data


def encode_block(headers: Sequence[tuple[bytes, bytes]], huffman: bool = True) -> bytes:
    """Encodes headers using only static-table indexing and literals without indexing.

    Raises ValueError for a name with uppercase letters: HTTP/2 requires lowercase names and a
    peer would reset every stream that carries one.
    """
    out = bytearray()
    for name, value in headers:
        name = bytes(name)
        value = bytes(value)
        if name != name.lower():
            raise ValueError(f"HTTP/2 header names must be lowercase: {name!r}")
        exact = _STATIC_EXACT.get((name, value))
        if exact is not None:
            out += _encode_int(exact, 7, 0x80)
            continue
        name_index = _STATIC_NAME.get(name)
        if name_index is not None:
            out += _encode_int(name_index, 4, 0x00)
        else:
            out.append(0x00)
            out += _encode_str(name, huffman)
        out += _encode_str(value, huffman)
    return bytes(out)


# The dynamic table a peer's decoder starts with (SETTINGS_HEADER_TABLE_SIZE default).
DEFAULT_TABLE_SIZE = 4096


def encode_session_blocks(headers: Sequence[tuple[bytes, bytes]], table_budget: int = DEFAULT_TABLE_SIZE,
                          huffman: bool = True) -> tuple[bytes, bytes, int]:
    """Blocks for a connection that repeats the same request: (first, steady, table_bytes).

    `first` inserts every field that is not an exact static entry into the peer's dynamic
    table (literal with incremental indexing); `steady` then names each field with one index
    byte, so the server decodes no strings per request. Only fields that fit in
    `table_budget` (RFC 7541 size: name + value + 32) are inserted; the rest stay literals
    without indexing in both blocks. `table_bytes` is the table space the first block uses:
    if the peer announces a smaller table, the caller must fall back to encode_block().
    """
    first = bytearray()
    steady = bytearray()
    inserted: list[int] = []  # position in `steady` parts of each inserted field
    parts: list[bytes | int] = []  # bytes, or the insertion ordinal of a dynamic reference
    used = 0
    for name, value in headers:
        name = bytes(name)
        value = bytes(value)
        if name != name.lower():
            raise ValueError(f"HTTP/2 header names must be lowercase: {name!r}")
        exact = _STATIC_EXACT.get((name, value))
        if exact is not None:
            b = bytes(_encode_int(exact, 7, 0x80))
            first += b
            parts.append(b)
            continue
        size = len(name) + len(value) + 32
        name_index = _STATIC_NAME.get(name)
        if used + size <= table_budget:
            # Literal with incremental indexing (6-bit prefix, 01xxxxxx).
            if name_index is not None:
                first += _encode_int(name_index, 6, 0x40)
            else:
                first.append(0x40)
                first += _encode_str(name, huffman)
            first += _encode_str(value, huffman)
            parts.append(len(inserted))
            inserted.append(size)
            used += size
        else:
            b = bytearray(_encode_int(name_index, 4, 0x00) if name_index is not None else b"\x00")
            if name_index is None:
                b += _encode_str(name, huffman)
            b += _encode_str(value, huffman)
            first += b
            parts.append(bytes(b))
    k = len(inserted)
    for part in parts:
        if isinstance(part, int):
            # The newest entry is index 62; entries inserted earlier sit further down.
            steady += _encode_int(62 + (k - 1 - part), 7, 0x80)
        else:
            steady += part
    return bytes(first), bytes(steady), used


def size_update(new_size: int) -> bytes:
    """A dynamic table size update (001xxxxx), to start a block after the peer shrank its table."""
    return bytes(_encode_int(new_size, 5, 0x20))

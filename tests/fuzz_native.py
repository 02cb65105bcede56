"""libFuzzer (atheris) harness for the native parsers: arbitrary bytes, cut at arbitrary points,
must never crash, hang or raise anything but ProtocolError.

    python tests/fuzz_native.py h1|hpack|h2|h3 -runs=20000
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from fastload import native
    from fastload.errors import ProtocolError
    from fastload.native.testing import H2TestCore, h3_feed
    from fastload.workload.hpack import encode_block


def fuzz_h1(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    parser = native.H1ResponseParser()
    parser.expect_no_body = fdp.ConsumeBool()
    rest = fdp.ConsumeBytes(fdp.remaining_bytes())
    cut = len(rest) // 2
    try:
        parser.feed_py(rest[:cut])
        parser.feed_py(rest[cut:])
        parser.eof_py()
    except ProtocolError:
        pass


def fuzz_hpack(data: bytes) -> None:
    dec = native.HpackDecoder()
    for block in data.split(b"\xfe\xfe")[:8]:  # several blocks share the dynamic table
        try:
            dec.decode_py(block)
        except ProtocolError:
            return


PREFACE_SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
BLOCK = encode_block([(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"x"), (b":path", b"/")])


def fuzz_h2(data: bytes) -> None:
    core = H2TestCore(BLOCK, b"", 8)
    core.start_py()
    for _ in range(4):
        core.submit_py(1)
    cut = len(data) // 3
    for piece in (PREFACE_SETTINGS + data[:cut], data[cut:]):
        core.receive_py(piece)


def fuzz_h3(data: bytes) -> None:
    # Request streams 0, 4, 8, 12 (a stream table of 8 slots), fed pieces in turn: a byte
    # picks the stream and whether the piece ends it, the next one its length.
    core = native.H3Core(None, 4)
    for sid in (0, 4, 8, 12):
        core.start(sid, 1, 1)
    pos = 0
    while pos + 2 <= len(data):
        sid, end, n = (data[pos] & 3) * 4, bool(data[pos] & 4), data[pos + 1]
        h3_feed(core, sid, data[pos + 2:pos + 2 + n], end, pos)
        pos += 2 + n


TARGETS = {"h1": fuzz_h1, "hpack": fuzz_hpack, "h2": fuzz_h2, "h3": fuzz_h3}

if __name__ == "__main__":
    target = TARGETS[sys.argv[1]]
    atheris.Setup([sys.argv[0]] + sys.argv[2:], target)
    atheris.Fuzz()

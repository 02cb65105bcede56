"""libFuzzer (atheris) harness for the native parsers: arbitrary bytes, cut at arbitrary points,
must never crash, hang or raise anything but ProtocolError.

    python tests/fuzz_native.py h1|hpack|h2 -runs=20000
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from fastload import native
    from fastload.errors import ProtocolError
    from fastload.native.testing import H2TestCore
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


TARGETS = {"h1": fuzz_h1, "hpack": fuzz_hpack, "h2": fuzz_h2}

if __name__ == "__main__":
    target = TARGETS[sys.argv[1]]
    atheris.Setup([sys.argv[0]] + sys.argv[2:], target)
    atheris.Fuzz()

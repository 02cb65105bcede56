"""Plain-Python references for the native event scanners in native/stream.pyx: what counts as one
event of a streamed response. Written from the specifications over whole byte strings, so the
tests can check that the byte-at-a-time C machines agree on any split of the stream."""

from __future__ import annotations

import re

_LINE_END = re.compile(rb"\r\n|\r|\n")
_BOM = b"\xef\xbb\xbf"


def sse_events(stream: bytes) -> int:
    """Events dispatched by this prefix of a text/event-stream body (WHATWG HTML, 9.2.6):
    a blank line dispatches an event when a "data" field came since the last one."""
    if stream.startswith(_BOM):
        stream = stream[len(_BOM):]
    lines = _LINE_END.split(stream)
    events = 0
    has_data = False
    # The last piece has no line end yet: it is not a line.
    for line in lines[:-1]:
        if not line:
            if has_data:
                events += 1
            has_data = False
        elif line.startswith(b":"):
            continue
        elif line.partition(b":")[0] == b"data":
            has_data = True
    return events


def grpc_messages(stream: bytes) -> int:
    """Complete gRPC length-prefixed messages in this prefix of a response body."""
    n = 0
    off = 0
    while off + 5 <= len(stream):
        length = int.from_bytes(stream[off + 1:off + 5], "big")
        if off + 5 + length > len(stream):
            break
        n += 1
        off += 5 + length
    return n

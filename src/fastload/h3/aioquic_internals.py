"""Every use of aioquic's private internals, in one place. Each one has a test
(tests/test_h3_internals.py) that fails loudly on an aioquic version that changed it, and
pyproject.toml pins the aioquic versions these were checked against.

- h3.connection.validate_header_name/validate_header_value: replaced by caching wrappers.
- H3Connection._check_content_length: overridden (HEAD and 304 responses).
- QuicConnection._ack_delay: set to 0 (ACKs ride with the next requests).
- QuicConnection._remote_max_streams_bidi: read (the server's MAX_STREAMS).
- QuicConnection._close_event: read by the session (a decided close, before its event).
"""

from __future__ import annotations

from typing import Any

from aioquic.h3 import connection as h3c
from aioquic.h3.connection import H3Connection
from aioquic.quic.connection import QuicConnection


def cache_header_checks() -> None:
    """Remembers the header names and values aioquic has already found valid.

    aioquic checks every response header byte by byte in Python (validate_header_name/value,
    RFC 9113 §8.2.1): about a tenth of the client's CPU per request, spent re-checking the
    same few fields on every response. Both checks are pure functions (raise or not) of their
    input, so a name or value that passed once passes again; anything new still goes through
    aioquic's own check, so malformed headers are reported exactly as before. Bounded: the
    sets start over past a few thousand entries (Date changes every second)."""
    if getattr(h3c.validate_header_name, "_fastload_cached", False):
        return
    check_name, check_value = h3c.validate_header_name, h3c.validate_header_value
    names: set[bytes] = set()
    values: set[bytes] = set()

    def validate_header_name(key: bytes) -> None:
        if key not in names:
            check_name(key)
            if len(names) > 4096:
                names.clear()
            names.add(key)

    def validate_header_value(key: bytes, value: bytes) -> None:
        # The check looks at the value only; the name is only used in the error message.
        if value not in values:
            check_value(key, value)
            if len(values) > 4096:
                values.clear()
            values.add(value)

    validate_header_name._fastload_cached = True  # type: ignore[attr-defined]
    h3c.validate_header_name = validate_header_name
    h3c.validate_header_value = validate_header_value


class ClientH3(H3Connection):
    """aioquic's H3Connection, except that a response body whose size differs from its
    Content-Length is noted for the session to judge instead of closing the connection:
    responses to HEAD and 304 responses announce a length they do not carry (RFC 9110 §8.6),
    which aioquic would reject as malformed."""

    def __init__(self, quic: QuicConnection) -> None:
        super().__init__(quic)
        self.length_mismatch: set[int] = set()

    def _check_content_length(self, stream: Any) -> None:
        if (stream.expected_content_length is not None
                and stream.content_length != stream.expected_content_length):
            self.length_mismatch.add(stream.stream_id)


def ack_at_once(quic: QuicConnection) -> None:
    """aioquic holds each ACK back 1 ms, so it misses the requests sent right after a read and
    goes out alone on a timer: one more datagram and timer wake-up per read on both sides.
    ACKing at once instead lets it ride with the next requests (datagrams go out once per read
    burst, see H3Session.datagram_received). Without the attribute aioquic keeps its default
    and everything still works, only with more packets."""
    if hasattr(quic, "_ack_delay"):
        quic._ack_delay = 0.0


def remote_max_streams_bidi(quic: QuicConnection) -> int:
    """The server's MAX_STREAMS for bidirectional streams (a running total): past it aioquic
    would queue a new stream unsent while its request's clock runs. Without the attribute,
    no limit is seen and aioquic's queueing applies."""
    return getattr(quic, "_remote_max_streams_bidi", 1 << 62)

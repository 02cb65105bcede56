"""Every use of aioquic's private internals, in one place. Each one has a test
(tests/test_h3_internals.py) that fails loudly on an aioquic version that changed it, and
pyproject.toml pins the aioquic versions these were checked against.

- QuicConnection._ack_delay: set to 0 (ACKs ride with the next requests).
- QuicConnection._remote_max_streams_bidi: read (the server's MAX_STREAMS).
- QuicConnection._close_event: read by the session (a decided close, before its event).
"""

from __future__ import annotations

from aioquic.quic.connection import QuicConnection


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

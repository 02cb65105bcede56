"""The QUIC libraries the HTTP/3 session can run on (`--h3-backend`), behind one set of names:
aioquic (pure Python, the reference) and qh3 (an aioquic-like API over a native packet core).
Only their QUIC layer is used: HTTP/3 itself is fastload's (native/h3.pyx, h3/control.py).
Each is imported only when a run picks it."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from fastload.config.plan import H3_BACKENDS as BACKENDS
from fastload.errors import UsageError


@dataclass(frozen=True)
class Backend:
    name: str
    version: str
    H3_ALPN: list[str]
    QuicConfiguration: Any
    QuicConnection: Any
    StreamDataReceived: Any
    StreamReset: Any
    HandshakeCompleted: Any
    ConnectionTerminated: Any
    prepare: Callable[[Any], None]  # per new QuicConnection: library-specific settings
    # How many bidirectional streams the server allows in all (its MAX_STREAMS): past it a
    # library queues (aioquic) or refuses (qh3) a new stream.
    max_streams_bidi: Callable[[Any], int]


def check(name: str) -> str:
    """The backend name, refused (exit 2) if unknown or not installed."""
    if name not in BACKENDS:
        raise UsageError(f"--h3-backend: {name!r} must be one of {', '.join(BACKENDS)}")
    try:
        importlib.import_module(name)
    except ImportError:
        raise UsageError(f"--h3-backend {name}: not installed (pip install {name})") from None
    return name


@cache
def load(name: str) -> Backend:
    if name == "aioquic":
        return _aioquic()
    if name == "qh3":
        return _qh3()
    raise UsageError(f"--h3-backend: {name!r} must be one of {', '.join(BACKENDS)}")


def _aioquic() -> Backend:
    import aioquic
    from aioquic.h3.connection import H3_ALPN
    from aioquic.quic.configuration import QuicConfiguration
    from aioquic.quic.connection import QuicConnection
    from aioquic.quic.events import (
        ConnectionTerminated,
        HandshakeCompleted,
        StreamDataReceived,
        StreamReset,
    )

    from fastload.h3.aioquic_internals import ack_at_once, remote_max_streams_bidi

    return Backend("aioquic", aioquic.__version__, H3_ALPN, QuicConfiguration, QuicConnection,
                   StreamDataReceived, StreamReset, HandshakeCompleted, ConnectionTerminated,
                   ack_at_once, remote_max_streams_bidi)


def _qh3() -> Backend:
    import qh3
    from qh3.h3.connection import H3_ALPN
    from qh3.quic.configuration import QuicConfiguration
    from qh3.quic.connection import QuicConnection
    from qh3.quic.events import (
        ConnectionTerminated,
        HandshakeCompleted,
        StreamDataReceived,
        StreamReset,
    )

    return Backend("qh3", qh3.__version__, H3_ALPN, QuicConfiguration, QuicConnection,
                   StreamDataReceived, StreamReset, HandshakeCompleted, ConnectionTerminated,
                   lambda quic: None, lambda quic: quic.max_concurrent_bidi_streams)

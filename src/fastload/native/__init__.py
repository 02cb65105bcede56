"""The native hot path, one extension module per unit (each .pyx has a .pxd that the others
cimport): HDR histogram (hdr), body event scanners (stream), HTTP/1.1 parser (h1), HPACK
decoder (hpack), HTTP/2 client core (h2), HTTP/3 request streams (h3), request variants and
checks (mix), arrival schedule (schedule), per-worker counters (stats), the uvloop protocols
(sessions), their TLS twins (tls: OpenSSL records in the core, where built), Python-callable
recording (recorder), and test/bench entry points (testing).

Python code imports the native core through this module only.
"""

from fastload.native.clock import monotonic_ns
from fastload.native.h1 import MAX_HEADER_BYTES, H1ResponseParser, is_event_stream
from fastload.native.h2 import H2ClientCore
from fastload.native.h3 import H3_MESSAGE_ERROR, H3_RC_STREAM_ERROR, H3_RC_UNI, H3Core
from fastload.native.hdr import Histogram
from fastload.native.hpack import HpackDecoder
from fastload.native.mix import RequestMix
from fastload.native.outcomes import (
    ERROR_CHECK,
    ERROR_CHECK_ERROR,
    ERROR_CLASS_NAMES,
    ERROR_CONNECT,
    ERROR_PROTOCOL,
    ERROR_RESET,
    ERROR_TIMEOUT,
    MAX_STATUS,
)
from fastload.native.recorder import Recorder
from fastload.native.schedule import Schedule
from fastload.native.sessions import READ_BUFFER_SIZE, H1Session, H2Session, WriteBatch, _Session
from fastload.native.stats import WorkerStats
from fastload.native.stream import StreamScanner

try:
    # Built only where OpenSSL's headers were (setup.py); the engine then uses uvloop's TLS.
    from fastload.native.tls import MemoryTlsClient, TlsContext, TlsH1Session, TlsH2Session
except ImportError:  # pragma: no cover - exercised by installs without libssl-dev
    MemoryTlsClient = TlsContext = TlsH1Session = TlsH2Session = None  # type: ignore[assignment,misc]

__all__ = [
    "ERROR_CHECK",
    "ERROR_CHECK_ERROR",
    "ERROR_CLASS_NAMES",
    "ERROR_CONNECT",
    "ERROR_PROTOCOL",
    "ERROR_RESET",
    "ERROR_TIMEOUT",
    "MAX_HEADER_BYTES",
    "MAX_STATUS",
    "READ_BUFFER_SIZE",
    "H1ResponseParser",
    "H1Session",
    "H2ClientCore",
    "H2Session",
    "H3Core",
    "H3_MESSAGE_ERROR",
    "H3_RC_STREAM_ERROR",
    "H3_RC_UNI",
    "Histogram",
    "HpackDecoder",
    "Recorder",
    "RequestMix",
    "Schedule",
    "StreamScanner",
    "MemoryTlsClient",
    "TlsContext",
    "TlsH1Session",
    "TlsH2Session",
    "WorkerStats",
    "WriteBatch",
    "_Session",
    "is_event_stream",
    "monotonic_ns",
]

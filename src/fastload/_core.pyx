# cython: language_level=3
"""The native hot path: HDR histogram, HTTP/1.1 response parser, HPACK decoder, HTTP/2 client
core, and the connection protocols that drive them.

Everything in here works on C types. The parsers are sans-I/O (bytes in, state/events out);
only the session classes at the end touch a transport.
"""

from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

from fastload.errors import ProtocolError


cdef inline int64_t now_ns() noexcept nogil:
    """CLOCK_MONOTONIC in ns: the clock of time.monotonic_ns(), shared by all processes."""
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <int64_t>ts.tv_sec * 1000000000 + ts.tv_nsec


include "_hdr.pxi"
include "_stream.pxi"
include "_h1.pxi"
include "_hpack.pxi"
include "_h2.pxi"
include "_scenario.pxi"
include "_session.pxi"

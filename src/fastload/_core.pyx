# cython: language_level=3
"""The native hot path: HDR histogram, HTTP/1.1 response parser, HPACK decoder, HTTP/2 client
core, and the connection protocols that drive them.

Everything in here works on C types. The parsers are sans-I/O (bytes in, state/events out);
only the session classes at the end touch a transport.
"""

from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t

include "_hdr.pxi"
include "_h1.pxi"
include "_hpack.pxi"
include "_h2.pxi"
include "_session.pxi"

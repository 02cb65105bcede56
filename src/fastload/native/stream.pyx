# Event boundaries inside response bodies, for streaming metrics (time to first event, gaps
# between events, events per response). Byte-level state machines over C structs: the HTTP/1.1
# parser and the HTTP/2 core run them on body bytes as they arrive, with no copy and no Python
# object. Their plain-Python twins are in fastload/stream_events.py.
#
# CONTRACT:
#   SseScan: a text/event-stream body (WHATWG HTML, "event stream interpretation"). An event is
#     dispatched by a blank line after at least one "data" field; lines end in CRLF, LF or CR;
#     comments (":...") and other fields alone dispatch nothing; one leading UTF-8 BOM is skipped.
#     sse_feed(&scan, p, n) -> number of events dispatched by these bytes.
#   GrpcScan: gRPC length-prefixed messages (1 flag byte, 4-byte big-endian length, payload).
#     grpc_feed(&scan, p, n) -> number of messages whose last byte is in these bytes.
#   Both accept any split of the byte stream and give the same counts.
#   The structs and the reset functions are in stream.pxd (callers embed and inline them).

from libc.stdint cimport int64_t, uint8_t


cdef const char* SSE_DATA = b"data"
cdef const uint8_t* SSE_BOM = <const uint8_t*>b"\xef\xbb\xbf"


cdef int64_t sse_feed(SseScan* s, const uint8_t* p, Py_ssize_t n) noexcept nogil:
    cdef int64_t events = 0
    cdef Py_ssize_t i = 0
    cdef uint8_t c
    while i < n and s.bom_pos >= 0:
        # The BOM is only skipped when the whole of it opens the stream; a partial match means
        # those bytes were ordinary line content and are replayed through the line machine.
        if p[i] == SSE_BOM[s.bom_pos]:
            s.bom_pos += 1
            i += 1
            if s.bom_pos == 3:
                s.bom_pos = -1
            continue
        if s.bom_pos > 0:
            events += _sse_bytes(s, SSE_BOM, s.bom_pos)
        s.bom_pos = -1
    while i < n:
        c = p[i]
        i += 1
        if c == 10 and s.last_cr:
            s.last_cr = False
            continue
        s.last_cr = c == 13
        if c == 10 or c == 13:
            if s.line_pos == 0:
                if s.has_data:
                    events += 1
                    s.has_data = False
            elif s.line_pos == 4 and s.matching:
                s.has_data = True   # "data" alone: a data field with an empty value
            s.line_pos = 0
            s.matching = True
            continue
        if s.line_pos < 4:
            if c != <uint8_t>SSE_DATA[s.line_pos]:
                s.matching = False
            s.line_pos += 1
        elif s.line_pos == 4:
            if s.matching and c == 58:  # "data:"
                s.has_data = True
            s.matching = False
            s.line_pos = 5
    return events


cdef int64_t _sse_bytes(SseScan* s, const uint8_t* p, Py_ssize_t n) noexcept nogil:
    # Line bytes that looked like the start of a BOM (the BOM state is already settled).
    cdef int saved = s.bom_pos
    cdef int64_t e
    s.bom_pos = -1
    e = sse_feed(s, p, n)
    s.bom_pos = saved
    return e


cdef int64_t grpc_feed(GrpcScan* g, const uint8_t* p, Py_ssize_t n) noexcept nogil:
    cdef int64_t messages = 0
    cdef Py_ssize_t i = 0, take
    while i < n:
        if g.hdr_pos < 5:
            if g.hdr_pos > 0:
                g.length = (g.length << 8) | p[i]
            g.hdr_pos += 1
            i += 1
            if g.hdr_pos == 5:
                g.remaining = g.length
                if g.remaining == 0:
                    messages += 1
                    g.hdr_pos = 0
                    g.length = 0
            continue
        take = n - i
        if take > g.remaining:
            take = <Py_ssize_t>g.remaining
        g.remaining -= take
        i += take
        if g.remaining == 0:
            messages += 1
            g.hdr_pos = 0
            g.length = 0
    return messages


cdef class StreamScanner:
    """Python access to the scanners (tests, tools): kind is "sse" or "grpc"."""
    cdef SseScan sse
    cdef GrpcScan grpc
    cdef bint is_grpc

    def __cinit__(self, str kind="sse"):
        if kind not in ("sse", "grpc"):
            raise ValueError("kind must be 'sse' or 'grpc'")
        self.is_grpc = kind == "grpc"
        sse_reset(&self.sse)
        grpc_reset(&self.grpc)

    def feed(self, bytes data):
        """Events (or messages) completed by these bytes."""
        cdef const uint8_t* p = data
        if self.is_grpc:
            return grpc_feed(&self.grpc, p, len(data))
        return sse_feed(&self.sse, p, len(data))

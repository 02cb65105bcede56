from libc.stdint cimport int64_t, uint8_t, uint32_t


ctypedef struct SseScan:
    int line_pos        # bytes of the current line seen, capped at 5
    bint matching       # the line so far is a prefix of "data"
    bint has_data       # a data field since the last dispatch
    bint last_cr        # previous byte was CR: a following LF ends nothing
    int bom_pos         # BOM bytes matched at the start of the stream; -1 once past it


ctypedef struct GrpcScan:
    int hdr_pos         # prefix bytes seen of the current message (0..5)
    uint32_t length     # its length, accumulated from the prefix
    int64_t remaining   # payload bytes still to come


cdef inline void sse_reset(SseScan* s) noexcept nogil:
    s.line_pos = 0
    s.matching = True
    s.has_data = False
    s.last_cr = False
    s.bom_pos = 0


cdef inline void grpc_reset(GrpcScan* g) noexcept nogil:
    g.hdr_pos = 0
    g.length = 0
    g.remaining = 0


cdef int64_t sse_feed(SseScan* s, const uint8_t* p, Py_ssize_t n) noexcept nogil
cdef int64_t grpc_feed(GrpcScan* g, const uint8_t* p, Py_ssize_t n) noexcept nogil

from libc.stdint cimport int64_t, uint8_t

from fastload.native.stream cimport SseScan


# H1ResponseParser.error codes (error_msg() describes them).
cpdef enum:
    H1_ERR_STATUS_LINE = 1
    H1_ERR_HEADER = 2
    H1_ERR_TOO_LARGE = 3
    H1_ERR_CONTENT_LENGTH = 4
    H1_ERR_CHUNK = 5
    H1_ERR_TRUNCATED = 6

cpdef enum:
    MAX_HEADER_BYTES = 65536   # a larger response header section is H1_ERR_TOO_LARGE


cdef inline uint8_t lower(uint8_t c) noexcept nogil:
    return c + 32 if 65 <= c <= 90 else c


cdef inline bint ci_equal(const uint8_t* p, const char* lowercase, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t k
    for k in range(n):
        if lower(p[k]) != <uint8_t>lowercase[k]:
            return False
    return True


cdef inline bint event_stream_type(const uint8_t* v, Py_ssize_t n) noexcept nogil:
    """A Content-Type value (without leading whitespace) that is text/event-stream, with or
    without parameters: the response's events are SSE events. HTTP/1.1, HTTP/2 and HTTP/3
    all decide by this one rule."""
    return (n >= 17 and ci_equal(v, b"text/event-stream", 17)
            and (n == 17 or v[17] == 59 or v[17] == 32 or v[17] == 9))


cdef class H1ResponseParser:
    cdef public int status
    cdef public int64_t body_bytes
    cdef public bint keep_alive
    cdef public bint complete
    cdef public int error
    cdef public bint expect_no_body
    cdef public int64_t events
    cdef public int64_t done_events
    cdef public bint done_streaming

    cdef int state
    cdef int minor
    cdef int major
    cdef int idx                 # position inside a literal ("HTTP/") or a header name
    cdef int cand                # candidate header names still matching
    cdef int hdr                 # header whose value is being read (0: ignored)
    cdef int64_t header_bytes
    cdef int64_t content_length  # -1: none
    cdef int64_t cl_value
    cdef bint cl_digits
    cdef bint cl_done            # trailing whitespace seen after the digits
    cdef bint chunked
    cdef bint has_te
    cdef bint conn_close
    cdef bint conn_keep_alive
    # token matcher for Transfer-Encoding / Connection values
    cdef int tok_len
    cdef bint tok_ws             # whitespace after the token: only ',' or more whitespace may follow
    cdef int tok_match           # bit 1: "chunked", 2: "close", 4: "keep-alive" still possible
    cdef int64_t remaining
    cdef int64_t chunk_size
    cdef bint chunk_digits
    cdef bint sse                # Content-Type: text/event-stream
    cdef int ct_pos
    cdef bint ct_match
    cdef SseScan sse_scan

    cpdef reset(self)
    cdef inline void start_response(self) noexcept
    cdef inline Py_ssize_t fail(self, int code) noexcept
    cdef inline void tok_reset(self) noexcept
    cdef inline void tok_char(self, uint8_t c) noexcept
    cdef inline void tok_end(self) noexcept
    cdef inline int end_value(self) noexcept
    cdef inline int start_value(self) noexcept
    cdef inline Py_ssize_t headers_done(self, Py_ssize_t consumed) noexcept
    cdef inline Py_ssize_t finish(self, Py_ssize_t consumed) noexcept
    cdef inline int value_byte(self, uint8_t c) noexcept
    cdef void ct_byte(self, uint8_t c) noexcept
    cdef inline int header_line(self, const uint8_t* p, const uint8_t* lf) noexcept
    cdef inline bint status_line(self, const uint8_t* p, Py_ssize_t avail) noexcept
    cdef Py_ssize_t feed(self, const uint8_t* data, Py_ssize_t n) noexcept
    cdef inline void chunk_line_done(self) noexcept
    cdef inline void match_name(self, uint8_t c) noexcept
    cdef int feed_eof(self) noexcept

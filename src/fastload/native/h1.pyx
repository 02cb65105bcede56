# HTTP/1.1 response parser: incremental, sans-I/O, no Python objects per response.
#
# CONTRACT:
# cdef class H1ResponseParser:
#     cdef public int status            # status code of the response completed by the last feed()
#     cdef public int64_t body_bytes    # body length of that response (decoded, for chunked)
#     cdef public bint keep_alive       # connection may carry another response after it
#     cdef public bint complete         # feed() finished a response in this call
#     cdef public int error             # 0 or an H1_ERR_* code; error_msg() describes it
#     cdef public bint expect_no_body   # set by the caller before a HEAD response
#     cdef public int64_t events        # stream events so far in the response being parsed:
#                                       # SSE events for text/event-stream, else chunks if chunked
#     cdef public int64_t done_events   # events of the response completed by the last feed()
#     cdef public bint done_streaming   # it was a stream (text/event-stream or chunked)
#     cdef Py_ssize_t feed(self, const uint8_t* data, Py_ssize_t n) noexcept
#         parses at most ONE response; returns bytes consumed (0..n) or -1 on a protocol error.
#         The caller loops: while n: c = feed(p, n); if complete: handle; p += c; n -= c.
#         Any split of the byte stream gives the same result: a byte-level state machine that
#         never looks back, so nothing is buffered or rescanned.
#     cdef int feed_eof(self) noexcept
#         1: a read-until-close body completes now (complete is set); 0: nothing in progress;
#         -1: EOF truncated a response (error set).
#     def feed_py(self, bytes data) -> list[tuple[int, int, bool]]  # (status, body_bytes, keep_alive)
#     def eof_py(self) -> tuple | None

from libc.stdint cimport int64_t, uint8_t
from libc.string cimport memchr, memcmp

from fastload.errors import ProtocolError
from fastload.native.stream cimport sse_feed, sse_reset

H1_ERR_MESSAGES = {
    H1_ERR_STATUS_LINE: "malformed status line",
    H1_ERR_HEADER: "malformed header line",
    H1_ERR_TOO_LARGE: "response header section larger than 64 KiB",
    H1_ERR_CONTENT_LENGTH: "invalid or conflicting Content-Length",
    H1_ERR_CHUNK: "malformed chunked encoding",
    H1_ERR_TRUNCATED: "connection closed before the response was complete",
}

cdef extern from *:
    """
    #define FASTLOAD_H1_MAX_CHUNK_SIZE 0x7FFFFFFFFFFFFFFLL
    """
    # 60 bits: overflow-safe for hex accumulation (an int64, so not an enum).
    const int64_t MAX_CHUNK_SIZE "FASTLOAD_H1_MAX_CHUNK_SIZE"

# States
cdef enum:
    S_START = 0          # before the status line (tolerates stray CR/LF)
    S_VER = 1            # inside "HTTP/"
    S_VER_MAJOR = 2
    S_VER_DOT = 3
    S_VER_MINOR = 4
    S_VER_SP = 5
    S_STATUS = 6
    S_STATUS_END = 7     # after 3 digits: SP or end of line
    S_REASON = 8
    S_LINE_LF = 9        # saw CR at the end of the status line
    S_HDR_START = 10
    S_HDR_NAME = 11
    S_HDR_VALUE_WS = 12
    S_HDR_VALUE = 13
    S_HDR_LF = 14
    S_HDRS_END_LF = 15
    S_BODY_CL = 16
    S_BODY_EOF = 17
    S_CHUNK_SIZE = 18
    S_CHUNK_SIZE_WS = 19
    S_CHUNK_EXT = 20
    S_CHUNK_SIZE_LF = 21
    S_CHUNK_DATA = 22
    S_CHUNK_DATA_CR = 23
    S_CHUNK_DATA_LF = 24
    S_TRAILER_START = 25
    S_TRAILER_LINE = 26
    S_TRAILER_END_LF = 27

# Header names we act on; bit flags of candidates while matching a name.
cdef enum:
    STEP_BYTES = -2      # _line_step: leave this line to the byte-level machine

cdef enum:
    HN_CL = 1      # content-length
    HN_TE = 2      # transfer-encoding
    HN_CONN = 4    # connection
    HN_CT = 8      # content-type

cdef const char* NAME_CL = b"content-length"
cdef const char* NAME_TE = b"transfer-encoding"
cdef const char* NAME_CONN = b"connection"
cdef const char* NAME_CT = b"content-type"
cdef const char* LIT_SSE = b"text/event-stream"
cdef const char* LIT_HTTP = b"HTTP/"
cdef const char* LIT_CHUNKED = b"chunked"
cdef const char* LIT_CLOSE = b"close"
cdef const char* LIT_KEEP_ALIVE = b"keep-alive"

# token characters (RFC 9110 tchar)
cdef bint TCHAR[256]


cdef void _init_tchar():
    cdef int c
    for c in range(256):
        TCHAR[c] = (48 <= c <= 57) or (65 <= c <= 90) or (97 <= c <= 122) or \
            c in (33, 35, 36, 37, 38, 39, 42, 43, 45, 46, 94, 95, 96, 124, 126)


_init_tchar()


def is_event_stream(bytes content_type):
    """event_stream_type() for the Python sessions (HTTP/3)."""
    return event_stream_type(<const uint8_t*>(<char*>content_type), len(content_type))


# The steps of H1ResponseParser.feed(): each consumes from data[i] on and returns where parsing
# goes on, or -1 on an error (error set); a step that completes a response sets complete and
# returns the bytes it consumed. Module functions rather than methods: methods declared in
# h1.pxd are also vtable entries, and GCC then keeps the large ones out of line.

cdef inline Py_ssize_t _body_step(H1ResponseParser self, int st, const uint8_t* data,
                                  Py_ssize_t i, Py_ssize_t n) noexcept:
    """Body bytes, taken as a run: Content-Length, a chunk's data, or read-until-close."""
    cdef Py_ssize_t take = n - i
    if st == S_BODY_EOF:
        self.body_bytes += take
        if self.sse:
            self.events += sse_feed(&self.sse_scan, data + i, take)
        return n
    if take > self.remaining:
        take = self.remaining
    self.remaining -= take
    self.body_bytes += take
    if self.sse:
        self.events += sse_feed(&self.sse_scan, data + i, take)
    i += take
    if self.remaining == 0:
        if st == S_BODY_CL:
            return self.finish(i)
        self.state = S_CHUNK_DATA_CR
        if not self.sse:
            self.events += 1   # a chunk is the unit of a plain chunked stream
    return i

cdef inline Py_ssize_t _line_step(H1ResponseParser self, int st, const uint8_t* data,
                                  Py_ssize_t i, Py_ssize_t n) noexcept:
    """A whole status or header line in the buffer (the usual case), parsed at once;
    STEP_BYTES when the byte-level machine must take it (partial line, CR/LF, unusual
    status line: it also produces the precise error)."""
    cdef const uint8_t* nl
    cdef uint8_t c = data[i]
    cdef int rc
    if c == 13 or c == 10:
        return STEP_BYTES
    nl = <const uint8_t*>memchr(data + i, 10, n - i)
    if nl == NULL or self.header_bytes + (nl - (data + i)) + 1 > MAX_HEADER_BYTES:
        return STEP_BYTES
    if st == S_HDR_START:
        rc = self.header_line(data + i, nl)
        if rc:
            return self.fail(rc)
    elif not self.status_line(data + i, nl - (data + i) + 1):
        return STEP_BYTES
    self.header_bytes += (nl - (data + i)) + 1
    self.state = S_HDR_START
    return (nl - data) + 1

cdef inline Py_ssize_t _byte_step(H1ResponseParser self, int st, const uint8_t* data,
                                  Py_ssize_t i, Py_ssize_t n) noexcept:
    """One byte of the status line or the header section; or the chunked framing, which
    _chunk_framing takes as a run."""
    cdef uint8_t c
    if st > S_HDRS_END_LF:
        return _chunk_framing(self, data, i, n)
    c = data[i]
    i += 1
    self.header_bytes += 1
    if self.header_bytes > MAX_HEADER_BYTES:
        return self.fail(H1_ERR_TOO_LARGE)
    if st <= S_LINE_LF:
        return _status_byte(self, st, c, data, i, n)
    return _header_byte(self, st, c, data, i, n)

cdef inline Py_ssize_t _status_byte(H1ResponseParser self, int st, uint8_t c,
                                    const uint8_t* data, Py_ssize_t i, Py_ssize_t n) noexcept:
    cdef const uint8_t* nl
    if st == S_START:
        if c == 13 or c == 10:
            self.header_bytes -= 1
            return i
        if c != 72:  # 'H'
            return self.fail(H1_ERR_STATUS_LINE)
        self.idx = 1
        self.state = S_VER
    elif st == S_VER:
        if c != <uint8_t>LIT_HTTP[self.idx]:
            return self.fail(H1_ERR_STATUS_LINE)
        self.idx += 1
        if self.idx == 5:
            self.state = S_VER_MAJOR
    elif st == S_VER_MAJOR:
        if not (48 <= c <= 57):
            return self.fail(H1_ERR_STATUS_LINE)
        self.major = c - 48
        self.state = S_VER_DOT
    elif st == S_VER_DOT:
        if c != 46:
            return self.fail(H1_ERR_STATUS_LINE)
        self.state = S_VER_MINOR
    elif st == S_VER_MINOR:
        if not (48 <= c <= 57):
            return self.fail(H1_ERR_STATUS_LINE)
        self.minor = c - 48
        if self.major != 1:
            return self.fail(H1_ERR_STATUS_LINE)
        self.state = S_VER_SP
        self.idx = 0
    elif st == S_VER_SP:
        if c != 32:
            return self.fail(H1_ERR_STATUS_LINE)
        self.state = S_STATUS
        self.status = 0
        self.idx = 0
    elif st == S_STATUS:
        if not (48 <= c <= 57):
            return self.fail(H1_ERR_STATUS_LINE)
        self.status = self.status * 10 + (c - 48)
        self.idx += 1
        if self.idx == 3:
            if self.status < 100:
                return self.fail(H1_ERR_STATUS_LINE)
            self.state = S_STATUS_END
    elif st == S_STATUS_END:
        if c == 32:
            self.state = S_REASON
        elif c == 13:
            self.state = S_LINE_LF
        elif c == 10:
            self.state = S_HDR_START
        else:
            return self.fail(H1_ERR_STATUS_LINE)
    elif st == S_REASON:
        # The reason phrase carries nothing we need: jump to the end of the line.
        nl = <const uint8_t*>memchr(data + i - 1, 10, n - i + 1)
        if nl == NULL:
            self.header_bytes += n - i
            if self.header_bytes > MAX_HEADER_BYTES:
                return self.fail(H1_ERR_TOO_LARGE)
            return n
        self.header_bytes += (nl - (data + i - 1))
        if self.header_bytes > MAX_HEADER_BYTES:
            return self.fail(H1_ERR_TOO_LARGE)
        self.state = S_HDR_START
        return (nl - data) + 1
    else:  # S_LINE_LF
        if c != 10:
            return self.fail(H1_ERR_STATUS_LINE)
        self.state = S_HDR_START
    return i

cdef inline Py_ssize_t _header_byte(H1ResponseParser self, int st, uint8_t c,
                                    const uint8_t* data, Py_ssize_t i, Py_ssize_t n) noexcept:
    cdef const uint8_t* nl
    cdef int rc
    if st == S_HDR_START:
        if c == 13:
            self.state = S_HDRS_END_LF
        elif c == 10:
            return self.headers_done(i)
        elif TCHAR[c]:
            self.state = S_HDR_NAME
            self.cand = HN_CL | HN_TE | HN_CONN | HN_CT
            self.idx = 0
            self.match_name(c)
        else:
            # Includes obs-fold (a line starting with whitespace), obsolete since RFC 7230.
            return self.fail(H1_ERR_HEADER)
    elif st == S_HDR_NAME:
        if c == 58:  # ':'
            self.hdr = 0
            if (self.cand & HN_CL) and self.idx == 14:
                self.hdr = HN_CL
            elif (self.cand & HN_TE) and self.idx == 17:
                self.hdr = HN_TE
            elif (self.cand & HN_CONN) and self.idx == 10:
                self.hdr = HN_CONN
            elif (self.cand & HN_CT) and self.idx == 12:
                self.hdr = HN_CT
            self.start_value()
            self.state = S_HDR_VALUE_WS
        elif TCHAR[c]:
            self.match_name(c)
        else:
            return self.fail(H1_ERR_HEADER)
    elif st == S_HDR_VALUE_WS or st == S_HDR_VALUE:
        if c == 13:
            self.state = S_HDR_LF
            return i
        if c == 10:
            rc = self.end_value()
            if rc:
                return self.fail(rc)
            self.state = S_HDR_START
            return i
        if st == S_HDR_VALUE_WS and (c == 32 or c == 9):
            return i
        self.state = S_HDR_VALUE
        if self.hdr == 0:
            # Uninteresting value: skip to the line end in one scan.
            nl = <const uint8_t*>memchr(data + i - 1, 10, n - i + 1)
            if nl == NULL:
                self.header_bytes += n - i
                if self.header_bytes > MAX_HEADER_BYTES:
                    return self.fail(H1_ERR_TOO_LARGE)
                return n
            self.header_bytes += (nl - (data + i - 1))
            if self.header_bytes > MAX_HEADER_BYTES:
                return self.fail(H1_ERR_TOO_LARGE)
            self.header_bytes -= 1
            return nl - data   # the LF itself is handled by the next step
        if self.hdr == HN_CT:
            if c == 0:
                return self.fail(H1_ERR_HEADER)
            self.ct_byte(c)
            return i
        rc = self.value_byte(c)
        if rc:
            return self.fail(rc)
    elif st == S_HDR_LF:
        if c != 10:
            return self.fail(H1_ERR_HEADER)
        rc = self.end_value()
        if rc:
            return self.fail(rc)
        self.state = S_HDR_START
    else:  # S_HDRS_END_LF
        if c != 10:
            return self.fail(H1_ERR_HEADER)
        return self.headers_done(i)
    return i

cdef inline Py_ssize_t _chunk_framing(H1ResponseParser self, const uint8_t* data, Py_ssize_t i,
                                      Py_ssize_t n) noexcept:
    """The chunked framing around chunk data (size lines, CRLF after the data) and the
    trailer section, byte by byte until a chunk's data starts or the response ends."""
    cdef uint8_t c
    cdef int st
    while i < n:
        st = self.state
        if st == S_CHUNK_DATA:
            return i
        c = data[i]
        i += 1
        if st >= S_TRAILER_START:
            self.header_bytes += 1
            if self.header_bytes > MAX_HEADER_BYTES:
                return self.fail(H1_ERR_TOO_LARGE)
        if st == S_CHUNK_SIZE:
            if 48 <= c <= 57 or 97 <= c <= 102 or 65 <= c <= 70:
                if self.chunk_size > (MAX_CHUNK_SIZE >> 4):
                    return self.fail(H1_ERR_CHUNK)
                self.chunk_size = (self.chunk_size << 4) + (
                    c - 48 if c <= 57 else (c - 87 if c >= 97 else c - 55))
                self.chunk_digits = True
            elif not self.chunk_digits:
                return self.fail(H1_ERR_CHUNK)
            elif c == 59:  # ';' chunk extension
                self.state = S_CHUNK_EXT
            elif c == 32 or c == 9:
                self.state = S_CHUNK_SIZE_WS
            elif c == 13:
                self.state = S_CHUNK_SIZE_LF
            elif c == 10:
                self.chunk_line_done()
            else:
                return self.fail(H1_ERR_CHUNK)
        elif st == S_CHUNK_SIZE_WS:
            if c == 59:
                self.state = S_CHUNK_EXT
            elif c == 13:
                self.state = S_CHUNK_SIZE_LF
            elif c == 10:
                self.chunk_line_done()
            elif c != 32 and c != 9:
                return self.fail(H1_ERR_CHUNK)
        elif st == S_CHUNK_EXT:
            if c == 13:
                self.state = S_CHUNK_SIZE_LF
            elif c == 10:
                self.chunk_line_done()
        elif st == S_CHUNK_SIZE_LF:
            if c != 10:
                return self.fail(H1_ERR_CHUNK)
            self.chunk_line_done()
        elif st == S_CHUNK_DATA_CR:
            if c == 13:
                self.state = S_CHUNK_DATA_LF
            elif c == 10:
                self.state = S_CHUNK_SIZE
                self.chunk_size = 0
                self.chunk_digits = False
            else:
                return self.fail(H1_ERR_CHUNK)
        elif st == S_CHUNK_DATA_LF:
            if c != 10:
                return self.fail(H1_ERR_CHUNK)
            self.state = S_CHUNK_SIZE
            self.chunk_size = 0
            self.chunk_digits = False
        elif st == S_TRAILER_START:
            if c == 13:
                self.state = S_TRAILER_END_LF
            elif c == 10:
                return self.finish(i)
            else:
                self.state = S_TRAILER_LINE
        elif st == S_TRAILER_LINE:
            if c == 10:
                self.state = S_TRAILER_START
        elif st == S_TRAILER_END_LF:
            if c != 10:
                return self.fail(H1_ERR_CHUNK)
            return self.finish(i)
    return i


cdef class H1ResponseParser:
    def __cinit__(self):
        self.reset()

    cpdef reset(self):
        """Ready for the first response of a new connection."""
        self.error = 0
        self.complete = False
        self.start_response()

    cdef inline void start_response(self) noexcept:
        self.state = S_START
        self.idx = 0
        self.header_bytes = 0
        self.content_length = -1
        self.chunked = False
        self.has_te = False
        self.conn_close = False
        self.conn_keep_alive = False
        self.major = 0
        self.minor = 0
        self.sse = False
        self.events = 0

    def error_msg(self):
        return H1_ERR_MESSAGES.get(self.error, "no error")

    cdef inline Py_ssize_t fail(self, int code) noexcept:
        self.error = code
        return -1

    cdef inline void tok_reset(self) noexcept:
        self.tok_len = 0
        self.tok_ws = False
        self.tok_match = 7

    cdef inline void tok_char(self, uint8_t c) noexcept:
        c = lower(c)
        if self.tok_len < 7 and <uint8_t>LIT_CHUNKED[self.tok_len] != c:
            self.tok_match &= ~1
        elif self.tok_len >= 7:
            self.tok_match &= ~1
        if self.tok_len < 5 and <uint8_t>LIT_CLOSE[self.tok_len] != c:
            self.tok_match &= ~2
        elif self.tok_len >= 5:
            self.tok_match &= ~2
        if self.tok_len < 10 and <uint8_t>LIT_KEEP_ALIVE[self.tok_len] != c:
            self.tok_match &= ~4
        elif self.tok_len >= 10:
            self.tok_match &= ~4
        self.tok_len += 1

    cdef inline void tok_end(self) noexcept:
        """A list element of Transfer-Encoding or Connection ended."""
        if self.tok_len == 0:
            return
        if self.hdr == HN_TE:
            # Only the final coding matters: chunked must be last to frame the body.
            self.chunked = self.tok_len == 7 and (self.tok_match & 1) != 0
        elif self.hdr == HN_CONN:
            if self.tok_len == 5 and (self.tok_match & 2):
                self.conn_close = True
            elif self.tok_len == 10 and (self.tok_match & 4):
                self.conn_keep_alive = True
        self.tok_reset()

    cdef inline int end_value(self) noexcept:
        """End of a header line's value; 0 or an error code."""
        if self.hdr == HN_CL:
            if not self.cl_digits:
                return H1_ERR_CONTENT_LENGTH
            if self.content_length >= 0 and self.content_length != self.cl_value:
                return H1_ERR_CONTENT_LENGTH
            self.content_length = self.cl_value
        elif self.hdr == HN_TE or self.hdr == HN_CONN:
            self.tok_end()
        elif self.hdr == HN_CT:
            self.sse = self.ct_match and self.ct_pos >= 17
        self.hdr = 0
        return 0

    cdef inline int start_value(self) noexcept:
        if self.hdr == HN_CL:
            self.cl_value = 0
            self.cl_digits = False
            self.cl_done = False
        elif self.hdr == HN_TE:
            self.has_te = True
            self.chunked = False
            self.tok_reset()
        elif self.hdr == HN_CONN:
            self.tok_reset()
        elif self.hdr == HN_CT:
            self.ct_pos = 0
            self.ct_match = True
        return 0

    cdef inline Py_ssize_t headers_done(self, Py_ssize_t consumed) noexcept:
        """Blank line after the headers: decide how the body is framed. Returns consumed, with
        complete set when the response has no body."""
        if self.major == 1 and self.minor == 0:
            self.keep_alive = self.conn_keep_alive and not self.conn_close
        else:
            self.keep_alive = not self.conn_close
        self.body_bytes = 0
        if self.sse:
            sse_reset(&self.sse_scan)
        if 100 <= self.status < 200 and self.status != 101:
            # Informational: the real response follows.
            self.start_response()
            return consumed
        if self.expect_no_body or self.status == 204 or self.status == 304 or self.status == 101:
            return self.finish(consumed)
        if self.has_te:
            if self.chunked:
                self.state = S_CHUNK_SIZE
                self.chunk_size = 0
                self.chunk_digits = False
                return consumed
            # A final coding other than chunked: the body runs until the connection closes.
            self.keep_alive = False
            self.state = S_BODY_EOF
            return consumed
        if self.content_length >= 0:
            if self.content_length == 0:
                return self.finish(consumed)
            self.remaining = self.content_length
            self.state = S_BODY_CL
            return consumed
        self.keep_alive = False
        self.state = S_BODY_EOF
        return consumed

    cdef inline Py_ssize_t finish(self, Py_ssize_t consumed) noexcept:
        self.complete = True
        self.done_events = self.events
        self.done_streaming = self.sse or self.chunked
        self.start_response()
        return consumed

    cdef inline int value_byte(self, uint8_t c) noexcept:
        """One byte of the value of a header we act on; 0 or an error code."""
        if c == 0:
            return H1_ERR_HEADER
        if self.hdr == HN_CL:
            if 48 <= c <= 57 and not self.cl_done:
                if self.cl_value > 99999999999999999:
                    return H1_ERR_CONTENT_LENGTH
                self.cl_value = self.cl_value * 10 + (c - 48)
                self.cl_digits = True
            elif (c == 32 or c == 9) and self.cl_digits:
                self.cl_done = True
            else:
                return H1_ERR_CONTENT_LENGTH
        else:
            if c == 44:  # ','
                self.tok_end()
            elif c == 32 or c == 9:
                if self.tok_len:
                    self.tok_ws = True
            elif self.tok_ws:
                # "chunked x": not a single token, so it is none of the ones we know.
                self.tok_match = 0
            else:
                self.tok_char(c)
        return 0

    cdef void ct_byte(self, uint8_t c) noexcept:
        """A Content-Type value byte in the byte machine (kept out of value_byte, which the C
        compiler inlines into feed only while it stays small): matches "text/event-stream"
        followed by the end, parameters or whitespace."""
        if self.ct_match:
            if self.ct_pos < 17:
                if lower(c) != <uint8_t>LIT_SSE[self.ct_pos]:
                    self.ct_match = False
            elif self.ct_pos == 17 and c != 59 and c != 32 and c != 9:
                self.ct_match = False
            self.ct_pos += 1

    cdef inline int header_line(self, const uint8_t* p, const uint8_t* lf) noexcept:
        """Fast path: a whole header line p..lf (lf points at the LF) is in the buffer.
        Same rules as the byte-level machine; 0 or an error code."""
        cdef const uint8_t* q = p
        cdef const uint8_t* end = lf
        cdef Py_ssize_t name_len
        cdef int rc
        while q < end and q[0] != 58:
            if not TCHAR[q[0]]:
                return H1_ERR_HEADER
            q += 1
        if q == end or q == p:
            return H1_ERR_HEADER
        name_len = q - p
        self.hdr = 0
        if name_len == 14 and ci_equal(p, NAME_CL, 14):
            self.hdr = HN_CL
        elif name_len == 17 and ci_equal(p, NAME_TE, 17):
            self.hdr = HN_TE
        elif name_len == 10 and ci_equal(p, NAME_CONN, 10):
            self.hdr = HN_CONN
        elif name_len == 12 and ci_equal(p, NAME_CT, 12):
            self.hdr = HN_CT
        if end > q and (end - 1)[0] == 13:
            end -= 1
        if self.hdr == 0:
            return 0
        if self.hdr == HN_CT:
            # One comparison instead of the byte machine: most responses carry a Content-Type.
            q += 1
            while q < end and (q[0] == 32 or q[0] == 9):
                q += 1
            self.sse = event_stream_type(q, end - q)
            self.hdr = 0
            return 0
        self.start_value()
        q += 1
        while q < end and (q[0] == 32 or q[0] == 9):
            q += 1
        while q < end:
            if q[0] == 13:
                return H1_ERR_HEADER
            rc = self.value_byte(q[0])
            if rc:
                return rc
            q += 1
        return self.end_value()

    cdef inline bint status_line(self, const uint8_t* p, Py_ssize_t avail) noexcept:
        """Fast path for "HTTP/1.x SSS " when it is all in the buffer; False: use the byte machine
        (which also produces the precise error)."""
        if avail < 13 or memcmp(p, b"HTTP/1.", 7) != 0 or not (48 <= p[7] <= 57) or p[8] != 32:
            return False
        if not (49 <= p[9] <= 57 and 48 <= p[10] <= 57 and 48 <= p[11] <= 57):
            return False
        if p[12] != 32 and p[12] != 13 and p[12] != 10:
            return False
        self.major = 1
        self.minor = p[7] - 48
        self.status = (p[9] - 48) * 100 + (p[10] - 48) * 10 + (p[11] - 48)
        return True

    cdef Py_ssize_t feed(self, const uint8_t* data, Py_ssize_t n) noexcept:
        cdef Py_ssize_t i = 0, j
        cdef int st
        self.complete = False
        if self.error:
            return -1
        while i < n:
            st = self.state
            if st == S_HDR_START or st == S_START:
                # A whole line never completes a response: no test for that here.
                j = _line_step(self, st, data, i, n)
                if j >= 0:
                    i = j
                    continue
                if j == -1:
                    return -1
            if st == S_BODY_CL or st == S_CHUNK_DATA or st == S_BODY_EOF:
                i = _body_step(self, st, data, i, n)
            else:
                i = _byte_step(self, st, data, i, n)
            if i < 0 or self.complete:
                return i
        return n

    cdef inline void chunk_line_done(self) noexcept:
        if self.chunk_size == 0:
            self.state = S_TRAILER_START
            self.header_bytes = 0   # trailers get their own header budget
        else:
            self.remaining = self.chunk_size
            self.state = S_CHUNK_DATA

    cdef inline void match_name(self, uint8_t c) noexcept:
        c = lower(c)
        if (self.cand & HN_CL) and (self.idx >= 14 or <uint8_t>NAME_CL[self.idx] != c):
            self.cand &= ~HN_CL
        if (self.cand & HN_TE) and (self.idx >= 17 or <uint8_t>NAME_TE[self.idx] != c):
            self.cand &= ~HN_TE
        if (self.cand & HN_CONN) and (self.idx >= 10 or <uint8_t>NAME_CONN[self.idx] != c):
            self.cand &= ~HN_CONN
        if (self.cand & HN_CT) and (self.idx >= 12 or <uint8_t>NAME_CT[self.idx] != c):
            self.cand &= ~HN_CT
        self.idx += 1

    cdef int feed_eof(self) noexcept:
        self.complete = False
        if self.error:
            return -1
        if self.state == S_BODY_EOF:
            self.complete = True
            self.keep_alive = False
            self.done_events = self.events
            self.done_streaming = self.sse
            self.start_response()
            return 1
        if self.state == S_START:
            return 0
        self.error = H1_ERR_TRUNCATED
        return -1

    # Python API (tests, tools): same machine, whole buffers.
    def feed_py(self, data, bint with_events=False):
        """Completed responses as (status, body_bytes, keep_alive), with (events, streaming)
        appended when with_events."""
        cdef const uint8_t[::1] view = memoryview(bytes(data)).cast("B") if len(data) else None
        cdef Py_ssize_t off = 0, c, n = len(data)
        out = []
        while off < n:
            c = self.feed(&view[off], n - off)
            if c < 0:
                raise ProtocolError(self.error_msg())
            if self.complete:
                r = (self.status, self.body_bytes, bool(self.keep_alive))
                out.append(r + (self.done_events, bool(self.done_streaming)) if with_events else r)
            off += c
        return out

    def eof_py(self, bint with_events=False):
        cdef int r = self.feed_eof()
        if r < 0:
            raise ProtocolError(self.error_msg())
        if r == 1:
            t = (self.status, self.body_bytes, False)
            return t + (self.done_events, bool(self.done_streaming)) if with_events else t
        return None

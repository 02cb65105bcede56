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
#     cdef Py_ssize_t feed(self, const uint8_t* data, Py_ssize_t n) noexcept
#         parses at most ONE response; returns bytes consumed (0..n) or -1 on a protocol error.
#         The caller loops: while n: c = feed(p, n); if complete: handle; p += c; n -= c.
#         Any split of the byte stream must give the same result (state machine, no rescans).
#     cdef int feed_eof(self) noexcept
#         1: a read-until-close body completes now (complete is set); 0: nothing in progress;
#         -1: EOF truncated a response (error set).
#     def feed_py(self, bytes data) -> list[tuple[int, int, bool]]  # (status, body_bytes, keep_alive)
#     def eof_py(self) -> tuple | None
cdef class H1ResponseParser:
    pass

# HTTP/2 client connection core (RFC 9113), sans-I/O: frames in, frames and stream events out.
#
# CONTRACT (the session in _session.pxi relies on it):
# cdef class H2ClientCore:
#     __cinit__(self, bytes header_block, bytes body=b"", int max_streams=100)
#         header_block: a stateless HPACK block (no dynamic-table insertions) sent on every stream.
#         body: request body sent as DATA after HEADERS (END_STREAM on HEADERS when empty).
#     # Outbound bytes accumulate in a growable C buffer; the session writes out[0:out_len] to the
#     # transport and then calls clear_out().
#     cdef uint8_t* out
#     cdef Py_ssize_t out_len
#     cdef void clear_out(self) noexcept
#     cdef void start(self) noexcept
#         preface + SETTINGS(ENABLE_PUSH=0, INITIAL_WINDOW_SIZE large, HEADER_TABLE_SIZE 4096)
#         + connection WINDOW_UPDATE.
#     cdef bint can_submit(self) noexcept
#         a new stream may be opened: in_flight < min(max_streams, peer MAX_CONCURRENT_STREAMS),
#         no GOAWAY received, stream ids left, send window covers the body.
#     cdef int submit(self, int64_t sent_ns) noexcept
#         writes HEADERS (+DATA) of a new stream into out (template copy, stream id patched);
#         remembers sent_ns for the stream; returns 0, or -1 if it cannot.
#     cdef int receive(self, const uint8_t* data, Py_ssize_t n) noexcept
#         consumes bytes (partial frames are kept internally for the next call), handles every
#         frame type (SETTINGS/ACK, PING/ACK, WINDOW_UPDATE, RST_STREAM, GOAWAY, HEADERS +
#         CONTINUATION via HpackDecoder, DATA with WINDOW_UPDATE replenishment, unknown frames
#         ignored), writes control responses into out and appends per-stream outcomes to the
#         event arrays. Returns 0, or -1 on a connection error (error_code/error_msg set, a
#         GOAWAY written to out; the session then closes the connection).
#     cdef int expire(self, int64_t older_than_ns) noexcept
#         cancels (RST_STREAM CANCEL into out) every open stream sent before older_than_ns,
#         appends EV_TIMEOUT events for them, returns how many.
#     # events since the last clear_events(), in arrival order:
#     cdef int n_events
#     cdef int* ev_kind         # EV_DONE, EV_RESET (peer RST_STREAM), EV_REFUSED (REFUSED_STREAM or
#                               # above GOAWAY last-stream-id: never processed, safe to retry), EV_TIMEOUT
#     cdef int* ev_status       # :status for EV_DONE
#     cdef int64_t* ev_sent_ns
#     cdef int64_t* ev_body_bytes
#     cdef void clear_events(self) noexcept
#     cdef public int in_flight
#     cdef public bint goaway_received
#     cdef public bint exhausted    # GOAWAY received (or ids used up) and nothing in flight: reconnect
#     cdef public int error_code
#     Python test API: start_py() -> bytes, submit_py(sent_ns) -> bytes,
#                      receive_py(bytes) -> tuple[list[tuple[kind, status, sent_ns, body_bytes]], bytes]
DEF EV_DONE = 1
DEF EV_RESET = 2
DEF EV_REFUSED = 3
DEF EV_TIMEOUT = 4

cdef class H2ClientCore:
    pass

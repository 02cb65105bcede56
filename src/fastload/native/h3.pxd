from libc.stdint cimport int64_t, uint8_t, uint64_t

from fastload.native.stats cimport WorkerStats
from fastload.native.stream cimport SseScan

# Per-stream outcomes in the event array (tuples of the same fields in native/h3_events.py).
cpdef enum:
    H3_EV_DONE = 1
    H3_EV_MALFORMED = 2   # RFC 9114 §4.1.2: a stream error, counted as a protocol error
    H3_EV_RESET = 3       # the server reset the stream
    H3_EV_TIMEOUT = 4
    H3_EV_OBSERVED = 5    # SSE events completed by one piece of a DATA frame

# What feed() returns besides an HTTP/3 or QPACK error code (>= 0x100: close the connection).
cpdef enum:
    H3_RC_OK = 0
    H3_RC_STREAM_ERROR = 1   # a malformed response on a stream still open: cancel it
    H3_RC_UNI = 2            # a server-initiated unidirectional stream: the session's

cpdef enum:
    H3_FRAME_UNEXPECTED = 0x105
    H3_FRAME_ERROR = 0x106
    H3_ID_ERROR = 0x108
    H3_MESSAGE_ERROR = 0x10E
    QPACK_DECOMPRESSION_FAILED = 0x200
    # A larger HEADERS frame is malformed rather than buffered (the HTTP/2 core's header limit).
    H3_MAX_FIELD_SECTION = 65536


ctypedef struct H3Slot:
    int64_t sid           # -1: free
    int64_t intended_ns
    int64_t sent_ns
    int64_t first_ns      # arrival of the first HEADERS (0: none yet)
    int status            # the final status, 0 before it
    int phase             # 0: before the final HEADERS, 1: body, 2: after trailers
    bint unsent           # started since the last restamp(): its packets are not out yet
    bint sse
    int64_t content_length  # -1: none
    int64_t body_bytes
    uint64_t data_left    # payload still to come of the current DATA frame
    uint64_t skip_left    # of a frame of unknown type
    uint8_t hdr[16]       # frame header bytes (two varints) read so far
    int hdr_len
    bint collecting       # a HEADERS payload split across feeds is being collected in hb
    size_t hb_need
    size_t hb_len
    size_t hb_cap
    uint8_t* hb
    int64_t events
    int64_t last_event_ns  # -1 before the first event
    SseScan scan


ctypedef struct H3Event:
    int kind              # H3_EV_*
    int status
    int64_t sid
    int64_t body_bytes
    int64_t count         # DONE: SSE events (-1: not a stream); OBSERVED: events in this piece
    int64_t t_ns          # DONE: first HEADERS; OBSERVED: the previous event (-1: none)
    int64_t intended_ns
    int64_t sent_ns       # OBSERVED: arrival


cdef class H3Core:
    cdef WorkerStats stats
    cdef readonly bint head
    cdef readonly int streams
    cdef H3Slot* slots
    cdef Py_ssize_t cap   # a power of two, at least twice the streams allowed in flight
    cdef readonly Py_ssize_t inflight
    cdef Py_ssize_t n_unsent
    cdef H3Event* ev
    cdef Py_ssize_t n_ev
    cdef Py_ssize_t ev_cap
    cdef uint8_t* scratch  # Huffman-decoded name and value of the field being checked
    cdef size_t scratch_cap

    cdef H3Slot* _find(self, int64_t sid) noexcept
    cdef void _remove(self, H3Slot* s) noexcept
    cdef H3Slot* _insert(self, int64_t sid, int64_t intended_ns, int64_t sent_ns) noexcept
    cdef int _push(self, int kind, H3Slot* s, int status, int64_t count, int64_t t_ns,
                   int64_t sent_ns) noexcept
    cdef int _feed(self, int64_t sid, const uint8_t* p, Py_ssize_t n, bint end,
                   int64_t now) noexcept
    cdef int _frames(self, H3Slot* s, const uint8_t* p, Py_ssize_t n, int64_t now) noexcept
    cdef int _headers(self, H3Slot* s, const uint8_t* p, Py_ssize_t n, int64_t now) noexcept
    cdef void _record(self, int64_t now) noexcept

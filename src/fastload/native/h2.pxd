from libc.stdint cimport int64_t, uint8_t, uint32_t

from fastload.native.hpack cimport HpackDecoder
from fastload.native.stream cimport GrpcScan, SseScan

# Per-stream outcomes in the event array.
cdef enum:
    EV_DONE = 1
    EV_RESET = 2        # peer RST_STREAM, or a malformed response (status -1)
    EV_REFUSED = 3      # REFUSED_STREAM or above GOAWAY's last stream id: never processed
    EV_TIMEOUT = 4

# What counts as an event of a stream.
cdef enum:
    MODE_PLAIN = 0
    MODE_SSE = 1
    MODE_GRPC = 2

# RFC 9113 error codes, frame types and flags (also Python ints: tests build frames with them).
cpdef enum:
    H2_NO_ERROR = 0
    H2_PROTOCOL_ERROR = 1
    H2_INTERNAL_ERROR = 2
    H2_FLOW_CONTROL_ERROR = 3
    H2_STREAM_CLOSED = 5
    H2_FRAME_SIZE_ERROR = 6
    H2_REFUSED_STREAM = 7
    H2_CANCEL = 8
    H2_COMPRESSION_ERROR = 9

cpdef enum:
    F_DATA = 0
    F_HEADERS = 1
    F_PRIORITY = 2
    F_RST_STREAM = 3
    F_SETTINGS = 4
    F_PUSH_PROMISE = 5
    F_PING = 6
    F_GOAWAY = 7
    F_WINDOW_UPDATE = 8
    F_CONTINUATION = 9

cpdef enum:
    FL_END_STREAM = 0x1
    FL_ACK = 0x1
    FL_END_HEADERS = 0x4
    FL_PADDED = 0x8
    FL_PRIORITY = 0x20

cpdef enum:
    # Our SETTINGS_MAX_FRAME_SIZE is never raised: 16 KiB frames keep the pending buffer small.
    OUR_MAX_FRAME = 16384
    MAX_WINDOW = 2147483647
    MAX_SID = 2147483647
    # A header block larger than this (joined across CONTINUATION) is refused rather than
    # buffered without bound: a peer streaming CONTINUATION forever is a known DoS pattern.
    MAX_HEADER_BLOCK = 1048576

# Slot states.
cdef enum:
    ST_FREE = 0
    ST_OPEN = 1

# Which HPACK block the request template holds.
cdef enum:
    BLOCK_FIRST = 0
    BLOCK_STEADY = 1
    BLOCK_UPDATE = 2
    BLOCK_STATELESS = 3


ctypedef struct _H2Slot:
    uint32_t sid
    int state
    int status            # 0 until the final (non-1xx) response HEADERS arrived
    int64_t sent_ns
    int64_t intended_ns   # open model: when the schedule wanted it sent (== sent_ns otherwise)
    int64_t body_bytes
    int64_t send_win
    int64_t recv_consumed
    int64_t body_off      # request body bytes sent; < body length while flow control holds it
    int grpc_status       # -1 until a block with grpc-status arrived
    int64_t first_ns      # arrival of the first HEADERS (0: none yet)
    int mode              # MODE_PLAIN, MODE_SSE or MODE_GRPC: what counts as an event
    int64_t events
    int64_t last_event_ns  # -1 before the first event
    SseScan sse
    GrpcScan gscan
    int entry             # request variant entry (submit_entry), -1 for the run's one request
    const uint8_t* req_body   # this stream's request body (owned by the core or the mix)
    int64_t req_body_len
    uint8_t* cap          # sampled for checks: the response body so far (malloc'd), else NULL
    Py_ssize_t cap_len
    Py_ssize_t cap_size   # its allocated size


# One stream's outcome; the session reads ev[0:n_events] after receive() and expire().
ctypedef struct H2Event:
    int kind              # EV_*
    int status            # :status for EV_DONE; -1 for a malformed response (EV_RESET); else 0
    int grpc              # grpc-status (grpc=True): 0..99, -1 none sent, -2 malformed
    int entry             # request variant entry, -1 for the run's one request
    int64_t sent_ns
    int64_t intended_ns
    int64_t body_bytes    # DATA payload received (padding excluded)
    int64_t first_ns      # arrival of the stream's first HEADERS (0: none)
    int64_t events        # events of a streamed response, -1 for other responses
    uint8_t* capture      # sampled for checks: the response body, else NULL (pooled buffer)
    Py_ssize_t capture_len
    Py_ssize_t capture_size


# Events of a stream that arrived in one DATA frame (streaming metrics).
ctypedef struct H2Observation:
    int64_t intended_ns
    int64_t prev_ns       # the stream's previous event time, -1 before its first
    int64_t count


cdef inline uint32_t _rd24(const uint8_t* p) noexcept nogil:
    return (<uint32_t>p[0] << 16) | (<uint32_t>p[1] << 8) | p[2]


cdef inline uint32_t _rd32(const uint8_t* p) noexcept nogil:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]


cdef inline void _wr32(uint8_t* p, uint32_t v) noexcept nogil:
    p[0] = <uint8_t>(v >> 24)
    p[1] = <uint8_t>(v >> 16)
    p[2] = <uint8_t>(v >> 8)
    p[3] = <uint8_t>v


cdef inline void _wr_fh(uint8_t* p, uint32_t length, uint8_t ftype, uint8_t flags,
                        uint32_t sid) noexcept nogil:
    p[0] = <uint8_t>(length >> 16)
    p[1] = <uint8_t>(length >> 8)
    p[2] = <uint8_t>length
    p[3] = ftype
    p[4] = flags
    _wr32(p + 5, sid & 0x7FFFFFFF)


cdef class RequestTemplate:
    cdef bytes block             # the block the frames currently carry
    cdef bytes steady_block      # indexed references to what the first block inserted
    cdef bytes stateless_block   # fallback when the peer's table is too small
    cdef int64_t table_need
    cdef int phase               # BLOCK_FIRST, BLOCK_STEADY, BLOCK_UPDATE, BLOCK_STATELESS
    cdef bytes body
    cdef Py_ssize_t body_len
    cdef uint8_t* frames         # HEADERS [+CONTINUATION...] [+DATA...] with stream id 0
    cdef Py_ssize_t frames_len
    cdef Py_ssize_t hdr_len      # the HEADERS [+CONTINUATION...] part

    cdef int build(self, Py_ssize_t fmax) noexcept
    cdef void switch(self, bytes block, int phase, Py_ssize_t fmax) noexcept
    cdef void sent(self, Py_ssize_t fmax) noexcept
    cdef void peer_table_size(self, int64_t size, Py_ssize_t fmax) noexcept


cdef class H2ClientCore:
    cdef uint8_t* out
    cdef Py_ssize_t out_len
    cdef Py_ssize_t out_cap

    cdef int n_events
    cdef int ev_cap
    cdef H2Event* ev
    cdef bint _grpc
    cdef public int64_t rx_ns
    cdef int n_obs
    cdef int ob_cap
    cdef H2Observation* obs

    cdef public int in_flight
    cdef public bint goaway_received
    cdef public bint exhausted
    cdef public int error_code
    cdef const char* _err
    cdef bint _dead

    cdef RequestTemplate _tmpl
    cdef int _n_pending          # open streams whose body waits for flow-control window
    cdef uint32_t _pump_next     # slot where the next round of window sharing starts

    cdef _H2Slot* _slots
    cdef uint32_t _mask
    cdef uint32_t _next_sid
    cdef int _max_streams

    cdef readonly int64_t peer_max_concurrent
    cdef readonly int64_t peer_initial_window
    cdef readonly int64_t peer_max_frame_size
    cdef readonly int64_t conn_send_window
    cdef readonly int64_t last_stream_id
    cdef readonly int64_t goaway_code
    cdef int64_t _conn_recv_window
    cdef int64_t _conn_recv_consumed
    cdef bint _got_settings

    cdef uint8_t* _pend          # incomplete tail of the input: at most one frame
    cdef Py_ssize_t _pend_len

    cdef uint8_t* _hbuf          # header block joined across CONTINUATION
    cdef Py_ssize_t _hlen
    cdef Py_ssize_t _hcap
    cdef uint32_t _cont_sid      # != 0 while CONTINUATION frames are expected
    cdef bint _cont_end_stream

    cdef HpackDecoder hpack
    cdef int n_ev_caps           # events holding a capture (returned by clear_events)
    cdef uint8_t** _cap_free     # capture buffers of ended streams, for the next ones
    cdef int _cap_free_n
    cdef int _cap_free_cap
    cdef Py_ssize_t _cap_size    # the size of the pooled buffers
    cdef public Py_ssize_t capture_limit

    cdef uint8_t* _reserve(self, Py_ssize_t n) noexcept
    cdef H2Event* _emit(self, _H2Slot* s, int kind, int status) noexcept
    cdef int _observe(self, _H2Slot* s, int64_t k) noexcept
    cdef uint8_t* _cap_take(self) noexcept
    cdef void _cap_give(self, uint8_t* buf, Py_ssize_t size) noexcept
    cdef void clear_out(self) noexcept
    cdef void clear_events(self) noexcept
    cdef int _put_frame(self, uint8_t ftype, uint8_t flags, uint32_t sid,
                        const uint8_t* payload, uint32_t n) noexcept
    cdef int _put_u32(self, uint8_t ftype, uint32_t sid, uint32_t v) noexcept
    cdef int _conn_error(self, int code, const char* msg) noexcept
    cdef inline _H2Slot* _lookup(self, uint32_t sid) noexcept
    cdef inline void _update_exhausted(self) noexcept
    cdef int _finish(self, _H2Slot* s, int kind, int status) noexcept
    cdef int _stream_error(self, _H2Slot* s, int code) noexcept
    cdef void start(self) noexcept
    cdef bint can_submit(self) noexcept
    cdef int submit(self, int64_t sent_ns) noexcept
    cdef _H2Slot* _open(self, int64_t sent_ns, int64_t intended_ns, int entry,
                        const uint8_t* body, Py_ssize_t body_len) noexcept
    cdef int _opened(self, _H2Slot* s) noexcept
    cdef int submit_at(self, int64_t sent_ns, int64_t intended_ns) noexcept
    cdef int submit_entry(self, int64_t sent_ns, int64_t intended_ns, int entry,
                          const uint8_t* block, Py_ssize_t blen, const uint8_t* body,
                          Py_ssize_t body_len, bint capture=*) noexcept
    cdef int _pump(self, _H2Slot* s) noexcept
    cdef int _pump_all(self) noexcept
    cdef int expire(self, int64_t older_than_ns) noexcept
    cdef void fail_open_streams(self) noexcept
    cdef int64_t oldest_sent_ns(self) noexcept
    cdef int receive(self, const uint8_t* data, Py_ssize_t n) noexcept
    cdef int _frame(self, const uint8_t* f) noexcept
    cdef inline int _idle(self, uint32_t sid) noexcept
    cdef int _data(self, uint8_t flags, uint32_t sid, const uint8_t* p, uint32_t length) noexcept
    cdef inline void _capture(self, _H2Slot* s, const uint8_t* p, Py_ssize_t n) noexcept
    cdef int _headers(self, uint8_t flags, uint32_t sid, const uint8_t* p,
                      uint32_t length) noexcept
    cdef int _hbuf_append(self, const uint8_t* p, uint32_t n) noexcept
    cdef int _continuation(self, uint8_t flags, const uint8_t* p, uint32_t length) noexcept
    cdef int _header_block(self, uint32_t sid, bint end_stream, const uint8_t* p,
                           Py_ssize_t n) noexcept
    cdef void _stream_mode(self, _H2Slot* s) noexcept
    cdef int _stream_data(self, _H2Slot* s, const uint8_t* p, Py_ssize_t n) noexcept
    cdef void _read_grpc_status(self, _H2Slot* s) noexcept
    cdef int _settings(self, uint8_t flags, uint32_t sid, const uint8_t* p,
                       uint32_t length) noexcept
    cdef int _window_update(self, uint32_t sid, const uint8_t* p, uint32_t length) noexcept
    cdef int _rst(self, uint32_t sid, const uint8_t* p, uint32_t length) noexcept
    cdef int _goaway(self, uint32_t sid, const uint8_t* p, uint32_t length) noexcept

# HTTP/2 client connection core (RFC 9113), sans-I/O: frames in, frames and stream events out.
#
# CONTRACT (sessions.pyx relies on it; declarations in h2.pxd):
# cdef class H2ClientCore:
#     __cinit__(self, bytes header_block, bytes body=b"", int max_streams=100,
#               bytes first_block=None, int64_t table_need=0, bytes stateless_block=None,
#               bint grpc=False)
#         header_block: a stateless HPACK block (no dynamic-table insertions) sent on every stream;
#         or, with first_block (hpack_encode.encode_session_blocks), the steady block that refers
#         to the table_need bytes of entries the first stream inserted. If the peer announces a
#         HEADER_TABLE_SIZE below table_need, a size update + stateless_block take over.
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
#         no GOAWAY received, stream ids left.
#     cdef int submit(self, int64_t sent_ns) noexcept
#         writes HEADERS (+DATA) of a new stream into out (template copy, stream id patched);
#         remembers sent_ns for the stream; returns 0, or -1 if it cannot. A body the peer's
#         flow-control windows cannot take at once goes out as DATA as WINDOW_UPDATEs (or a
#         larger SETTINGS_INITIAL_WINDOW_SIZE) open them; a stream whose response completes
#         before its body was sent is closed with RST_STREAM(NO_ERROR) (RFC 9113 8.1).
#     cdef int submit_at(self, int64_t sent_ns, int64_t intended_ns) noexcept
#         submit() for the open model; intended_ns comes back in ev_intended_ns.
#     cdef int receive(self, const uint8_t* data, Py_ssize_t n) noexcept
#         consumes bytes (partial frames are kept internally for the next call), handles every
#         frame type (SETTINGS/ACK, PING/ACK, WINDOW_UPDATE, RST_STREAM, GOAWAY, HEADERS +
#         CONTINUATION via HpackDecoder, DATA with WINDOW_UPDATE replenishment, unknown frames
#         ignored), writes control responses into out and appends per-stream outcomes to ev.
#         Returns 0, or -1 on a connection error (error_code/error_msg set, a GOAWAY written
#         to out; the session then closes the connection).
#     cdef int expire(self, int64_t older_than_ns) noexcept
#         cancels (RST_STREAM CANCEL into out) every open stream sent before older_than_ns,
#         appends EV_TIMEOUT events for them, returns how many.
#     # events since the last clear_events(), in arrival order:
#     cdef int n_events
#     cdef H2Event* ev          # (h2.pxd) kind: EV_DONE, EV_RESET (peer RST_STREAM), EV_REFUSED
#                               # (REFUSED_STREAM or above GOAWAY last-stream-id: never processed,
#                               # safe to retry), EV_TIMEOUT; status (:status for EV_DONE),
#                               # sent_ns, intended_ns, body_bytes, ...
#     cdef void clear_events(self) noexcept
#     cdef public int in_flight
#     cdef public bint goaway_received
#     cdef public bint exhausted    # GOAWAY received (or ids used up) and nothing in flight: reconnect
#     cdef public int error_code
#     Python test API (testing.H2TestCore): start_py() -> bytes, submit_py(sent_ns) -> bytes,
#                      receive_py(bytes) -> tuple[list[tuple[kind, status, sent_ns, body_bytes]], bytes]
#
# REFINEMENTS (as implemented):
#   - max_streams is 1..65536 (ValueError otherwise); the slot table has 2*next_pow2(max_streams)
#     entries so the next odd stream id almost always lands on a free slot.
#   - error_msg() -> str describes the connection error; error_code is the RFC 9113 code (0 while
#     healthy). After a connection error receive() returns -1 at once, can_submit() is false, and
#     the streams still in flight get NO events: the session accounts for them via in_flight.
#   - A malformed response on an open stream (missing/invalid :status, 1xx with END_STREAM, DATA
#     before the final HEADERS, HEADERS without END_STREAM after the final response, 0 or
#     overflowing stream WINDOW_UPDATE) is a stream error: RST_STREAM(PROTOCOL_ERROR or
#     FLOW_CONTROL_ERROR) goes into out and EV_RESET is reported with status -1. Otherwise
#     status is the final :status for EV_DONE and 0 for EV_RESET/EV_REFUSED/EV_TIMEOUT.
#   - body_bytes is the DATA payload received for the stream (padding excluded), every kind.
#   - grpc=True: an event's grpc holds its stream's grpc-status (0..99 as sent; -1 when the stream
#     ended without one, -2 when it was not 1-2 digits), read from the trailers or from a
#     trailers-only response; receive_py/expire_py then return 5-tuples ending with it.
#   - content-length is not checked against the body (HEAD responses would need the method).
#   - Streaming metrics. The session sets rx_ns (arrival time of the bytes) before receive().
#     first_ns is when the stream's first HEADERS arrived. A response is a stream when its
#     content-type is text/event-stream (events: SSE events) or, with grpc=True, always
#     (events: length-prefixed messages); events is its event count, -1 for other responses.
#     Each DATA frame that completes events appends an observation to obs (intended_ns,
#     prev_ns = the stream's previous event time or -1 before its first, count), cleared
#     with the events by clear_events().
#   - Python helpers besides the contract's: error_msg(), readable peer_max_frame_size,
#     peer_max_concurrent, peer_initial_window, conn_send_window, last_stream_id and goaway_code
#     (after GOAWAY). testing.H2TestCore adds can_submit_py(), expire_py(older_than_ns) ->
#     (events, out) and next_stream_id (settable, for tests reaching the end of the id space).
#   - testing.h2_bench(header_block, server_bytes, n_streams, rounds) -> ns per response for
#     the session's loop (submit n_streams, receive one recorded server flight, clear), all in C.
from libc.stdint cimport int64_t, uint8_t, uint32_t
from libc.stdlib cimport calloc, free, malloc, realloc
from libc.string cimport memcpy

from fastload.native.h1 cimport event_stream_type
from fastload.native.hpack cimport HpackDecoder
from fastload.native.stream cimport grpc_feed, grpc_reset, sse_feed, sse_reset

from fastload.workload.hpack import size_update as _hp_size_update

cdef inline Py_ssize_t _headers_size(Py_ssize_t blen, Py_ssize_t fmax) noexcept nogil:
    """Bytes of the HEADERS [+ CONTINUATION...] frames that carry a blen-byte block."""
    return blen + 9 * ((blen + fmax - 1) // fmax if blen else 1)


cdef Py_ssize_t _write_headers(uint8_t* dst, const uint8_t* block, Py_ssize_t blen,
                               bint end_stream, Py_ssize_t fmax, uint32_t sid) noexcept nogil:
    """HEADERS, then CONTINUATION for what does not fit in one frame; _headers_size bytes."""
    cdef Py_ssize_t off = 0, pos = 0, chunk
    cdef uint8_t flags
    while True:
        chunk = blen - pos
        if chunk > fmax:
            chunk = fmax
        flags = 0
        if pos + chunk == blen:
            flags |= FL_END_HEADERS
        if pos == 0 and end_stream:
            flags |= FL_END_STREAM
        _wr_fh(dst + off, <uint32_t>chunk, F_HEADERS if pos == 0 else F_CONTINUATION, flags, sid)
        memcpy(dst + off + 9, block + pos, chunk)
        off += 9 + chunk
        pos += chunk
        if pos >= blen:
            return off


cdef class RequestTemplate:
    """The run's one request as frames with stream id 0 (each stream patches in its id), and
    which HPACK block they carry: FIRST inserts the request's fields into the server's dynamic
    table, STEADY then refers to them by index (the server decodes no strings); UPDATE (a size
    update + the stateless block) and STATELESS take over when the peer's table is too small."""

    def __cinit__(self, bytes header_block, bytes body, bytes first_block, int64_t table_need,
                  bytes stateless_block):
        if first_block is None:
            self.block = header_block
            self.phase = BLOCK_STATELESS
        else:
            if stateless_block is None:
                raise ValueError("first_block needs a stateless_block to fall back to")
            self.block = first_block
            self.steady_block = header_block
            self.stateless_block = stateless_block
            self.table_need = table_need
            self.phase = BLOCK_FIRST
        self.body = body
        self.body_len = len(body)

    def __dealloc__(self):
        free(self.frames)

    cdef int build(self, Py_ssize_t fmax) noexcept:
        """The frames for this peer max frame size; rebuilt when it changes."""
        cdef Py_ssize_t blen = len(self.block)
        cdef const uint8_t* body = self.body
        cdef Py_ssize_t nd = (self.body_len + fmax - 1) // fmax
        cdef Py_ssize_t total = _headers_size(blen, fmax) + self.body_len + 9 * nd
        cdef Py_ssize_t off, pos = 0, chunk
        cdef uint8_t* t = <uint8_t*>realloc(self.frames, total if total else 1)
        if t == NULL:
            return -1
        self.frames = t
        off = _write_headers(t, self.block, blen, self.body_len == 0, fmax, 0)
        self.hdr_len = off
        while pos < self.body_len:
            chunk = self.body_len - pos
            if chunk > fmax:
                chunk = fmax
            _wr_fh(t + off, <uint32_t>chunk, F_DATA,
                   FL_END_STREAM if pos + chunk == self.body_len else 0, 0)
            memcpy(t + off + 9, body + pos, chunk)
            off += 9 + chunk
            pos += chunk
        self.frames_len = off
        return 0

    cdef void switch(self, bytes block, int phase, Py_ssize_t fmax) noexcept:
        # Once per connection at most; if the frames cannot be rebuilt the old block stays,
        # which is still valid HPACK (re-inserting, or referring to what is there).
        cdef bytes old = self.block
        self.block = block
        if self.build(fmax) < 0:
            self.block = old
            return
        self.phase = phase

    cdef void sent(self, Py_ssize_t fmax) noexcept:
        """A stream carried the frames: the first block's insertions (or the size update) are
        done, later streams use the block that follows."""
        if self.phase == BLOCK_FIRST:
            self.switch(self.steady_block, BLOCK_STEADY, fmax)
        elif self.phase == BLOCK_UPDATE:
            self.switch(self.stateless_block, BLOCK_STATELESS, fmax)

    cdef void peer_table_size(self, int64_t size, Py_ssize_t fmax) noexcept:
        """The peer's SETTINGS_HEADER_TABLE_SIZE: when it is below what the first block
        inserted, our encoder's table must shrink: announce it at the start of the next block
        and stop referring to those entries."""
        if self.phase <= BLOCK_STEADY and size < self.table_need:
            self.switch(_hp_size_update(size) + self.stateless_block, BLOCK_UPDATE, fmax)


cdef class H2ClientCore:
    def __cinit__(self, bytes header_block, bytes body=b"", int max_streams=100,
                  bytes first_block=None, int64_t table_need=0, bytes stateless_block=None,
                  bint grpc=False):
        cdef uint32_t nslots = 1
        if max_streams < 1 or max_streams > 65536:
            raise ValueError("max_streams must be in 1..65536")
        self._tmpl = RequestTemplate(header_block, body, first_block, table_need, stateless_block)
        self._max_streams = max_streams
        # Twice the stream limit so that the next odd id is nearly always on a free slot.
        while nslots < <uint32_t>max_streams * 2:
            nslots <<= 1
        self._slots = <_H2Slot*>calloc(nslots, sizeof(_H2Slot))
        self._mask = nslots - 1
        self._next_sid = 1
        self.out_cap = 4096
        self.out = <uint8_t*>malloc(self.out_cap)
        self.ev_cap = 64
        self.ev = <H2Event*>malloc(self.ev_cap * sizeof(H2Event))
        self.ob_cap = 64
        self.obs = <H2Observation*>malloc(self.ob_cap * sizeof(H2Observation))
        self._grpc = grpc
        self._pend = <uint8_t*>malloc(9 + OUR_MAX_FRAME)
        self._hcap = 4096
        self._hbuf = <uint8_t*>malloc(self._hcap)
        if (self._slots == NULL or self.out == NULL or self.ev == NULL or self.obs == NULL
                or self._pend == NULL or self._hbuf == NULL):
            raise MemoryError()
        self.peer_max_concurrent = 0x7FFFFFFFFFFF
        self.peer_initial_window = 65535
        self.peer_max_frame_size = 16384
        self.conn_send_window = 65535
        self._conn_recv_window = 65535
        self.last_stream_id = MAX_SID
        self.goaway_code = -1
        self.hpack = HpackDecoder()
        if self._tmpl.build(self.peer_max_frame_size) < 0:
            raise MemoryError()

    def __dealloc__(self):
        cdef uint32_t i
        free(self.out)
        free(self._pend)
        free(self._hbuf)
        if self.ev != NULL:
            self.clear_events()
        free(self.ev)
        free(self.obs)
        if self._slots != NULL:
            for i in range(self._mask + 1):
                free(self._slots[i].cap)
        free(self._slots)
        for i in range(self._cap_free_n):
            free(self._cap_free[i])
        free(self._cap_free)

    # ---- buffers ---------------------------------------------------------------------------

    cdef uint8_t* _reserve(self, Py_ssize_t n) noexcept:
        """Room for n more bytes at out+out_len (caller advances out_len); NULL if out of memory."""
        cdef Py_ssize_t cap = self.out_cap
        cdef uint8_t* p
        if self.out_len + n > cap:
            while self.out_len + n > cap:
                cap *= 2
            p = <uint8_t*>realloc(self.out, cap)
            if p == NULL:
                return NULL
            self.out = p
            self.out_cap = cap
        return self.out + self.out_len

    cdef H2Event* _emit(self, _H2Slot* s, int kind, int status) noexcept:
        """Appends the outcome of stream s; NULL if out of memory."""
        cdef H2Event* e
        cdef void* p
        if self.n_events == self.ev_cap:
            p = realloc(self.ev, 2 * self.ev_cap * sizeof(H2Event))
            if p == NULL:
                return NULL
            self.ev = <H2Event*>p
            self.ev_cap *= 2
        e = &self.ev[self.n_events]
        e.kind = kind
        e.status = status
        e.sent_ns = s.sent_ns
        e.intended_ns = s.intended_ns
        e.body_bytes = s.body_bytes
        e.grpc = s.grpc_status
        e.first_ns = s.first_ns
        e.events = s.events if s.mode else -1
        e.entry = s.entry
        e.capture = NULL
        e.capture_len = 0
        self.n_events += 1
        return e

    cdef int _observe(self, _H2Slot* s, int64_t k) noexcept:
        cdef H2Observation* o
        cdef void* p
        if self.n_obs == self.ob_cap:
            p = realloc(self.obs, 2 * self.ob_cap * sizeof(H2Observation))
            if p == NULL:
                return -1
            self.obs = <H2Observation*>p
            self.ob_cap *= 2
        o = &self.obs[self.n_obs]
        o.intended_ns = s.intended_ns
        o.prev_ns = s.last_event_ns
        o.count = k
        self.n_obs += 1
        s.events += k
        s.last_event_ns = self.rx_ns
        return 0

    # Capture buffers (sampled streams, for the checks) are kept for the session's next sampled
    # streams rather than freed: one allocation per concurrently captured stream, not per
    # stream. All have capture_limit bytes; a changed limit retires the old ones.

    cdef uint8_t* _cap_take(self) noexcept:
        if self._cap_size != self.capture_limit:
            while self._cap_free_n:
                self._cap_free_n -= 1
                free(self._cap_free[self._cap_free_n])
            self._cap_size = self.capture_limit
        if self._cap_free_n:
            self._cap_free_n -= 1
            return self._cap_free[self._cap_free_n]
        return <uint8_t*>malloc(self._cap_size)

    cdef void _cap_give(self, uint8_t* buf, Py_ssize_t size) noexcept:
        cdef void* p
        if buf == NULL:
            return
        if size != self._cap_size:
            free(buf)
            return
        if self._cap_free_n == self._cap_free_cap:
            p = realloc(self._cap_free, (2 * self._cap_free_cap + 4) * sizeof(uint8_t*))
            if p == NULL:
                free(buf)
                return
            self._cap_free = <uint8_t**>p
            self._cap_free_cap = 2 * self._cap_free_cap + 4
        self._cap_free[self._cap_free_n] = buf
        self._cap_free_n += 1

    cdef void clear_out(self) noexcept:
        self.out_len = 0

    cdef void clear_events(self) noexcept:
        cdef int i
        if self.n_ev_caps:
            for i in range(self.n_events):
                if self.ev[i].capture != NULL:
                    self._cap_give(self.ev[i].capture, self.ev[i].capture_size)
                    self.ev[i].capture = NULL
            self.n_ev_caps = 0
        self.n_events = 0
        self.n_obs = 0

    # ---- outbound control frames ------------------------------------------------------------

    cdef int _put_frame(self, uint8_t ftype, uint8_t flags, uint32_t sid,
                        const uint8_t* payload, uint32_t n) noexcept:
        cdef uint8_t* p = self._reserve(9 + n)
        if p == NULL:
            return -1
        _wr_fh(p, n, ftype, flags, sid)
        if n:
            memcpy(p + 9, payload, n)
        self.out_len += 9 + n
        return 0

    cdef int _put_u32(self, uint8_t ftype, uint32_t sid, uint32_t v) noexcept:
        cdef uint8_t b[4]
        _wr32(b, v)
        return self._put_frame(ftype, 0, sid, b, 4)

    cdef int _conn_error(self, int code, const char* msg) noexcept:
        cdef uint8_t b[8]
        if self._dead:
            return -1
        self._dead = True
        self.error_code = code
        self._err = msg
        # Last-Stream-ID 0: we never process server-initiated streams.
        _wr32(b, 0)
        _wr32(b + 4, <uint32_t>code)
        self._put_frame(F_GOAWAY, 0, 0, b, 8)
        return -1

    def error_msg(self):
        return self._err.decode() if self._err != NULL else ""

    # ---- streams ----------------------------------------------------------------------------

    cdef inline _H2Slot* _lookup(self, uint32_t sid) noexcept:
        cdef _H2Slot* s = &self._slots[((sid - 1) >> 1) & self._mask]
        if s.state == ST_OPEN and s.sid == sid:
            return s
        return NULL

    cdef inline void _update_exhausted(self) noexcept:
        self.exhausted = self.in_flight == 0 and (
            self.goaway_received or self._next_sid > MAX_SID or self._dead)

    cdef int _finish(self, _H2Slot* s, int kind, int status) noexcept:
        cdef H2Event* e = self._emit(s, kind, status)
        cdef int r = 0 if e != NULL else -1
        if e != NULL and s.cap != NULL:
            # The capture goes with the event; clear_events returns it to the pool.
            e.capture = s.cap
            e.capture_len = s.cap_len
            e.capture_size = s.cap_size
            self.n_ev_caps += 1
        else:
            self._cap_give(s.cap, s.cap_size)
        s.cap = NULL
        if s.body_off < s.req_body_len:
            self._n_pending -= 1
            if kind == EV_DONE:
                # The response is complete while our half is still open: close it without
                # sending the rest of the body (RFC 9113 8.1).
                if self._put_u32(F_RST_STREAM, s.sid, H2_NO_ERROR) < 0:
                    r = -1
        s.state = ST_FREE
        self.in_flight -= 1
        self._update_exhausted()
        if r < 0:
            return self._conn_error(H2_INTERNAL_ERROR, b"out of memory")
        return 0

    cdef int _stream_error(self, _H2Slot* s, int code) noexcept:
        if self._put_u32(F_RST_STREAM, s.sid, <uint32_t>code) < 0:
            return self._conn_error(H2_INTERNAL_ERROR, b"out of memory")
        return self._finish(s, EV_RESET, -1)

    cdef void start(self) noexcept:
        cdef uint8_t b[18]
        cdef uint8_t* p = self._reserve(24)
        if p == NULL:
            return
        memcpy(p, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24)
        self.out_len += 24
        # HEADER_TABLE_SIZE=4096, ENABLE_PUSH=0, INITIAL_WINDOW_SIZE=2^31-1: with the largest
        # stream window the peer almost never waits for our stream WINDOW_UPDATEs.
        b[0] = 0; b[1] = 1; _wr32(b + 2, 4096)
        b[6] = 0; b[7] = 2; _wr32(b + 8, 0)
        b[12] = 0; b[13] = 4; _wr32(b + 14, MAX_WINDOW)
        self._put_frame(F_SETTINGS, 0, 0, b, 18)
        self._put_u32(F_WINDOW_UPDATE, 0, MAX_WINDOW - 65535)
        self._conn_recv_window = MAX_WINDOW

    cdef bint can_submit(self) noexcept:
        cdef int64_t limit = self._max_streams
        if self.peer_max_concurrent < limit:
            limit = self.peer_max_concurrent
        return (not self._dead and not self.goaway_received and self.in_flight < limit
                and self._next_sid <= MAX_SID)

    cdef int submit(self, int64_t sent_ns) noexcept:
        return self.submit_at(sent_ns, sent_ns)

    cdef _H2Slot* _open(self, int64_t sent_ns, int64_t intended_ns, int entry,
                        const uint8_t* body, Py_ssize_t body_len) noexcept:
        """The slot of a new stream (not yet counted in flight), its id in s.sid; NULL when no
        stream may be opened."""
        cdef uint32_t sid
        cdef _H2Slot* s
        if not self.can_submit():
            return NULL
        sid = self._next_sid
        # in_flight < max_streams <= nslots/2 guarantees a free slot within a few steps.
        while True:
            s = &self._slots[((sid - 1) >> 1) & self._mask]
            if s.state == ST_FREE:
                break
            sid += 2
        if sid > MAX_SID:
            self._next_sid = sid
            self._update_exhausted()
            return NULL
        s.sid = sid
        s.status = 0
        s.sent_ns = sent_ns
        s.intended_ns = intended_ns
        s.body_bytes = 0
        s.recv_consumed = 0
        s.grpc_status = -1
        s.first_ns = 0
        s.mode = MODE_PLAIN
        s.events = 0
        s.last_event_ns = -1
        s.send_win = self.peer_initial_window
        s.body_off = 0
        s.entry = entry
        s.req_body = body
        s.req_body_len = body_len
        s.cap_len = 0
        return s

    cdef int _opened(self, _H2Slot* s) noexcept:
        """s's HEADERS are in out: it is in flight, and its body goes out as the windows allow."""
        s.state = ST_OPEN
        self._next_sid = s.sid + 2
        self.in_flight += 1
        self.exhausted = False
        if s.body_off < s.req_body_len:
            self._n_pending += 1
            return self._pump(s)
        return 0

    cdef int submit_at(self, int64_t sent_ns, int64_t intended_ns) noexcept:
        """submit() for the open model: latency is then measured from intended_ns."""
        cdef RequestTemplate t = self._tmpl
        cdef _H2Slot* s = self._open(sent_ns, intended_ns, -1, t.body, t.body_len)
        cdef uint8_t* p
        cdef Py_ssize_t off = 0, n
        cdef bint whole
        if s == NULL:
            return -1
        # The common case: both windows take the whole body and the template goes out as is.
        whole = t.body_len <= self.conn_send_window and t.body_len <= self.peer_initial_window
        n = t.frames_len if whole else t.hdr_len
        p = self._reserve(n)
        if p == NULL:
            return -1
        memcpy(p, t.frames, n)
        while off < n:
            _wr32(p + off + 5, s.sid)
            off += 9 + _rd24(p + off)
        self.out_len += n
        if whole:
            s.send_win -= t.body_len
            self.conn_send_window -= t.body_len
            s.body_off = t.body_len
        if self._opened(s) < 0:
            return -1
        t.sent(self.peer_max_frame_size)
        return 0

    cdef int submit_entry(self, int64_t sent_ns, int64_t intended_ns, int entry,
                          const uint8_t* block, Py_ssize_t blen, const uint8_t* body,
                          Py_ssize_t body_len, bint capture=False) noexcept:
        """submit_at() for one of several request variants: its own stateless header block
        and body (both kept alive by the caller), written straight to the output. capture:
        keep the response body (up to capture_limit) for the checks, in the event's capture."""
        cdef _H2Slot* s = self._open(sent_ns, intended_ns, entry, body, body_len)
        cdef uint8_t* p
        if s == NULL:
            return -1
        p = self._reserve(_headers_size(blen, self.peer_max_frame_size))
        if p == NULL:
            return -1
        self.out_len += _write_headers(p, block, blen, body_len == 0, self.peer_max_frame_size,
                                       s.sid)
        if capture and self.capture_limit > 0:
            s.cap = self._cap_take()  # sampled requests only
            s.cap_size = self._cap_size
        return self._opened(s)

    cdef int _pump(self, _H2Slot* s) noexcept:
        """DATA for as much of the stream's body as both send windows allow."""
        cdef const uint8_t* body = s.req_body
        cdef int64_t avail, chunk
        cdef uint8_t* p
        while s.body_off < s.req_body_len:
            avail = s.send_win if s.send_win < self.conn_send_window else self.conn_send_window
            if avail <= 0:
                return 0
            chunk = s.req_body_len - s.body_off
            if chunk > avail:
                chunk = avail
            if chunk > self.peer_max_frame_size:
                chunk = self.peer_max_frame_size
            p = self._reserve(9 + chunk)
            if p == NULL:
                return self._conn_error(H2_INTERNAL_ERROR, b"out of memory")
            _wr_fh(p, <uint32_t>chunk, F_DATA,
                   FL_END_STREAM if s.body_off + chunk == s.req_body_len else 0, s.sid)
            memcpy(p + 9, body + s.body_off, chunk)
            self.out_len += 9 + chunk
            s.body_off += chunk
            s.send_win -= chunk
            self.conn_send_window -= chunk
        self._n_pending -= 1
        return 0

    cdef int _pump_all(self) noexcept:
        """The connection window grew: the waiting streams share it, starting where the last
        round stopped so that no stream starves."""
        cdef uint32_t k, i, start = self._pump_next
        cdef int64_t before
        cdef _H2Slot* s
        if self._n_pending == 0:
            return 0
        for k in range(self._mask + 1):
            if self.conn_send_window <= 0 or self._n_pending == 0:
                break
            i = (start + k) & self._mask
            s = &self._slots[i]
            if s.state == ST_OPEN and s.body_off < s.req_body_len:
                before = s.body_off
                if self._pump(s) < 0:
                    return -1
                if s.body_off != before:
                    self._pump_next = (i + 1) & self._mask
        return 0

    cdef int expire(self, int64_t older_than_ns) noexcept:
        cdef uint32_t i
        cdef int n = 0
        cdef _H2Slot* s
        for i in range(self._mask + 1):
            s = &self._slots[i]
            if s.state == ST_OPEN and s.sent_ns < older_than_ns:
                self._put_u32(F_RST_STREAM, s.sid, H2_CANCEL)
                self._finish(s, EV_TIMEOUT, 0)
                n += 1
        return n

    cdef void fail_open_streams(self) noexcept:
        """The connection is gone (reset, EOF, connection error): each open stream ends with an
        EV_RESET event so that the session can count it."""
        cdef uint32_t i
        for i in range(self._mask + 1):
            if self._slots[i].state == ST_OPEN:
                self._finish(&self._slots[i], EV_RESET, 0)

    cdef int64_t oldest_sent_ns(self) noexcept:
        cdef uint32_t i
        cdef int64_t oldest = -1
        for i in range(self._mask + 1):
            if self._slots[i].state == ST_OPEN and (oldest < 0 or self._slots[i].sent_ns < oldest):
                oldest = self._slots[i].sent_ns
        return oldest

    # ---- inbound ----------------------------------------------------------------------------

    cdef int receive(self, const uint8_t* data, Py_ssize_t n) noexcept:
        cdef Py_ssize_t take, flen
        if self._dead:
            return -1
        if self._pend_len:
            if self._pend_len < 9:
                take = 9 - self._pend_len
                if take > n:
                    take = n
                memcpy(self._pend + self._pend_len, data, take)
                self._pend_len += take
                data += take
                n -= take
                if self._pend_len < 9:
                    return 0
                if _rd24(self._pend) > OUR_MAX_FRAME:
                    return self._conn_error(H2_FRAME_SIZE_ERROR, b"frame larger than MAX_FRAME_SIZE")
            flen = 9 + _rd24(self._pend)
            take = flen - self._pend_len
            if take > n:
                take = n
            memcpy(self._pend + self._pend_len, data, take)
            self._pend_len += take
            data += take
            n -= take
            if self._pend_len < flen:
                return 0
            self._pend_len = 0
            if self._frame(self._pend) < 0:
                return -1
        while n >= 9:
            flen = _rd24(data)
            if flen > OUR_MAX_FRAME:
                return self._conn_error(H2_FRAME_SIZE_ERROR, b"frame larger than MAX_FRAME_SIZE")
            flen += 9
            if n < flen:
                break
            if self._frame(data) < 0:
                return -1
            data += flen
            n -= flen
        if n:
            # Only the incomplete tail is copied, never the whole input.
            memcpy(self._pend, data, n)
            self._pend_len = n
        return 0

    cdef int _frame(self, const uint8_t* f) noexcept:
        cdef uint32_t length = _rd24(f)
        cdef uint8_t ftype = f[3]
        cdef uint8_t flags = f[4]
        cdef uint32_t sid = _rd32(f + 5) & 0x7FFFFFFF
        cdef const uint8_t* p = f + 9
        if self._cont_sid:
            if ftype != F_CONTINUATION or sid != self._cont_sid:
                return self._conn_error(H2_PROTOCOL_ERROR, b"expected CONTINUATION")
            return self._continuation(flags, p, length)
        if not self._got_settings:
            # The server connection preface is a SETTINGS frame (RFC 9113 3.4).
            if ftype != F_SETTINGS or (flags & FL_ACK):
                return self._conn_error(H2_PROTOCOL_ERROR, b"server preface is not SETTINGS")
            self._got_settings = True
        if ftype == F_DATA:
            return self._data(flags, sid, p, length)
        if ftype == F_HEADERS:
            return self._headers(flags, sid, p, length)
        if ftype == F_SETTINGS:
            return self._settings(flags, sid, p, length)
        if ftype == F_WINDOW_UPDATE:
            return self._window_update(sid, p, length)
        if ftype == F_PING:
            if sid != 0:
                return self._conn_error(H2_PROTOCOL_ERROR, b"PING on a stream")
            if length != 8:
                return self._conn_error(H2_FRAME_SIZE_ERROR, b"PING length is not 8")
            if not (flags & FL_ACK):
                return self._put_frame(F_PING, FL_ACK, 0, p, 8)
            return 0
        if ftype == F_RST_STREAM:
            return self._rst(sid, p, length)
        if ftype == F_GOAWAY:
            return self._goaway(sid, p, length)
        if ftype == F_PRIORITY:
            if sid == 0:
                return self._conn_error(H2_PROTOCOL_ERROR, b"PRIORITY on stream 0")
            if length != 5:
                return self._conn_error(H2_FRAME_SIZE_ERROR, b"PRIORITY length is not 5")
            return 0
        if ftype == F_PUSH_PROMISE:
            return self._conn_error(H2_PROTOCOL_ERROR, b"PUSH_PROMISE with ENABLE_PUSH=0")
        if ftype == F_CONTINUATION:
            return self._conn_error(H2_PROTOCOL_ERROR, b"unexpected CONTINUATION")
        return 0  # unknown frame types are ignored (RFC 9113 4.1)

    cdef inline int _idle(self, uint32_t sid) noexcept:
        # Even ids would be server-initiated (push is off); ids >= _next_sid were never opened.
        return (sid & 1) == 0 or sid >= self._next_sid

    cdef int _data(self, uint8_t flags, uint32_t sid, const uint8_t* p, uint32_t length) noexcept:
        cdef uint32_t dlen = length
        cdef _H2Slot* s
        if sid == 0:
            return self._conn_error(H2_PROTOCOL_ERROR, b"DATA on stream 0")
        if flags & FL_PADDED:
            if length < 1 or p[0] >= length:
                return self._conn_error(H2_PROTOCOL_ERROR, b"DATA padding too long")
            dlen = length - 1 - p[0]
        if self._idle(sid):
            return self._conn_error(H2_PROTOCOL_ERROR, b"DATA on an idle stream")
        # The whole frame (padding included) counts against the connection window even for
        # streams we already closed; replenish in one batch once half the window is used.
        self._conn_recv_window -= length
        if self._conn_recv_window < 0:
            return self._conn_error(H2_FLOW_CONTROL_ERROR, b"connection receive window exceeded")
        self._conn_recv_consumed += length
        if self._conn_recv_consumed > MAX_WINDOW // 2:
            if self._put_u32(F_WINDOW_UPDATE, 0, <uint32_t>self._conn_recv_consumed) < 0:
                return self._conn_error(H2_INTERNAL_ERROR, b"out of memory")
            self._conn_recv_window += self._conn_recv_consumed
            self._conn_recv_consumed = 0
        s = self._lookup(sid)
        if s == NULL:
            return 0
        if s.status == 0:
            return self._stream_error(s, H2_PROTOCOL_ERROR)
        s.body_bytes += dlen
        if s.mode and dlen:
            if self._stream_data(s, p + 1 if flags & FL_PADDED else p, dlen) < 0:
                return self._conn_error(H2_INTERNAL_ERROR, b"out of memory")
        if s.cap != NULL and dlen:
            self._capture(s, p + (1 if flags & FL_PADDED else 0), dlen)
        if flags & FL_END_STREAM:
            return self._finish(s, EV_DONE, s.status)
        s.recv_consumed += length
        if s.recv_consumed > MAX_WINDOW // 2:
            if self._put_u32(F_WINDOW_UPDATE, sid, <uint32_t>s.recv_consumed) < 0:
                return self._conn_error(H2_INTERNAL_ERROR, b"out of memory")
            s.recv_consumed = 0
        return 0

    cdef inline void _capture(self, _H2Slot* s, const uint8_t* p, Py_ssize_t n) noexcept:
        if n > s.cap_size - s.cap_len:
            n = s.cap_size - s.cap_len
        if n > 0:
            memcpy(s.cap + s.cap_len, p, n)
            s.cap_len += n

    cdef int _headers(self, uint8_t flags, uint32_t sid, const uint8_t* p,
                      uint32_t length) noexcept:
        cdef uint32_t pad = 0
        if sid == 0:
            return self._conn_error(H2_PROTOCOL_ERROR, b"HEADERS on stream 0")
        if flags & FL_PADDED:
            if length < 1:
                return self._conn_error(H2_FRAME_SIZE_ERROR, b"HEADERS too short for padding")
            pad = p[0]
            p += 1
            length -= 1
        if flags & FL_PRIORITY:
            if length < 5:
                return self._conn_error(H2_FRAME_SIZE_ERROR, b"HEADERS too short for priority")
            p += 5
            length -= 5
        if pad > length:
            return self._conn_error(H2_PROTOCOL_ERROR, b"HEADERS padding too long")
        length -= pad
        if self._idle(sid):
            return self._conn_error(H2_PROTOCOL_ERROR, b"HEADERS on an idle stream")
        if flags & FL_END_HEADERS:
            return self._header_block(sid, flags & FL_END_STREAM, p, length)
        if self._hbuf_append(p, length) < 0:
            return -1
        self._cont_sid = sid
        self._cont_end_stream = flags & FL_END_STREAM
        return 0

    cdef int _hbuf_append(self, const uint8_t* p, uint32_t n) noexcept:
        cdef Py_ssize_t cap = self._hcap
        cdef uint8_t* b
        if self._hlen + n > MAX_HEADER_BLOCK:
            return self._conn_error(H2_PROTOCOL_ERROR, b"header block too large")
        if self._hlen + n > cap:
            while self._hlen + n > cap:
                cap *= 2
            b = <uint8_t*>realloc(self._hbuf, cap)
            if b == NULL:
                return self._conn_error(H2_INTERNAL_ERROR, b"out of memory")
            self._hbuf = b
            self._hcap = cap
        memcpy(self._hbuf + self._hlen, p, n)
        self._hlen += n
        return 0

    cdef int _continuation(self, uint8_t flags, const uint8_t* p, uint32_t length) noexcept:
        cdef uint32_t sid
        cdef Py_ssize_t n
        if self._hbuf_append(p, length) < 0:
            return -1
        if not (flags & FL_END_HEADERS):
            return 0
        sid = self._cont_sid
        n = self._hlen
        self._cont_sid = 0
        self._hlen = 0
        return self._header_block(sid, self._cont_end_stream, self._hbuf, n)

    cdef int _header_block(self, uint32_t sid, bint end_stream, const uint8_t* p,
                           Py_ssize_t n) noexcept:
        cdef _H2Slot* s
        cdef int status
        # Decoded even for streams we no longer track: the dynamic table must stay in sync.
        if self.hpack.decode(p, n) < 0:
            return self._conn_error(H2_COMPRESSION_ERROR, b"HPACK decoding failed")
        s = self._lookup(sid)
        if s == NULL:
            return 0
        if s.first_ns == 0:
            s.first_ns = self.rx_ns
        if self._grpc:
            self._read_grpc_status(s)
        status = self.hpack.status
        if s.status != 0:
            # Trailers: only valid as the end of the stream.
            if not end_stream:
                return self._stream_error(s, H2_PROTOCOL_ERROR)
            return self._finish(s, EV_DONE, s.status)
        if status < 100 or status > 999 or status == 101:
            return self._stream_error(s, H2_PROTOCOL_ERROR)
        if status < 200:
            # Informational: the final response follows on the same stream.
            if end_stream:
                return self._stream_error(s, H2_PROTOCOL_ERROR)
            return 0
        s.status = status
        self._stream_mode(s)
        if end_stream:
            return self._finish(s, EV_DONE, status)
        return 0

    cdef void _stream_mode(self, _H2Slot* s) noexcept:
        """What counts as an event in this response's body (see the contract)."""
        cdef const uint8_t* v
        cdef size_t n
        if self._grpc:
            s.mode = MODE_GRPC
            grpc_reset(&s.gscan)
        elif self.hpack.find(b"content-type", 12, &v, &n) and event_stream_type(v, n):
            s.mode = MODE_SSE
            sse_reset(&s.sse)

    cdef int _stream_data(self, _H2Slot* s, const uint8_t* p, Py_ssize_t n) noexcept:
        cdef int64_t k
        if s.mode == MODE_SSE:
            k = sse_feed(&s.sse, p, n)
        else:
            k = grpc_feed(&s.gscan, p, n)
        if k:
            return self._observe(s, k)
        return 0

    cdef void _read_grpc_status(self, _H2Slot* s) noexcept:
        cdef const uint8_t* v
        cdef size_t n
        if not self.hpack.find(b"grpc-status", 11, &v, &n):
            return
        if n == 1 and 48 <= v[0] <= 57:
            s.grpc_status = v[0] - 48
        elif n == 2 and 49 <= v[0] <= 57 and 48 <= v[1] <= 57:
            s.grpc_status = (v[0] - 48) * 10 + v[1] - 48
        else:
            s.grpc_status = -2

    cdef int _settings(self, uint8_t flags, uint32_t sid, const uint8_t* p,
                       uint32_t length) noexcept:
        cdef uint32_t i, ident, v
        cdef int64_t delta
        cdef uint32_t k
        cdef _H2Slot* s
        cdef bint grew = False
        if sid != 0:
            return self._conn_error(H2_PROTOCOL_ERROR, b"SETTINGS on a stream")
        if flags & FL_ACK:
            if length != 0:
                return self._conn_error(H2_FRAME_SIZE_ERROR, b"SETTINGS ACK with payload")
            return 0
        if length % 6:
            return self._conn_error(H2_FRAME_SIZE_ERROR, b"SETTINGS length not a multiple of 6")
        i = 0
        while i < length:
            ident = (<uint32_t>p[i] << 8) | p[i + 1]
            v = _rd32(p + i + 2)
            i += 6
            if ident == 2:
                # A server must not enable push towards itself (RFC 9113 6.5.2).
                if v != 0:
                    return self._conn_error(H2_PROTOCOL_ERROR, b"server sent ENABLE_PUSH != 0")
            elif ident == 3:
                self.peer_max_concurrent = v
            elif ident == 4:
                if v > MAX_WINDOW:
                    return self._conn_error(H2_FLOW_CONTROL_ERROR, b"INITIAL_WINDOW_SIZE too large")
                delta = <int64_t>v - self.peer_initial_window
                self.peer_initial_window = v
                grew = grew or delta > 0
                for k in range(self._mask + 1):
                    s = &self._slots[k]
                    if s.state == ST_OPEN:
                        s.send_win += delta
                        if s.send_win > MAX_WINDOW:
                            return self._conn_error(H2_FLOW_CONTROL_ERROR,
                                                    b"stream window overflow")
            elif ident == 5:
                if v < 16384 or v > 16777215:
                    return self._conn_error(H2_PROTOCOL_ERROR, b"MAX_FRAME_SIZE out of range")
                if v != self.peer_max_frame_size:
                    self.peer_max_frame_size = v
                    if self._tmpl.build(v) < 0:
                        return self._conn_error(H2_INTERNAL_ERROR, b"out of memory")
            elif ident == 1:
                self._tmpl.peer_table_size(v, self.peer_max_frame_size)
        if self._put_frame(F_SETTINGS, FL_ACK, 0, NULL, 0) < 0:
            return self._conn_error(H2_INTERNAL_ERROR, b"out of memory")
        if grew:
            return self._pump_all()
        return 0

    cdef int _window_update(self, uint32_t sid, const uint8_t* p, uint32_t length) noexcept:
        cdef uint32_t inc
        cdef _H2Slot* s
        if length != 4:
            return self._conn_error(H2_FRAME_SIZE_ERROR, b"WINDOW_UPDATE length is not 4")
        inc = _rd32(p) & 0x7FFFFFFF
        if sid == 0:
            if inc == 0:
                return self._conn_error(H2_PROTOCOL_ERROR, b"WINDOW_UPDATE increment 0")
            self.conn_send_window += inc
            if self.conn_send_window > MAX_WINDOW:
                return self._conn_error(H2_FLOW_CONTROL_ERROR, b"connection window overflow")
            return self._pump_all()
        if self._idle(sid):
            return self._conn_error(H2_PROTOCOL_ERROR, b"WINDOW_UPDATE on an idle stream")
        s = self._lookup(sid)
        if s == NULL:
            return 0
        if inc == 0:
            return self._stream_error(s, H2_PROTOCOL_ERROR)
        s.send_win += inc
        if s.send_win > MAX_WINDOW:
            return self._stream_error(s, H2_FLOW_CONTROL_ERROR)
        if s.body_off < s.req_body_len:
            return self._pump(s)
        return 0

    cdef int _rst(self, uint32_t sid, const uint8_t* p, uint32_t length) noexcept:
        cdef _H2Slot* s
        cdef uint32_t code
        if sid == 0:
            return self._conn_error(H2_PROTOCOL_ERROR, b"RST_STREAM on stream 0")
        if length != 4:
            return self._conn_error(H2_FRAME_SIZE_ERROR, b"RST_STREAM length is not 4")
        if self._idle(sid):
            return self._conn_error(H2_PROTOCOL_ERROR, b"RST_STREAM on an idle stream")
        s = self._lookup(sid)
        if s == NULL:
            return 0
        code = _rd32(p)
        return self._finish(s, EV_REFUSED if code == H2_REFUSED_STREAM else EV_RESET, 0)

    cdef int _goaway(self, uint32_t sid, const uint8_t* p, uint32_t length) noexcept:
        cdef uint32_t last, k
        cdef _H2Slot* s
        if sid != 0:
            return self._conn_error(H2_PROTOCOL_ERROR, b"GOAWAY on a stream")
        if length < 8:
            return self._conn_error(H2_FRAME_SIZE_ERROR, b"GOAWAY shorter than 8")
        last = _rd32(p) & 0x7FFFFFFF
        self.goaway_received = True
        self.goaway_code = _rd32(p + 4)
        if last < self.last_stream_id:
            self.last_stream_id = last
        for k in range(self._mask + 1):
            s = &self._slots[k]
            if s.state == ST_OPEN and s.sid > self.last_stream_id:
                if self._finish(s, EV_REFUSED, 0) < 0:
                    return -1
        self._update_exhausted()
        return 0

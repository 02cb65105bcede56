# HTTP/3 client request streams (RFC 9114) with QPACK (RFC 9204) limited to the static table:
# the QUIC library hands over STREAM data, this core turns it into per-stream outcomes and
# records them into WorkerStats. No I/O, no clock: the session passes bytes and times.
#
# CONTRACT (native/h3_events.py is the plain-Python reference; tests/test_h3_core.py checks that
# both give the same events for any split of the same bytes):
# cdef class H3Core:
#     __init__(self, WorkerStats stats or None, int streams, bint head=False)
#         streams: the most requests in flight at once; head: responses to HEAD (their
#         Content-Length is not held against the body, nor for 304).
#     open_next(sid, now) -> bool           the next request of the schedule, on stream sid, if
#                                           the limits allow one now (counted as sent)
#     start(sid, intended_ns, sent_ns)      a request outside the schedule (tests)
#     feed(sid, data, end_stream, now) -> int
#         records what completed (responses, malformed responses as protocol errors, SSE
#         events); returns H3_RC_OK, H3_RC_STREAM_ERROR (cancel the stream with
#         H3_MESSAGE_ERROR), H3_RC_UNI (a server unidirectional stream, not parsed here) or an
#         HTTP/3 / QPACK error code >= 0x100 (close the connection with it).
#     reset(sid, now) -> bool               the server reset a stream: a reset error if it was open
#     expire(older_than_ns, now) -> list    streams sent before then: timeouts, their ids returned
#     refuse_from(sid, now) -> list        after GOAWAY(sid): streams from sid on fail as resets
#     fail_all(cls, now, count=True)        the connection ended: what was open fails as cls
#     restamp(t_ns, record_from_ns)         the requests started since the last call are on the
#                                           wire now: their send (and closed-model intended) time
#     oldest_sent_ns() -> int, inflight
# The client advertises SETTINGS_QPACK_MAX_TABLE_CAPACITY 0, so a field line that references
# the dynamic table is QPACK_DECOMPRESSION_FAILED.

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.stdint cimport int64_t, uint8_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcpy, memset

from fastload.native.h1 cimport event_stream_type
from fastload.native.hpack cimport huffman_decode
from fastload.native.outcomes cimport ERROR_PROTOCOL, ERROR_RESET, ERROR_TIMEOUT
from fastload.native.stats cimport WorkerStats
from fastload.native.stream cimport sse_feed, sse_reset

from fastload.workload.qpack import STATIC_TABLE as _QP_STATIC_TABLE

cdef enum:
    _QP_STATIC_LEN = 99
    _F_DATA = 0
    _F_HEADERS = 1
    _F_PUSH_PROMISE = 5
    _STATUS = 1         # what a field is, for the checks after decoding
    _PSEUDO_OTHER = 2
    _REGULAR = 3

# The static table as C strings, built once from workload/qpack.py.
cdef const uint8_t* _qp_names[_QP_STATIC_LEN]
cdef size_t _qp_nlen[_QP_STATIC_LEN]
cdef const uint8_t* _qp_values[_QP_STATIC_LEN]
cdef size_t _qp_vlen[_QP_STATIC_LEN]
# RFC 9110 tchar without uppercase letters: HTTP/3 field names are lowercase (RFC 9114 §4.2).
cdef bint _name_ok[256]


def _qp_build():
    cdef bytes blob_bytes
    cdef uint8_t* blob
    cdef size_t off = 0
    joined = b"".join(n + v for n, v in _QP_STATIC_TABLE)
    if len(_QP_STATIC_TABLE) != _QP_STATIC_LEN:
        raise AssertionError("the QPACK static table has 99 entries")
    # A C copy that lives as long as the process: the hot path never touches Python objects.
    blob_bytes = bytes(joined)
    blob = <uint8_t*>malloc(len(blob_bytes) + 1)
    if blob == NULL:
        raise MemoryError()
    memcpy(blob, <const char*>blob_bytes, len(blob_bytes))
    for i, (name, value) in enumerate(_QP_STATIC_TABLE):
        _qp_names[i] = blob + off
        _qp_nlen[i] = len(name)
        off += len(name)
        _qp_values[i] = blob + off
        _qp_vlen[i] = len(value)
        off += len(value)
    for c in range(256):
        _name_ok[c] = c in b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"


_qp_build()


cdef inline bint _varint(const uint8_t* p, int avail, int* used, uint64_t* out) noexcept:
    """A QUIC varint at p if all of it is among the avail bytes."""
    cdef int n = 1 << (p[0] >> 6)
    cdef int i
    cdef uint64_t v
    if n > avail:
        return False
    v = p[0] & 0x3F
    for i in range(1, n):
        v = (v << 8) | p[i]
    used[0] = n
    out[0] = v
    return True


cdef inline int _qint(const uint8_t* p, Py_ssize_t n, Py_ssize_t* pos, int prefix,
                      uint64_t* out) noexcept:
    """A prefix integer, with the HPACK decoder's limits; -1 if truncated or too large."""
    cdef Py_ssize_t i = pos[0]
    cdef uint64_t mask = (<uint64_t>1 << prefix) - 1
    cdef uint64_t v
    cdef int shift = 0
    cdef uint8_t b
    if i >= n:
        return -1
    v = p[i] & mask
    i += 1
    if v == mask:
        while True:
            if i >= n or shift > 28:
                return -1
            b = p[i]
            i += 1
            v += <uint64_t>(b & 0x7F) << shift
            shift += 7
            if not (b & 0x80):
                break
        if v > 0xFFFFFFFF:
            return -1
    pos[0] = i
    out[0] = v
    return 0


cdef inline int _is_conn_field(const uint8_t* n, size_t k, const uint8_t* v, size_t vk) noexcept:
    """A connection-specific field, malformed in HTTP/3 (RFC 9114 §4.2); te only as "trailers"."""
    if k == 2:
        return n[0] == 116 and n[1] == 101 and not (vk == 8 and _eq(v, b"trailers", 8))
    if k == 10:
        return _eq(n, b"connection", 10) or _eq(n, b"keep-alive", 10)
    if k == 16:
        return _eq(n, b"proxy-connection", 16)
    if k == 17:
        return _eq(n, b"transfer-encoding", 17)
    if k == 7:
        return _eq(n, b"upgrade", 7)
    return False


cdef inline bint _eq(const uint8_t* a, const char* b, size_t k) noexcept:
    cdef size_t i
    for i in range(k):
        if a[i] != <uint8_t>b[i]:
            return False
    return True


cdef inline bint _value_ok(const uint8_t* v, size_t k) noexcept:
    cdef size_t i
    cdef uint8_t c
    if k and (v[0] == 32 or v[0] == 9 or v[k - 1] == 32 or v[k - 1] == 9):
        return False
    for i in range(k):
        c = v[i]
        if c == 0 or c == 10 or c == 13:
            return False
    return True


@cython.final
cdef class H3Core:
    def __cinit__(self, WorkerStats stats, int streams, bint head=False):
        cdef Py_ssize_t i
        self.stats = stats
        self.head = head
        self.streams = streams
        self.cap = 8
        while self.cap < 2 * streams:
            self.cap *= 2
        self.slots = <H3Slot*>malloc(self.cap * sizeof(H3Slot))
        self.ev_cap = 16
        self.ev = <H3Event*>malloc(self.ev_cap * sizeof(H3Event))
        self.scratch_cap = 256
        self.scratch = <uint8_t*>malloc(self.scratch_cap)
        if self.slots == NULL or self.ev == NULL or self.scratch == NULL:
            raise MemoryError()
        for i in range(self.cap):
            self.slots[i].sid = -1
            self.slots[i].hb = NULL
        self.inflight = 0
        self.n_unsent = 0
        self.n_ev = 0

    def __dealloc__(self):
        cdef Py_ssize_t i
        if self.slots != NULL:
            for i in range(self.cap):
                free(self.slots[i].hb)
        free(self.slots)
        free(self.ev)
        free(self.scratch)

    # ---- the stream table: open addressing on the stream id, backward-shift deletion ----

    cdef H3Slot* _find(self, int64_t sid) noexcept:
        cdef Py_ssize_t mask = self.cap - 1
        cdef Py_ssize_t i = (sid >> 2) & mask
        while self.slots[i].sid != -1:
            if self.slots[i].sid == sid:
                return &self.slots[i]
            i = (i + 1) & mask
        return NULL

    cdef void _remove(self, H3Slot* s) noexcept:
        cdef Py_ssize_t mask = self.cap - 1
        cdef Py_ssize_t i = s - self.slots
        cdef Py_ssize_t j = i
        cdef Py_ssize_t home
        free(s.hb)
        s.hb = NULL
        if s.unsent:
            self.n_unsent -= 1
        s.sid = -1
        self.inflight -= 1
        while True:
            j = (j + 1) & mask
            if self.slots[j].sid == -1:
                return
            home = (self.slots[j].sid >> 2) & mask
            # Move j back into the hole at i unless its home lies cyclically in (i, j].
            if (j > i and (home <= i or home > j)) or (j < i and (home <= i and home > j)):
                self.slots[i] = self.slots[j]
                self.slots[j].sid = -1
                self.slots[j].hb = NULL
                i = j

    cdef H3Slot* _insert(self, int64_t sid, int64_t intended_ns, int64_t sent_ns) noexcept:
        """NULL if the table is full or the stream is already open."""
        cdef Py_ssize_t mask = self.cap - 1
        cdef Py_ssize_t i = (sid >> 2) & mask
        cdef H3Slot* s
        if self.inflight * 2 >= self.cap:
            return NULL
        while self.slots[i].sid != -1:
            if self.slots[i].sid == sid:
                return NULL
            i = (i + 1) & mask
        s = &self.slots[i]
        memset(s, 0, sizeof(H3Slot))
        s.sid = sid
        s.intended_ns = intended_ns
        s.sent_ns = sent_ns
        s.content_length = -1
        s.last_event_ns = -1
        s.unsent = True
        sse_reset(&s.scan)
        self.inflight += 1
        self.n_unsent += 1
        return s

    def start(self, int64_t sid, int64_t intended_ns, int64_t sent_ns):
        """A request on stream sid, outside the schedule (tests)."""
        if self._insert(sid, intended_ns, sent_ns) == NULL:
            raise ValueError(f"stream {sid}: already open, or more streams than the core allows")

    def open_next(self, int64_t sid, int64_t now):
        """The next request, on stream sid, if the stream limit, the quota and the schedule
        allow one now: its slot is taken and it counts as sent (the caller then writes it)."""
        cdef int64_t t
        if self.inflight >= self.streams or not self.stats.may_start(now):
            return False
        t = self.stats.take_due(now)
        if t < 0 or self._insert(sid, t, now) == NULL:
            return False
        self.stats.on_sent(now, 1)
        return True

    # ---- parsing ----

    cdef int _push(self, int kind, H3Slot* s, int status, int64_t count, int64_t t_ns,
                   int64_t sent_ns) noexcept:
        cdef H3Event* e
        cdef H3Event* grown
        if self.n_ev == self.ev_cap:
            grown = <H3Event*>realloc(self.ev, 2 * self.ev_cap * sizeof(H3Event))
            if grown == NULL:
                return -1
            self.ev = grown
            self.ev_cap *= 2
        e = &self.ev[self.n_ev]
        self.n_ev += 1
        e.kind = kind
        e.status = status
        e.sid = s.sid
        e.body_bytes = s.body_bytes
        e.count = count
        e.t_ns = t_ns
        e.intended_ns = s.intended_ns
        e.sent_ns = sent_ns
        return 0

    cdef int _feed(self, int64_t sid, const uint8_t* p, Py_ssize_t n, bint end,
                   int64_t now) noexcept:
        cdef H3Slot* s
        cdef int rc
        cdef bint bad_length
        if (sid & 3) == 3:
            return H3_RC_UNI
        s = self._find(sid)
        if s == NULL:  # timed out, reset, or already malformed: the rest is not ours
            return H3_RC_OK
        rc = self._frames(s, p, n, now)
        if rc == 0 and end:
            if s.hdr_len or s.data_left or s.skip_left or s.collecting:
                rc = H3_FRAME_ERROR  # the last frame was cut short (RFC 9114 §7.1)
            else:
                bad_length = (s.content_length >= 0 and s.body_bytes != s.content_length
                              and not (self.head or s.status == 304))
                if s.phase == 0 or bad_length:
                    self._push(H3_EV_MALFORMED, s, 0, 0, 0, s.sent_ns)
                else:
                    self._push(H3_EV_DONE, s, s.status, s.events if s.sse else -1, s.first_ns,
                               s.sent_ns)
                self._remove(s)
                return H3_RC_OK
        if rc == -1:
            self._push(H3_EV_MALFORMED, s, 0, 0, 0, s.sent_ns)
            self._remove(s)
            return H3_RC_OK if end else H3_RC_STREAM_ERROR
        if rc > 0:
            self._remove(s)
        return rc

    cdef int _frames(self, H3Slot* s, const uint8_t* p, Py_ssize_t n, int64_t now) noexcept:
        """0, -1 for a malformed response, or a connection error code."""
        cdef Py_ssize_t pos = 0
        cdef Py_ssize_t take
        cdef int64_t k
        cdef int tn, ln, rc
        cdef uint64_t ftype, flen
        cdef uint8_t* grown
        while pos < n:
            if s.data_left:
                take = n - pos
                if <uint64_t>take > s.data_left:
                    take = <Py_ssize_t>s.data_left
                s.data_left -= take
                s.body_bytes += take
                if s.sse:
                    k = sse_feed(&s.scan, p + pos, take)
                    if k:
                        self._push(H3_EV_OBSERVED, s, 0, k, s.last_event_ns, now)
                        s.events += k
                        s.last_event_ns = now
                pos += take
                continue
            if s.skip_left:
                take = n - pos
                if <uint64_t>take > s.skip_left:
                    take = <Py_ssize_t>s.skip_left
                s.skip_left -= take
                pos += take
                continue
            if s.collecting:
                take = n - pos
                if <size_t>take > s.hb_need - s.hb_len:
                    take = <Py_ssize_t>(s.hb_need - s.hb_len)
                memcpy(s.hb + s.hb_len, p + pos, take)
                s.hb_len += take
                pos += take
                if s.hb_len < s.hb_need:
                    continue
                s.collecting = False
                rc = self._headers(s, s.hb, <Py_ssize_t>s.hb_len, now)
                if rc:
                    return rc
                continue
            s.hdr[s.hdr_len] = p[pos]
            s.hdr_len += 1
            pos += 1
            if not _varint(s.hdr, s.hdr_len, &tn, &ftype):
                continue
            if s.hdr_len == tn or not _varint(s.hdr + tn, s.hdr_len - tn, &ln, &flen):
                continue
            s.hdr_len = 0
            if ftype == _F_HEADERS:
                if s.phase == 2:
                    return H3_FRAME_UNEXPECTED
                if flen > H3_MAX_FIELD_SECTION:
                    return -1
                if <uint64_t>(n - pos) >= flen:
                    # The whole frame is here (the common case): decoded in place.
                    rc = self._headers(s, p + pos, <Py_ssize_t>flen, now)
                    pos += <Py_ssize_t>flen
                    if rc:
                        return rc
                    continue
                if s.hb_cap < flen:
                    grown = <uint8_t*>realloc(s.hb, flen)
                    if grown == NULL:
                        return -1
                    s.hb = grown
                    s.hb_cap = flen
                s.collecting = True
                s.hb_need = flen
                s.hb_len = n - pos
                memcpy(s.hb, p + pos, s.hb_len)
                pos = n
            elif ftype == _F_DATA:
                if s.phase != 1:
                    return H3_FRAME_UNEXPECTED
                s.data_left = flen
            elif ftype <= 0xD and ftype != _F_PUSH_PROMISE and ftype != 0xA and ftype != 0xB \
                    and ftype != 0xC:
                # CANCEL_PUSH, SETTINGS, GOAWAY, MAX_PUSH_ID and the HTTP/2-only types.
                return H3_FRAME_UNEXPECTED
            elif ftype == _F_PUSH_PROMISE:
                return H3_ID_ERROR  # never allowed: we send no MAX_PUSH_ID
            else:
                s.skip_left = flen  # reserved and unknown frame types are ignored
        return 0

    cdef int _headers(self, H3Slot* s, const uint8_t* p, Py_ssize_t n, int64_t now) noexcept:
        """One field section: 0, -1 (malformed) or QPACK_DECOMPRESSION_FAILED."""
        cdef Py_ssize_t pos = 0
        cdef uint64_t v, idx
        cdef uint8_t b
        cdef const uint8_t* name
        cdef const uint8_t* value
        cdef size_t nlen, vlen, i
        cdef Py_ssize_t r
        cdef uint8_t* grown
        cdef bint trailers = s.phase == 1
        cdef bint regular = False
        cdef int status = -1
        cdef int64_t length = -1
        cdef int64_t x
        cdef int sse = -1
        cdef size_t out = 0
        if s.first_ns == 0:
            s.first_ns = now
        # Huffman output is at most 8/5 of its input: twice the section always fits.
        if self.scratch_cap < <size_t>(2 * n):
            grown = <uint8_t*>realloc(self.scratch, 2 * n)
            if grown == NULL:
                return -1
            self.scratch = grown
            self.scratch_cap = 2 * n
        if _qint(p, n, &pos, 8, &v) or v != 0:  # Required Insert Count: no dynamic table
            return QPACK_DECOMPRESSION_FAILED
        if _qint(p, n, &pos, 7, &v):  # sign and Delta Base: meaningless without one
            return QPACK_DECOMPRESSION_FAILED
        while pos < n:
            b = p[pos]
            out = 0
            if b & 0x80:  # indexed field line
                if not (b & 0x40) or _qint(p, n, &pos, 6, &idx) or idx >= _QP_STATIC_LEN:
                    return QPACK_DECOMPRESSION_FAILED
                name = _qp_names[idx]
                nlen = _qp_nlen[idx]
                value = _qp_values[idx]
                vlen = _qp_vlen[idx]
            else:
                if b & 0x40:  # literal with a name reference
                    if not (b & 0x10) or _qint(p, n, &pos, 4, &idx) or idx >= _QP_STATIC_LEN:
                        return QPACK_DECOMPRESSION_FAILED
                    name = _qp_names[idx]
                    nlen = _qp_nlen[idx]
                elif b & 0x20:  # literal with a literal name
                    if _qint(p, n, &pos, 3, &v) or <uint64_t>(n - pos) < v:
                        return QPACK_DECOMPRESSION_FAILED
                    if b & 0x08:
                        r = huffman_decode(p + pos, <size_t>v, self.scratch, self.scratch_cap)
                        if r < 0:
                            return QPACK_DECOMPRESSION_FAILED
                        name = self.scratch
                        nlen = <size_t>r
                        out = nlen
                    else:
                        name = p + pos
                        nlen = <size_t>v
                    pos += <Py_ssize_t>v
                else:  # post-base references: the dynamic table
                    return QPACK_DECOMPRESSION_FAILED
                if pos >= n:
                    return QPACK_DECOMPRESSION_FAILED
                b = p[pos]
                if _qint(p, n, &pos, 7, &v) or <uint64_t>(n - pos) < v:
                    return QPACK_DECOMPRESSION_FAILED
                if b & 0x80:
                    r = huffman_decode(p + pos, <size_t>v, self.scratch + out,
                                       self.scratch_cap - out)
                    if r < 0:
                        return QPACK_DECOMPRESSION_FAILED
                    value = self.scratch + out
                    vlen = <size_t>r
                else:
                    value = p + pos
                    vlen = <size_t>v
                pos += <Py_ssize_t>v
            # The field's checks (RFC 9114 §4.1.2, §4.2, §4.3): any failure is malformed.
            if nlen == 0:
                return -1
            if name[0] == 58:  # ':'
                if trailers or regular or status != -1 or nlen != 7 \
                        or not _eq(name, b":status", 7):
                    return -1
                if vlen != 3:
                    return -1
                status = 0
                for i in range(3):
                    if value[i] < 48 or value[i] > 57:
                        return -1
                    status = status * 10 + value[i] - 48
                if status < 100 or status > 599:
                    return -1
                continue
            regular = True
            for i in range(nlen):
                if not _name_ok[name[i]]:
                    return -1
            if not _value_ok(value, vlen) or _is_conn_field(name, nlen, value, vlen):
                return -1
            if trailers:
                continue
            if nlen == 14 and _eq(name, b"content-length", 14):
                if vlen == 0 or vlen > 18:
                    return -1
                x = 0
                for i in range(vlen):
                    if value[i] < 48 or value[i] > 57:
                        return -1
                    x = x * 10 + value[i] - 48
                if length != -1 and x != length:
                    return -1
                length = x
            elif sse == -1 and nlen == 12 and _eq(name, b"content-type", 12):
                sse = event_stream_type(value, <Py_ssize_t>vlen)
        if trailers:
            s.phase = 2
            return 0
        if status == -1:
            return -1
        if status >= 200:
            s.phase = 1
            s.status = status
            s.content_length = length
            s.sse = sse == 1
        return 0

    # ---- recording ----

    cdef void _record(self, int64_t now) noexcept:
        cdef Py_ssize_t i
        cdef H3Event* e
        cdef WorkerStats st = self.stats
        for i in range(self.n_ev):
            e = &self.ev[i]
            if e.kind == H3_EV_DONE:
                if st.on_response(e.status, e.intended_ns, now, e.sent_ns):
                    st.on_stream_done(e.intended_ns, e.t_ns, e.count)
            elif e.kind == H3_EV_OBSERVED:
                st.on_events(e.intended_ns, now, e.t_ns, e.count)
            elif e.kind == H3_EV_MALFORMED:
                st.on_failure(ERROR_PROTOCOL, e.intended_ns, now, 1)
            elif e.kind == H3_EV_RESET:
                st.on_failure(ERROR_RESET, e.intended_ns, now, 1)
            else:
                st.on_failure(ERROR_TIMEOUT, e.intended_ns, now, 1)
        self.n_ev = 0

    def feed(self, int64_t sid, bytes data not None, bint end_stream, int64_t now):
        cdef int rc = self._feed(sid, <const uint8_t*>PyBytes_AS_STRING(data),
                                 PyBytes_GET_SIZE(data), end_stream, now)
        if self.n_ev:
            self._record(now)
        return rc

    def reset(self, int64_t sid, int64_t now):
        cdef H3Slot* s = self._find(sid)
        if s == NULL:
            return False
        self._push(H3_EV_RESET, s, 0, 0, 0, s.sent_ns)
        self._remove(s)
        self._record(now)
        return True

    def expire(self, int64_t older_than_ns, int64_t now):
        cdef Py_ssize_t i = 0
        late = []
        while i < self.cap:
            # A removal may shift a later slot back into i: look at i again then.
            if self.slots[i].sid != -1 and self.slots[i].sent_ns < older_than_ns:
                late.append(self.slots[i].sid)
                self._push(H3_EV_TIMEOUT, &self.slots[i], 0, 0, 0, self.slots[i].sent_ns)
                self._remove(&self.slots[i])
                continue
            i += 1
        self._record(now)
        return late

    def refuse_from(self, int64_t first_sid, int64_t now):
        """After a GOAWAY: the requests on streams from first_sid on will not be processed;
        they fail as resets (as refused HTTP/2 streams do), their ids returned."""
        cdef Py_ssize_t i = 0
        refused = []
        while i < self.cap:
            if self.slots[i].sid >= first_sid:
                refused.append(self.slots[i].sid)
                self._push(H3_EV_RESET, &self.slots[i], 0, 0, 0, self.slots[i].sent_ns)
                self._remove(&self.slots[i])
                continue
            i += 1
        self._record(now)
        return refused

    def fail_all(self, int cls, int64_t now, bint count=True):
        cdef Py_ssize_t i
        for i in range(self.cap):
            if self.slots[i].sid != -1:
                if count:
                    self.stats.on_failure(cls, self.slots[i].intended_ns, now, 1)
                free(self.slots[i].hb)
                self.slots[i].hb = NULL
                self.slots[i].sid = -1
        self.inflight = 0
        self.n_unsent = 0

    def restamp(self, int64_t t, int64_t record_from_ns):
        """Latency runs from the moment the request is handed to the kernel, as for h1/h2:
        the QUIC library's packet building and encryption is client work, not the server's.
        In the closed model the intended time is the send time, so it moves too; a request
        started in the warm-up stays there (-n counts it so)."""
        cdef Py_ssize_t i
        cdef H3Slot* s
        if self.n_unsent == 0:
            return
        for i in range(self.cap):
            s = &self.slots[i]
            if s.sid != -1 and s.unsent:
                s.unsent = False
                if s.sent_ns < record_from_ns <= t:
                    continue
                if s.intended_ns == s.sent_ns:
                    s.intended_ns = t
                s.sent_ns = t
        self.n_unsent = 0

    def oldest_sent_ns(self):
        cdef Py_ssize_t i
        cdef int64_t oldest = -1
        for i in range(self.cap):
            if self.slots[i].sid != -1 and (oldest < 0 or self.slots[i].sent_ns < oldest):
                oldest = self.slots[i].sent_ns
        return oldest

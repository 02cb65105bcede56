# Test and measurement entry points, kept out of the production classes: H2TestCore drives an
# H2ClientCore from Python with whole byte strings; h2_bench times the session loop in C.

from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdint cimport int64_t, uint8_t, uint32_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

from fastload.native.clock cimport now_ns
from fastload.native.h1 cimport H1ResponseParser
from fastload.native.h2 cimport H2ClientCore, _rd24, _rd32, _wr32
from fastload.native.h3 cimport H3Core, H3Event


cdef class H2TestCore(H2ClientCore):
    """H2ClientCore with a Python API (same constructor): bytes in, (events, bytes out) back."""

    cdef bytes _take_out(self):
        cdef bytes b = self.out[:self.out_len]
        self.clear_out()
        return b

    cdef list _take_events(self):
        cdef list ev
        if self._grpc:
            ev = [(self.ev[i].kind, self.ev[i].status, self.ev[i].sent_ns, self.ev[i].body_bytes,
                   self.ev[i].grpc) for i in range(self.n_events)]
        else:
            ev = [(self.ev[i].kind, self.ev[i].status, self.ev[i].sent_ns,
                   self.ev[i].body_bytes) for i in range(self.n_events)]
        self.clear_events()
        return ev

    def receive_stream_py(self, bytes data, int64_t rx_ns):
        """receive() for the streaming-metrics tests: ([(kind, status, intended_ns, first_ns,
        events)], [(intended_ns, prev_ns, count)], out)."""
        self.rx_ns = rx_ns
        self.receive(data, len(data))
        ev = [(self.ev[i].kind, self.ev[i].status, self.ev[i].intended_ns, self.ev[i].first_ns,
               self.ev[i].events) for i in range(self.n_events)]
        obs = [(self.obs[i].intended_ns, self.obs[i].prev_ns, self.obs[i].count)
               for i in range(self.n_obs)]
        self.clear_events()
        return ev, obs, self._take_out()

    def start_py(self):
        self.start()
        return self._take_out()

    def can_submit_py(self):
        return self.can_submit()

    def submit_py(self, int64_t sent_ns):
        if self.submit(sent_ns) < 0:
            return None
        return self._take_out()

    def receive_py(self, bytes data):
        self.receive(data, len(data))
        return self._take_events(), self._take_out()

    def submit_entry_py(self, int64_t sent_ns, int entry, bytes block, bytes body, bint capture):
        """submit_entry() for tests; the caller keeps block and body alive until the stream ends."""
        if self.submit_entry(sent_ns, sent_ns, entry, <const uint8_t*>(<char*>block), len(block),
                             <const uint8_t*>(<char*>body), len(body), capture) < 0:
            return None
        return self._take_out()

    def receive_entries_py(self, bytes data):
        """receive() for tests of variants: [(kind, status, entry, captured body or None)], out."""
        cdef int i
        self.receive(data, len(data))
        ev = [(self.ev[i].kind, self.ev[i].status, self.ev[i].entry,
               PyBytes_FromStringAndSize(<char*>self.ev[i].capture, self.ev[i].capture_len)
               if self.ev[i].capture != NULL else None) for i in range(self.n_events)]
        self.clear_events()
        return ev, self._take_out()

    def expire_py(self, int64_t older_than_ns):
        self.expire(older_than_ns)
        return self._take_events(), self._take_out()

    property next_stream_id:
        # Settable only so tests can reach the end of the 31-bit id space.
        def __get__(self):
            return self._next_sid

        def __set__(self, uint32_t v):
            self._next_sid = v | 1


def h2_bench(bytes header_block, bytes flight, int n_streams, int rounds):
    """ns per response of the session loop: submit n_streams, receive a recorded flight, clear.

    flight answers streams 1, 3, ... 2*n_streams-1 after the handshake; its stream ids are
    rebased before every round (a few ns, included in the result).
    """
    import time
    cdef H2ClientCore core = H2ClientCore(header_block, b"", n_streams)
    cdef bytes settings = b"\0\0\0\x04\0\0\0\0\0"
    cdef Py_ssize_t n = len(flight), off = 0, nf = 0
    cdef uint8_t* buf = <uint8_t*>malloc(n)
    cdef Py_ssize_t* offs = <Py_ssize_t*>malloc(sizeof(Py_ssize_t) * (n // 9 + 1))
    cdef uint32_t* sids = <uint32_t*>malloc(sizeof(uint32_t) * (n // 9 + 1))
    cdef uint32_t base
    cdef int r, i, j
    cdef int64_t t0, t1
    if buf == NULL or offs == NULL or sids == NULL:
        free(buf); free(offs); free(sids)
        raise MemoryError()
    memcpy(buf, <const uint8_t*>flight, n)
    while off + 9 <= n:
        if _rd32(buf + off + 5):
            offs[nf] = off
            sids[nf] = _rd32(buf + off + 5)
            nf += 1
        off += 9 + _rd24(buf + off)
    core.start()
    core.receive(settings, 9)
    core.clear_out()
    t0 = time.perf_counter_ns()
    for r in range(rounds):
        base = core._next_sid - 1
        for i in range(n_streams):
            core.submit(i)
        for j in range(nf):
            _wr32(buf + offs[j] + 5, sids[j] + base)
        if core.receive(buf, n) < 0 or core.n_events != n_streams:
            free(buf); free(offs); free(sids)
            raise RuntimeError(f"bench round {r}: {core.error_msg()} events={core.n_events}")
        core.clear_events()
        core.clear_out()
    t1 = time.perf_counter_ns()
    free(buf); free(offs); free(sids)
    return (t1 - t0) / (<double>rounds * n_streams)


def h1_parse_bench(bytes data, int reps):
    """ns per response of H1ResponseParser.feed over `data` (whole responses, any number),
    called as the HTTP/1.1 session calls it; divide by the responses in data."""
    cdef H1ResponseParser parser = H1ResponseParser()
    cdef const uint8_t* p = data
    cdef Py_ssize_t n = len(data), off, c
    cdef int _
    cdef int64_t t0 = now_ns()
    for _ in range(reps):
        off = 0
        while off < n:
            c = parser.feed(p + off, n - off)
            if c < 0:
                raise ValueError(parser.error_msg())
            off += c
    return (now_ns() - t0) / <double>reps


def h3_feed(H3Core core, int64_t sid, bytes data, bint end_stream, int64_t now):
    """H3Core.feed without recording: (code, events) as native/h3_events.py gives them."""
    cdef int rc = core._feed(sid, <const uint8_t*><char*>data, len(data), end_stream, now)
    cdef H3Event* e
    events = []
    for i in range(core.n_ev):
        e = &core.ev[i]
        events.append((e.kind, e.sid, e.status, e.body_bytes, e.count, e.t_ns, e.intended_ns,
                       e.sent_ns))
    core.n_ev = 0
    return rc, events

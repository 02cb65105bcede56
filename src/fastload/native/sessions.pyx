# Connection protocols that drive the sans-I/O cores on a uvloop transport and record into
# WorkerStats. Parsing, counting and histograms are C; what does cross into Python:
# - Writes are send(2) on the transport's socket (_Session.send), uvloop's write queue only
#   for what the socket does not take at once.
# - HTTP/1.1: uvloop calls data_received with one new bytes object per read. In the closed
#   model (WriteBatch) the requests a loop iteration's responses made room for are written
#   once its reads are done, each connection's as one send of a pre-built batch, and stamped
#   as sent then; otherwise every fill() that sends makes one send. With request variants a
#   pipelined batch is joined into one new bytes object (a single request is written as its
#   pre-encoded bytes object), at once.
# - HTTP/2: uvloop reads straight into rbuf (get_buffer/buffer_updated: no object per read);
#   each flush is one send of the frames written, from the core's buffer.
# - A sampled response is handed to the Python checker (one call each); a -n run calls
#   on_quota_done once at the end.
#
# Times are CLOCK_MONOTONIC nanoseconds, the same clock as time.monotonic_ns(), so the Python
# engine and these classes compare timestamps directly.

from cpython.bytearray cimport PyByteArray_AS_STRING
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.errno cimport EINTR, errno
from libc.stdint cimport int64_t, uint8_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

from fastload.native.clock cimport now_ns
from fastload.native.h1 cimport H1ResponseParser
from fastload.native.h2 cimport EV_DONE, EV_TIMEOUT, H2ClientCore
from fastload.native.mix cimport RequestMix
from fastload.native.outcomes cimport ERROR_PROTOCOL, ERROR_RESET, ERROR_TIMEOUT
from fastload.native.stats cimport WorkerStats


cdef extern from "sys/socket.h" nogil:
    ssize_t send(int fd, const void* buf, size_t n, int flags)
    int MSG_NOSIGNAL
    int MSG_DONTWAIT


cdef class _Session:
    """Transport plumbing shared by the HTTP/1.1 and HTTP/2 sessions."""

    def __cinit__(self):
        self.fd = -1

    def connection_made(self, transport):
        self.attach(transport)
        self.on_connected()
        self.engine.on_connected(self)

    cdef on_connected(self):
        pass

    def pause_writing(self):
        self.paused = True

    def resume_writing(self):
        self.paused = False
        self.fill()

    cpdef fill(self):
        pass

    def eof_received(self):
        return False

    def connection_lost(self, exc):
        self.detach()  # uvloop closes the socket once this returns
        self.on_lost(exc)
        self.closed = True
        self.engine.on_lost(self, exc)

    cdef on_lost(self, exc):
        pass

    cdef void attach(self, object transport) noexcept:
        """Writes go to the transport's socket itself (send) where the transport writes bytes
        as they are: not over uvloop's TLS (--tls-path python), which encrypts them."""
        self.transport = transport
        self._write = transport.write
        self._buffered = transport.get_write_buffer_size
        self.fd = -1
        try:
            if transport.get_extra_info("sslcontext") is None:
                self.fd = transport.get_extra_info("socket").fileno()
        except Exception:
            pass

    cdef void detach(self) noexcept:
        self.transport = None
        self._write = None
        self._buffered = None
        self.fd = -1

    cdef int send(self, const uint8_t* p, Py_ssize_t n, object obj) noexcept:
        """Writes n bytes at p (obj: a bytes object holding exactly them, or None): 0, or -1
        if the transport's write raised.

        Straight to the socket with send(2), where transport.write would take a bytes object
        through uvloop's write queue only to make the same one write(2). What the socket does
        not take goes to transport.write, which keeps it, waits for room (pausing the session
        above its high-water mark) and reports errors as for any write; later writes follow it
        through the transport until its buffer is empty again, so the byte order holds. The
        socket stays open while the session is: uvloop closes it only after connection_lost
        (detach), and a dropped session (closed) writes nothing."""
        cdef Py_ssize_t sent = 0
        if n == 0 or self._write is None:
            return 0
        if self.queued:
            try:
                self.queued = self._buffered() > 0
            except Exception:
                return -1
        if self.fd >= 0 and not self.queued:
            while True:
                sent = send(self.fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT)
                if sent >= 0 or errno != EINTR:
                    break
            if sent == n:
                return 0
            if sent < 0:
                # EAGAIN: the transport waits for room. Any other error: its write meets the
                # same one and closes the connection as for any failed write.
                sent = 0
        try:
            if obj is not None and sent == 0:
                self._write(obj)
            else:
                self._write(PyBytes_FromStringAndSize(<char*>p + sent, n - sent))
        except Exception:
            return -1
        self.queued = True
        return 0

    cdef void drop(self) noexcept:
        """Close without waiting for anything; the engine reconnects."""
        if self.transport is not None and not self.closed:
            self.closed = True
            try:
                self.transport.abort()
            except Exception:
                pass

    cdef void write_obj(self, object data) noexcept:
        """Sends a bytes object (the plaintext path: no copy)."""
        if self.closed or self.send(<const uint8_t*>PyBytes_AS_STRING(data),
                                    PyBytes_GET_SIZE(data), data) < 0:
            self.drop()

    cdef void write_buf(self, const uint8_t* p, Py_ssize_t n) noexcept:
        """Sends n bytes at p."""
        if self.closed or self.send(p, n, None) < 0:
            self.drop()

    def stop(self):
        """End of run: no new requests; close at once (in-flight requests are not counted)."""
        self.stopping = True
        self.drop()


cdef class WriteBatch:
    """Closed model, HTTP/1.1: the requests that one loop iteration's responses make room for
    are written together once the iteration's reads are done (a ready callback, which uvloop
    runs before it polls again), as wrk writes on the writable event that follows its reads.

    Writing each request as its response is parsed spreads a burst of requests over the time
    the client spends reading: the server, on its own CPU, wakes for the first few and goes
    back to waiting for the rest, and its wake-ups become its cost per request. Written
    together, they reach it as one batch. A request is stamped as sent when it is written,
    not when it was taken, so no latency includes the wait. One callback per loop iteration,
    not per request; the engine leaves it out with --coalesce (whose sleep would hold the
    writes) and in the open model (which sends on its schedule)."""

    def __init__(self, loop):
        self.sessions = []
        self.spare = []
        self.call_soon = loop.call_soon
        self.flush_cb = self.flush

    cdef void add(self, H1Session s) noexcept:
        try:
            self.sessions.append(s)
            if not self.scheduled:
                self.call_soon(self.flush_cb)
                self.scheduled = True
        except Exception:
            # No room for the list or the callback: write at once instead.
            s.write_unsent()

    def flush(self):
        cdef H1Session s
        cdef list todo = self.sessions
        self.sessions = self.spare
        self.scheduled = False
        for s in todo:
            s.write_unsent()
        todo.clear()
        self.spare = todo


cdef class H1Session(_Session):
    """HTTP/1.1 keep-alive with up to `pipeline` requests in flight."""

    def __init__(self, WorkerStats stats, engine, bytes request, int pipeline, bint head_method=False):
        self.stats = stats
        self.engine = engine
        self.parser = H1ResponseParser()
        self.pipeline = pipeline
        self.req_len = len(request)
        self.mix = stats.mix
        # One pre-built write per possible batch size, so filling k slots is one write.
        self.batches = [request * k for k in range(pipeline + 1)] if self.mix is None else []
        self.sent = <int64_t*>malloc(sizeof(int64_t) * pipeline)
        self.intended = <int64_t*>malloc(sizeof(int64_t) * pipeline)
        self.entry = <int*>malloc(sizeof(int) * pipeline)
        if self.sent == NULL or self.intended == NULL or self.entry == NULL:
            raise MemoryError()
        if self.mix is not None and self.mix.sample_p > 0:
            self.cap = <char*>malloc(self.mix.capture_limit)
            if self.cap == NULL:
                raise MemoryError()
        self.head_method = head_method

    def __dealloc__(self):
        free(self.sent)
        free(self.intended)
        free(self.entry)
        free(self.cap)

    cdef on_connected(self):
        self.parser.reset()
        self.parser.expect_no_body = self.head_method
        self.head_reset()

    cdef inline void head_reset(self) noexcept:
        self.head_first_ns = 0
        self.head_events = 0
        self.head_last_event_ns = -1
        self.cap_len = 0

    cpdef fill(self):
        cdef int64_t now, t
        cdef int k = 0, slot
        if self.closed or self.paused or self.stopping or self.must_close:
            return
        if self.mix is not None:
            self.fill_mix()
            return
        now = now_ns()
        while self.inflight < self.pipeline and self.stats.may_start(now):
            t = self.stats.take_due(now)
            if t < 0:
                break
            slot = (self.head + self.inflight) % self.pipeline
            self.sent[slot] = now
            self.intended[slot] = t
            self.inflight += 1
            self.stats.on_sent(now, 1)
            k += 1
        if k == 0:
            return
        if self.batch is not None:
            if self.unsent == 0:
                self.batch.add(self)
            self.unsent += k
            if now >= self.stats.record_from_ns:
                self.unsent_counted += k
            return
        self.stats.count_bytes(now, 0, k * self.req_len)
        self.write_obj(self.batches[k])

    cdef void write_unsent(self) noexcept:
        """Writes the requests fill() took for the batch, stamped now (closed model: intended
        == sent). Those taken during the warm-up keep their intended time, so they stay out of
        the measured window as the quota's count has them. Past the deadline they were never
        sent: taken back, not counted."""
        cdef int i, slot, k = self.unsent, warm = self.unsent - self.unsent_counted
        cdef int64_t now
        if k == 0 or self.closed:
            return
        now = now_ns()
        if not self.stats.running or now >= self.stats.stop_ns:
            self.forget_unsent()
            return
        for i in range(k):
            slot = (self.head + self.inflight - k + i) % self.pipeline
            self.sent[slot] = now
            if i >= warm:
                self.intended[slot] = now
        self.unsent = 0
        self.unsent_counted = 0
        self.stats.count_bytes(now, 0, k * self.req_len)
        self.write_obj(self.batches[k])

    cdef void forget_unsent(self) noexcept:
        self.inflight -= self.unsent
        self.stats.counted -= self.unsent_counted
        self.unsent = 0
        self.unsent_counted = 0

    cdef void fill_mix(self) noexcept:
        """fill() with a variant per request: its pre-encoded bytes, written as they are for
        one request, joined into one write for a pipelined batch."""
        cdef int64_t now = now_ns(), t
        cdef int k = 0, slot, e, i, first = self.inflight
        cdef Py_ssize_t total = 0
        cdef char* w
        while self.inflight < self.pipeline and self.stats.may_start(now):
            t = self.stats.take_due(now)
            if t < 0:
                break
            slot = (self.head + self.inflight) % self.pipeline
            e = self.stats.pick_entry()
            self.entry[slot] = e * 2 + self.mix.sample()
            total += self.mix.entry_len[e]
            self.sent[slot] = now
            self.intended[slot] = t
            if self.inflight == 0:
                self.parser.expect_no_body = self.mix.entry_head[e]
            self.inflight += 1
            self.stats.on_sent(now, 1)
            k += 1
        if k == 0:
            return
        self.stats.count_bytes(now, 0, total)
        if k == 1:
            self.write_obj(<object>self.mix.entry_obj[e])
            return
        try:
            data = PyBytes_FromStringAndSize(NULL, total)
        except MemoryError:
            self.drop()
            return
        w = PyBytes_AS_STRING(data)
        for i in range(first, first + k):
            e = self.entry[(self.head + i) % self.pipeline] >> 1
            memcpy(w, PyBytes_AS_STRING(<object>self.mix.entry_obj[e]), self.mix.entry_len[e])
            w += self.mix.entry_len[e]
        self.write_obj(data)

    cdef inline void capture(self, const uint8_t* p, Py_ssize_t n) noexcept:
        """Keeps the raw bytes of a sampled head response, up to the capture limit."""
        cdef Py_ssize_t room = self.mix.capture_limit - self.cap_len
        if n > room:
            n = room
        if n > 0:
            memcpy(self.cap + self.cap_len, p, n)
            self.cap_len += n

    cdef void mix_failed(self, int slot, int cls, int64_t now) noexcept:
        if self.stats.in_window(self.intended[slot], now):
            self.mix.on_failure(self.entry[slot] >> 1, cls)

    def data_received(self, bytes data):
        # uvloop hands HTTP/1.1 reads over as bytes: one call per read, which costs less than
        # the get_buffer + buffer_updated pair of a BufferedProtocol for reads this small.
        self.on_data(<const uint8_t*>(<char*>data), len(data))

    cdef void on_data(self, const uint8_t* p, Py_ssize_t nbytes) noexcept:
        cdef Py_ssize_t n = nbytes, c
        cdef int64_t ev
        cdef int64_t now = now_ns()
        if self.closed:
            return
        self.stats.count_bytes(now, nbytes, 0)
        while n > 0:
            if self.head_first_ns == 0 and self.inflight:
                self.head_first_ns = now
            c = self.parser.feed(p, n)
            if c < 0:
                self.fail(ERROR_PROTOCOL, now)
                return
            ev = self.parser.done_events if self.parser.complete else self.parser.events
            if ev > self.head_events and self.inflight:
                self.stats.on_events(self.intended[self.head], now, self.head_last_event_ns,
                                     ev - self.head_events)
                self.head_events = ev
                self.head_last_event_ns = now
            if self.cap != NULL and self.inflight and self.entry[self.head] & 1:
                self.capture(p, c)
            if self.parser.complete:
                if not self.complete_one(now):
                    return
            p += c
            n -= c
        if self.must_close:
            if self.inflight == 0:
                self.drop()
            return
        self.fill()

    cdef bint complete_one(self, int64_t now) noexcept:
        cdef int64_t sent
        if self.inflight == 0:
            # A response nobody asked for.
            self.fail(ERROR_PROTOCOL, now)
            return False
        sent = self.sent[self.head]
        if self.stats.on_response(self.parser.status, self.intended[self.head], now, sent):
            self.stats.on_stream_done(self.intended[self.head], self.head_first_ns,
                                      self.parser.done_events if self.parser.done_streaming else -1)
            if self.mix is not None:
                self.mix_response(now)
        self.head_reset()
        self.head = (self.head + 1) % self.pipeline
        self.inflight -= 1
        if self.mix is not None and self.inflight:
            self.parser.expect_no_body = self.mix.entry_head[self.entry[self.head] >> 1]
        if not self.parser.keep_alive:
            self.must_close = True
            if self.inflight:
                # Requests pipelined behind a closing response were never answered.
                self.fail(ERROR_RESET, now)
                return False
        return True

    cdef void mix_response(self, int64_t now) noexcept:
        cdef int e = self.entry[self.head], cls
        self.mix.on_response(e >> 1, self.parser.status, now - self.intended[self.head])
        if e & 1:
            cls = self.mix.run_check(e >> 1, self.parser.status, self.cap, self.cap_len,
                                     self.parser.body_bytes)
            if cls >= 0:
                self.stats.on_check_failed(cls)

    cdef void fail(self, int cls, int64_t now) noexcept:
        """Count every in-flight request as failed with `cls` and drop the connection (the
        requests not written yet were never sent: taken back)."""
        cdef int i
        self.forget_unsent()
        for i in range(self.inflight):
            self.stats.on_failure(cls, self.intended[(self.head + i) % self.pipeline], now, 1)
            if self.mix is not None:
                self.mix_failed((self.head + i) % self.pipeline, cls, now)
        self.inflight = 0
        self.head_reset()
        self.drop()

    def eof_received(self):
        self.on_eof()
        return False

    cdef void on_eof(self) noexcept:
        """The peer ended its byte stream (a FIN, or TLS close_notify): a response delimited
        by the close is complete; anything else in flight failed."""
        cdef int r = self.parser.feed_eof()
        cdef int64_t now = now_ns()
        if r == 1 and self.parser.complete:
            self.complete_one(now)
        if self.inflight:
            # Closed before or in the middle of a response (a Content-Length longer than what
            # came, half a status line): the connection failed, the bytes were not malformed.
            self.fail(ERROR_RESET, now)

    cdef on_lost(self, exc):
        self.forget_unsent()
        if self.inflight and not self.stopping:
            self.fail(ERROR_RESET, now_ns())
        self.inflight = 0

    def oldest_sent_ns(self):
        return self.sent[self.head] if self.inflight else -1

    def expire(self, int64_t older_than_ns):
        """Per-request timeout: the requests in flight are counted as timeouts and the connection
        is replaced (HTTP/1.1 cannot cancel one request and keep the connection)."""
        cdef int i, n = 0
        cdef int64_t now = now_ns()
        if self.inflight - self.unsent == 0 or self.sent[self.head] >= older_than_ns:
            return 0
        self.forget_unsent()
        for i in range(self.inflight):
            self.stats.on_failure(ERROR_TIMEOUT, self.intended[(self.head + i) % self.pipeline], now, 1)
            if self.mix is not None:
                self.mix_failed((self.head + i) % self.pipeline, ERROR_TIMEOUT, now)
            n += 1
        self.inflight = 0
        self.head_reset()
        self.drop()
        return n


cdef class H2Session(_Session):
    """HTTP/2 with up to `streams` concurrent streams on one connection."""

    def __cinit__(self, *args, **kwargs):
        self.rbuf = bytearray(READ_BUFFER_SIZE)
        self.rview = memoryview(self.rbuf)
        self.rptr = <uint8_t*>PyByteArray_AS_STRING(self.rbuf)

    def get_buffer(self, Py_ssize_t sizehint):
        return self.rview

    def __init__(self, WorkerStats stats, engine, bytes header_block, bytes body, int streams,
                 bytes first_block=None, int64_t table_need=0, bytes stateless_block=None,
                 bint grpc=False):
        self.stats = stats
        self.engine = engine
        self.grpc = grpc
        self.core = H2ClientCore(header_block, body, streams, first_block, table_need,
                                 stateless_block, grpc)
        self.mix = stats.mix
        if self.mix is not None and self.mix.entry_body == NULL:
            raise ValueError("an HTTP/2 request mix needs header blocks and bodies")
        if self.mix is not None and self.mix.sample_p > 0:
            self.core.capture_limit = self.mix.capture_limit

    cdef void flush(self) noexcept:
        cdef Py_ssize_t n = self.core.out_len
        if n == 0 or self.closed:
            self.core.clear_out()
            return
        self.stats.count_bytes(now_ns(), 0, n)
        self.write_buf(self.core.out, n)
        self.core.clear_out()

    cdef on_connected(self):
        self.core.start()
        self.flush()

    cpdef fill(self):
        cdef int64_t now, t, limit
        if self.closed or self.paused or self.stopping:
            return
        if not self.stats.schedule.paced and self.core.in_flight:
            # Closed model: refill once a quarter of the streams are free, not after every
            # response. A server that answers a few responses per write (nginx) would otherwise
            # get one write per read back, a few requests each: the syscalls and wake-ups on
            # both sides, not the requests, then set the CPU cost (measured against nginx over
            # TLS, -c 8 -m 32: 16.6 -> 13.3 µs of worker CPU a request, requests/s +7%). The open
            # model sends on schedule and never waits here.
            limit = self.core._max_streams
            if self.core.peer_max_concurrent < limit:
                limit = self.core.peer_max_concurrent
            if self.core.in_flight > limit - (limit >> 2 if limit >= 4 else 1):
                self.flush()  # what the core wrote meanwhile: ACKs, WINDOW_UPDATEs, body DATA
                return
        now = now_ns()
        if self.mix is not None:
            self.fill_mix(now)
            return
        while self.core.can_submit() and self.stats.may_start(now):
            t = self.stats.take_due(now)
            if t < 0:
                break
            if self.core.submit_at(now, t) < 0:
                break
            self.stats.on_sent(now, 1)
        self.flush()

    cdef void handle_observations(self, int64_t now) noexcept:
        cdef int i
        for i in range(self.core.n_obs):
            self.stats.on_events(self.core.obs[i].intended_ns, now, self.core.obs[i].prev_ns,
                                 self.core.obs[i].count)

    cdef void fill_mix(self, int64_t now) noexcept:
        """fill() with a variant per request: its header block and body."""
        cdef int64_t t
        cdef int e
        cdef RequestMix m = self.mix
        while self.core.can_submit() and self.stats.may_start(now):
            t = self.stats.take_due(now)
            if t < 0:
                break
            e = self.stats.pick_entry()
            if self.core.submit_entry(now, t, e,
                                      <const uint8_t*>PyBytes_AS_STRING(<object>m.entry_obj[e]),
                                      m.entry_len[e],
                                      <const uint8_t*>PyBytes_AS_STRING(<object>m.entry_body[e]),
                                      m.entry_body_len[e], m.sample()) < 0:
                break
            self.stats.on_sent(now, 1)
        self.flush()

    cdef inline void mix_event(self, int i, int cls, int64_t now) noexcept:
        """Per-variant record of event i: cls < 0 for a recorded response."""
        cdef int e, checked
        e = self.core.ev[i].entry
        if e < 0:
            return
        if cls < 0:
            self.mix.on_response(e, self.core.ev[i].status, now - self.core.ev[i].intended_ns)
            if self.core.ev[i].capture != NULL:
                checked = self.mix.run_check(
                    e, self.core.ev[i].status, <const char*>self.core.ev[i].capture,
                    self.core.ev[i].capture_len, self.core.ev[i].body_bytes)
                if checked >= 0:
                    self.stats.on_check_failed(checked)
        elif self.stats.in_window(self.core.ev[i].intended_ns, now):
            self.mix.on_failure(e, cls)

    cdef inline void handle_events(self, int64_t now) noexcept:
        self.handle_events_as(-1, now)

    def buffer_updated(self, Py_ssize_t nbytes):
        self.on_plain(self.rptr, nbytes)

    cdef void on_plain(self, const uint8_t* p, Py_ssize_t nbytes) noexcept:
        """nbytes of the connection's (decrypted) byte stream at p."""
        cdef int64_t now = now_ns()
        cdef int rc
        if self.closed:
            return
        self.stats.count_bytes(now, nbytes, 0)
        self.core.rx_ns = now
        rc = self.core.receive(p, nbytes)
        self.handle_events(now)
        if rc < 0:
            self.fail_all(ERROR_PROTOCOL, now)
            return
        if self.core.exhausted:
            self.flush()
            self.drop()
            return
        self.fill()

    cdef void fail_all(self, int cls, int64_t now) noexcept:
        # Connection error: flush the GOAWAY the core wrote, count what was in flight.
        self.flush()
        self.core.fail_open_streams()
        self.handle_events_as(cls, now)
        self.drop()

    cdef void handle_events_as(self, int cls, int64_t now) noexcept:
        """Records the core's events: responses as responses; streams that produced none as
        their kind says (EV_TIMEOUT: timeout; EV_RESET, EV_REFUSED: reset) or, with cls >= 0,
        all as cls (the connection failed)."""
        cdef int i, kind, failed
        if self.core.n_obs:
            self.handle_observations(now)
        for i in range(self.core.n_events):
            kind = self.core.ev[i].kind
            if kind == EV_DONE:
                if self.stats.on_response(self.core.ev[i].status, self.core.ev[i].intended_ns, now,
                                          self.core.ev[i].sent_ns):
                    self.stats.on_stream_done(self.core.ev[i].intended_ns, self.core.ev[i].first_ns,
                                              self.core.ev[i].events)
                    if self.grpc:
                        self.stats.on_grpc(self.core.ev[i].grpc)
                    if self.mix is not None:
                        self.mix_event(i, -1, now)
                continue
            failed = cls if cls >= 0 else (ERROR_TIMEOUT if kind == EV_TIMEOUT else ERROR_RESET)
            self.stats.on_failure(failed, self.core.ev[i].intended_ns, now, 1)
            if self.mix is not None:
                self.mix_event(i, failed, now)
        self.core.clear_events()

    cdef on_lost(self, exc):
        if not self.stopping and self.core.in_flight:
            self.core.fail_open_streams()
            self.handle_events_as(ERROR_RESET, now_ns())

    def oldest_sent_ns(self):
        return self.core.oldest_sent_ns()

    def expire(self, int64_t older_than_ns):
        cdef int n
        if self.closed:
            return 0
        n = self.core.expire(older_than_ns)
        if n:
            self.handle_events(now_ns())
            self.flush()
            self.fill()
        return n

    @property
    def inflight(self):
        return self.core.in_flight

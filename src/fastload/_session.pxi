# Connection protocols that drive the sans-I/O cores on a uvloop transport, and the per-worker
# counters they write into. uvloop calls get_buffer/buffer_updated once per read; everything
# that happens per response below that call is C: no Python object, no Python callback.
#
# Times are CLOCK_MONOTONIC nanoseconds, the same clock as time.monotonic_ns(), so the Python
# engine and these classes compare timestamps directly.

from cpython.bytearray cimport PyByteArray_AS_STRING
from libc.math cimport log, sqrt
from cpython.bytes cimport PyBytes_FromStringAndSize

DEF READ_BUFFER_SIZE = 65536
DEF MAX_STATUS = 600
# gRPC status codes 0..16; a call that ended without grpc-status is counted at GRPC_MISSING.
DEF GRPC_CODES = 17
DEF GRPC_MISSING = 17

# Error classes; indexes into WorkerStats.errors. Names match errors.ERROR_CLASSES.
DEF ERR_CONNECT = 0
DEF ERR_TIMEOUT = 1
DEF ERR_RESET = 2
DEF ERR_PROTOCOL = 3
DEF ERR_CHECK = 4      # a sampled response failed a check (--check-*, scenario checks)
DEF N_ERR = 5

ERROR_CONNECT = ERR_CONNECT
ERROR_TIMEOUT = ERR_TIMEOUT
ERROR_RESET = ERR_RESET
ERROR_PROTOCOL = ERR_PROTOCOL
ERROR_CHECK = ERR_CHECK


def monotonic_ns():
    """The clock the sessions stamp requests with."""
    return now_ns()


cdef class WorkerStats:
    """Everything one worker measures. Written by the sessions on the hot path, read by the
    worker's 1 s timer and at the end. Recording rules:
    - a response counts only if its request was sent at/after record_from_ns (warm-up excluded)
      and it completed before stop_ns (the deadline);
    - with a quota (-n), requests that fail do not use up the quota, so exactly `quota`
      responses complete unless the run is stopped."""

    cdef public Histogram hist           # latency: from the intended send time in the open model
    cdef public Histogram interval_hist
    cdef public Histogram service_hist   # from the actual send time (== hist in the closed model)
    cdef public Histogram lag_hist       # actual minus intended send time (open model)
    # Streaming metrics, all from the intended send time like `hist`.
    cdef public Histogram ttfb_hist      # first response byte (h1) / first HEADERS (h2)
    cdef public Histogram ttfe_hist      # first event of a stream (SSE event, gRPC message, chunk)
    cdef public Histogram gap_hist       # between consecutive events of one stream
    cdef public Histogram events_hist    # events per streamed response
    cdef public int64_t streams          # responses that were streams
    cdef public int64_t stream_events    # their events
    cdef public int64_t requests
    cdef public int64_t bytes_in
    cdef public int64_t bytes_out
    cdef int64_t errors[N_ERR]
    cdef int64_t status[MAX_STATUS]
    cdef int64_t grpc[GRPC_CODES + 1]
    cdef public double sum_ns
    cdef public double sumsq_ns
    cdef public int64_t min_ns
    cdef public int64_t max_ns
    cdef public int64_t record_from_ns
    cdef public int64_t stop_ns
    cdef public bint running
    cdef public int64_t quota
    cdef public int64_t counted
    cdef public int64_t interval_requests
    cdef public int64_t interval_errors
    cdef public object on_quota_done
    # Open model: a schedule of intended send times, piecewise-linear rate (stages).
    cdef public bint paced
    cdef bint poisson
    cdef uint64_t rng
    cdef int n_stages
    cdef int stage
    cdef int64_t stage_start_ns[64]
    cdef int64_t stage_len_ns[64]
    cdef double stage_r0[64]          # requests per ns at the stage start
    cdef double stage_r1[64]          # ... and at its end
    cdef int64_t stage_k               # requests issued in the current stage (constant/ramp)
    cdef double poisson_t              # ns into the current stage of the next Poisson arrival
    cdef public int64_t next_intended_ns
    cdef public int64_t schedule_end_ns
    cdef public int64_t scheduled       # intended sends issued
    cdef public int64_t max_queue_delay_ns
    # --scenario/--replay: the pre-encoded requests and per-variant results (None: one request).
    cdef public RequestMix mix
    # --replay: the schedule is an explicit list of intended times, each with its entry.
    cdef int64_t* replay_t
    cdef int* replay_e
    cdef Py_ssize_t replay_n
    cdef Py_ssize_t replay_k
    cdef int next_entry
    cdef int taken_entry

    def __cinit__(self):
        self.hist = Histogram(1, 60_000_000, 3)
        self.interval_hist = Histogram(1, 60_000_000, 3)
        self.service_hist = Histogram(1, 60_000_000, 3)
        self.lag_hist = Histogram(1, 60_000_000, 3)
        self.ttfb_hist = Histogram(1, 60_000_000, 3)
        self.ttfe_hist = Histogram(1, 60_000_000, 3)
        self.gap_hist = Histogram(1, 60_000_000, 3)
        self.events_hist = Histogram(1, 60_000_000, 3)
        self.min_ns = -1
        self.record_from_ns = 1 << 62
        self.stop_ns = 1 << 62
        self.quota = -1

    def __dealloc__(self):
        free(self.replay_t)
        free(self.replay_e)

    cdef inline bint may_start(self, int64_t now) noexcept:
        if not self.running or now >= self.stop_ns:
            # The deadline timer may run a little late: nothing is sent past the deadline.
            return False
        if self.quota < 0 or now < self.record_from_ns:
            return True
        return self.counted < self.quota

    cdef inline void on_sent(self, int64_t now, int64_t n) noexcept:
        if now >= self.record_from_ns:
            self.counted += n

    def set_schedule(self, int64_t start_ns, list stages, bint poisson=False, uint64_t seed=1):
        """Open model. stages: [(duration_ns, rate_from, rate_to)] in requests/s for this worker;
        intended send times are laid out from start_ns, independent of responses."""
        cdef int i
        cdef int64_t t = start_ns
        if not stages or len(stages) > 64:
            raise ValueError("1 to 64 stages")
        self.n_stages = len(stages)
        for i, (dur, r0, r1) in enumerate(stages):
            self.stage_start_ns[i] = t
            self.stage_len_ns[i] = dur
            self.stage_r0[i] = r0 / 1e9
            self.stage_r1[i] = r1 / 1e9
            t += dur
        self.schedule_end_ns = t
        self.poisson = poisson
        self.rng = seed * <uint64_t>0x9E3779B97F4A7C15ULL + 1
        self.paced = True
        self.stage = 0
        self.stage_k = 0
        self.poisson_t = 0.0
        self.next_intended_ns = start_ns
        self.advance_schedule(True)

    def set_replay(self, int64_t start_ns, list offsets_ns, list entries):
        """Open model from a trace: request i is intended at start_ns + offsets_ns[i] (sorted)
        and sends entry entries[i] of the mix."""
        cdef Py_ssize_t i, n = len(offsets_ns)
        if n == 0 or len(entries) != n:
            raise ValueError("a non-empty schedule with one entry per request")
        free(self.replay_t)
        free(self.replay_e)
        self.replay_t = <int64_t*>malloc(sizeof(int64_t) * n)
        self.replay_e = <int*>malloc(sizeof(int) * n)
        if self.replay_t == NULL or self.replay_e == NULL:
            raise MemoryError()
        for i in range(n):
            self.replay_t[i] = start_ns + offsets_ns[i]
            self.replay_e[i] = entries[i]
        self.replay_n = n
        self.replay_k = 0
        self.schedule_end_ns = self.replay_t[n - 1] + 1
        self.paced = True
        self.next_intended_ns = start_ns
        self.advance_schedule(True)

    cdef inline int pick_entry(self) noexcept:
        """The mix entry of the request just taken by take_due: the trace's, or a weighted pick."""
        if self.replay_n:
            return self.taken_entry
        return self.mix.pick()

    cdef inline void on_check_failed(self) noexcept:
        # Only for responses on_response recorded: same window, so no second test here.
        self.errors[ERR_CHECK] += 1
        self.interval_errors += 1

    cdef inline double uniform(self) noexcept:
        # xorshift64*: reproducible per seed, no Python objects.
        self.rng ^= self.rng >> 12
        self.rng ^= self.rng << 25
        self.rng ^= self.rng >> 27
        return ((self.rng * <uint64_t>0x2545F4914F6CDD1DULL) >> 11) * (1.0 / 9007199254740992.0)

    cdef void advance_schedule(self, bint first) noexcept:
        """Sets next_intended_ns to the next arrival (1 << 62 when the schedule is over)."""
        cdef double r0, r1, length, a, t, k, rate_now
        if self.replay_n:
            if self.replay_k < self.replay_n:
                self.next_intended_ns = self.replay_t[self.replay_k]
                self.next_entry = self.replay_e[self.replay_k]
                self.replay_k += 1
            else:
                self.next_intended_ns = 1 << 62
            return
        while self.stage < self.n_stages:
            r0 = self.stage_r0[self.stage]
            r1 = self.stage_r1[self.stage]
            length = <double>self.stage_len_ns[self.stage]
            a = (r1 - r0) / length if length > 0 else 0.0
            if self.poisson:
                rate_now = r0 + a * self.poisson_t
                if first and self.stage == 0 and self.poisson_t == 0.0:
                    t = 0.0
                elif rate_now > 1e-15:
                    t = self.poisson_t - log(1.0 - self.uniform()) / rate_now
                else:
                    t = length + 1.0
                if t < length:
                    self.poisson_t = t
                    self.next_intended_ns = self.stage_start_ns[self.stage] + <int64_t>t
                    return
                self.stage += 1
                self.poisson_t = 0.0
                continue
            # Request k of a stage is due when the integral of the rate reaches k:
            # r0 t + a t^2 / 2 = k, solved exactly (no accumulated rounding over long runs).
            k = <double>self.stage_k
            if a == 0.0:
                t = k / r0 if r0 > 0 else length + 1.0
            else:
                t = r0 * r0 + 2.0 * a * k
                t = (-r0 + sqrt(t)) / a if t >= 0 else length + 1.0
            if t < length:
                self.next_intended_ns = self.stage_start_ns[self.stage] + <int64_t>t
                self.stage_k += 1
                return
            self.stage += 1
            self.stage_k = 0
        self.next_intended_ns = 1 << 62

    cdef inline int64_t take_due(self, int64_t now) noexcept:
        """Intended send time of the next request that may go now, or -1 if none is due.
        Closed model: every request is due at once and intended == now."""
        cdef int64_t t
        if not self.paced:
            return now
        t = self.next_intended_ns
        if t > now or t >= self.schedule_end_ns:
            return -1
        self.scheduled += 1
        self.taken_entry = self.next_entry
        self.advance_schedule(False)
        if now >= self.record_from_ns and now < self.stop_ns:
            self.lag_hist.record((now - t) // 1000)
            if now - t > self.max_queue_delay_ns:
                self.max_queue_delay_ns = now - t
        return t

    def take_due_py(self, int64_t now):
        return self.take_due(now)

    def due(self, int64_t now):
        """Whether a scheduled request is due and not yet sent (the open model's queue)."""
        return self.paced and self.next_intended_ns <= now and \
            self.next_intended_ns < self.schedule_end_ns

    cdef inline bint in_window(self, int64_t intended, int64_t now) noexcept:
        """A request's outcome is recorded: intended (sent) from record_from_ns on, and
        finished before stop_ns. Every per-request record (whole-run or per variant) uses this."""
        return intended >= self.record_from_ns and now < self.stop_ns

    cdef inline bint on_response(self, int status, int64_t intended, int64_t now,
                                 int64_t sent) noexcept:
        """Records a completed response; False when it falls outside the measured window."""
        cdef int64_t lat
        if not self.in_window(intended, now):
            return False
        self.service_hist.record((now - sent) // 1000)
        lat = now - intended
        if lat < 0:
            lat = 0
        self.requests += 1
        self.interval_requests += 1
        self.sum_ns += <double>lat
        self.sumsq_ns += <double>lat * <double>lat
        if self.min_ns < 0 or lat < self.min_ns:
            self.min_ns = lat
        if lat > self.max_ns:
            self.max_ns = lat
        # µs in the histogram, truncated: a latency is never reported below what was measured
        # by more than the histogram's own 3-digit resolution.
        self.hist.record(lat // 1000)
        self.interval_hist.record(lat // 1000)
        if status < 0 or status >= MAX_STATUS:
            status = 0
        self.status[status] += 1
        if self.quota >= 0 and self.requests >= self.quota and self.running:
            self.running = False
            if self.on_quota_done is not None:
                self.on_quota_done()
        return True

    cdef inline void on_stream_done(self, int64_t intended, int64_t first_ns, int64_t events) noexcept:
        """After on_response accepted a response: its time to first byte, and its event count
        when it was a stream (events >= 0)."""
        if first_ns > 0:
            self.ttfb_hist.record((first_ns - intended) // 1000 if first_ns > intended else 0)
        if events >= 0:
            self.streams += 1
            self.stream_events += events
            self.events_hist.record(events)

    cdef inline void on_events(self, int64_t intended, int64_t now, int64_t prev_ns,
                               int64_t k) noexcept:
        """k events of one stream arrived at `now`; prev_ns is its previous event's arrival
        (-1: these include its first). Events that arrive in one read are 0 apart: that is what
        the client saw."""
        if k <= 0 or not self.in_window(intended, now):
            return
        if prev_ns < 0:
            self.ttfe_hist.record((now - intended) // 1000 if now > intended else 0)
        else:
            self.gap_hist.record((now - prev_ns) // 1000)
        k -= 1
        while k > 0:
            self.gap_hist.record(0)
            k -= 1

    cdef inline void on_grpc(self, int code) noexcept:
        """The grpc-status of a recorded call (-1: none was sent; other values as gRPC says:
        a code it does not know is UNKNOWN)."""
        if code == -1:
            code = GRPC_MISSING
        elif code < 0 or code >= GRPC_CODES:
            code = 2
        self.grpc[code] += 1

    cdef inline void on_failure(self, int cls, int64_t intended, int64_t now, int64_t n) noexcept:
        """n requests (intended for `intended`, == their send time in the closed model) failed
        with error class cls."""
        if self.in_window(intended, now):
            self.errors[cls] += n
            self.interval_errors += n
        if intended >= self.record_from_ns:
            # They did not complete: with a quota, other requests take their place.
            self.counted -= n

    def count_error(self, int cls, int64_t n=1):
        """Connection-level errors seen by the engine (connect failures)."""
        cdef int64_t now = now_ns()
        if now >= self.record_from_ns and now < self.stop_ns:
            self.errors[cls] += n
            self.interval_errors += n

    def error_counts(self):
        return {"connect": self.errors[ERR_CONNECT], "timeout": self.errors[ERR_TIMEOUT],
                "reset": self.errors[ERR_RESET], "protocol": self.errors[ERR_PROTOCOL],
                "check_failed": self.errors[ERR_CHECK]}

    def grpc_counts(self):
        cdef int i
        out = {str(i): self.grpc[i] for i in range(GRPC_CODES) if self.grpc[i]}
        if self.grpc[GRPC_MISSING]:
            out["missing"] = self.grpc[GRPC_MISSING]
        return out

    def status_counts(self):
        cdef int i
        return {str(i): self.status[i] for i in range(MAX_STATUS) if self.status[i]}

    def take_interval(self):
        """(requests, errors, encoded histogram) since the last call; resets the interval."""
        blob = self.interval_hist.encode()
        out = (self.interval_requests, self.interval_errors, blob)
        self.interval_hist.reset()
        self.interval_requests = 0
        self.interval_errors = 0
        return out

    # Python-level entry points for sessions written in Python (HTTP/3 on aioquic). Same rules
    # as the inline methods above; the native sessions keep calling those directly.
    def py_may_start(self, int64_t now):
        return self.may_start(now)

    def py_take_due(self, int64_t now):
        return self.take_due(now)

    def py_on_sent(self, int64_t now, int64_t n=1):
        self.on_sent(now, n)

    def py_on_response(self, int status, int64_t intended, int64_t now, int64_t sent):
        return self.on_response(status, intended, now, sent)

    def py_on_failure(self, int cls, int64_t intended, int64_t now, int64_t n=1):
        self.on_failure(cls, intended, now, n)

    def py_on_events(self, int64_t intended, int64_t now, int64_t prev_ns, int64_t k):
        self.on_events(intended, now, prev_ns, k)

    def py_on_stream_done(self, int64_t intended, int64_t first_ns, int64_t events):
        self.on_stream_done(intended, first_ns, events)

    def py_count_bytes(self, int64_t now, int64_t n_in, int64_t n_out):
        """bytes_in/bytes_out, counted only inside the measured window like the native sessions."""
        if self.record_from_ns <= now < self.stop_ns:
            self.bytes_in += n_in
            self.bytes_out += n_out


cdef class _Session:
    """Transport plumbing shared by the HTTP/1.1 and HTTP/2 sessions."""

    cdef WorkerStats stats
    cdef public object engine
    cdef public object transport
    cdef object _write
    cdef public bint closed
    cdef public bint paused
    cdef public bint stopping
    cdef public int index

    def connection_made(self, transport):
        self.transport = transport
        self._write = transport.write
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
        self.on_lost(exc)
        self.closed = True
        self.transport = None
        self._write = None
        self.engine.on_lost(self, exc)

    cdef on_lost(self, exc):
        pass

    cdef void drop(self) noexcept:
        """Close without waiting for anything; the engine reconnects."""
        if self.transport is not None and not self.closed:
            self.closed = True
            try:
                self.transport.abort()
            except Exception:
                pass

    def stop(self):
        """End of run: no new requests; close at once (in-flight requests are not counted)."""
        self.stopping = True
        self.drop()


cdef class H1Session(_Session):
    """HTTP/1.1 keep-alive with up to `pipeline` requests in flight."""

    cdef H1ResponseParser parser
    cdef list batches
    cdef Py_ssize_t req_len
    cdef int pipeline
    cdef int64_t* sent          # actual send times, a ring of `pipeline` slots
    cdef int64_t* intended      # intended send times (open model; == sent otherwise)
    cdef int head
    cdef public int inflight
    cdef bint head_method
    cdef bint must_close
    # The response at the head of the ring: its first byte and its stream events so far.
    cdef int64_t head_first_ns
    cdef int64_t head_events
    cdef int64_t head_last_event_ns
    # With a RequestMix (stats.mix): the entry of each in-flight request, times 2, plus 1 when
    # its response is sampled for checks; the raw bytes of the head response while sampled.
    cdef RequestMix mix
    cdef int* entry
    cdef char* cap
    cdef Py_ssize_t cap_len

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
        if self.stats.record_from_ns <= now < self.stats.stop_ns:
            self.stats.bytes_out += k * self.req_len
        self._write(self.batches[k])

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
        if self.stats.record_from_ns <= now < self.stats.stop_ns:
            self.stats.bytes_out += total
        try:
            if k == 1:
                self._write(<object>self.mix.entry_obj[e])
                return
            data = PyBytes_FromStringAndSize(NULL, total)
            w = PyBytes_AS_STRING(data)
            for i in range(first, first + k):
                e = self.entry[(self.head + i) % self.pipeline] >> 1
                memcpy(w, PyBytes_AS_STRING(<object>self.mix.entry_obj[e]), self.mix.entry_len[e])
                w += self.mix.entry_len[e]
            self._write(data)
        except Exception:
            self.drop()

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
        if self.stats.record_from_ns <= now < self.stats.stop_ns:
            self.stats.bytes_in += nbytes
        while n > 0:
            if self.head_first_ns == 0 and self.inflight:
                self.head_first_ns = now
            c = self.parser.feed(p, n)
            if c < 0:
                self.fail(ERR_PROTOCOL, now)
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
            self.fail(ERR_PROTOCOL, now)
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
                self.fail(ERR_RESET, now)
                return False
        return True

    cdef void mix_response(self, int64_t now) noexcept:
        cdef int e = self.entry[self.head]
        self.mix.on_response(e >> 1, self.parser.status, now - self.intended[self.head])
        if e & 1 and not self.mix.run_check(e >> 1, self.parser.status, self.cap, self.cap_len,
                                            self.parser.body_bytes):
            self.stats.on_check_failed()

    cdef void fail(self, int cls, int64_t now) noexcept:
        """Count every in-flight request as failed with `cls` and drop the connection."""
        cdef int i
        for i in range(self.inflight):
            self.stats.on_failure(cls, self.intended[(self.head + i) % self.pipeline], now, 1)
            if self.mix is not None:
                self.mix_failed((self.head + i) % self.pipeline, cls, now)
        self.inflight = 0
        self.head_reset()
        self.drop()

    def eof_received(self):
        cdef int r = self.parser.feed_eof()
        cdef int64_t now = now_ns()
        if r == 1 and self.parser.complete:
            self.complete_one(now)
        if self.inflight:
            # Closed before or in the middle of a response (a Content-Length longer than what
            # came, half a status line): the connection failed, the bytes were not malformed.
            self.fail(ERR_RESET, now)
        return False

    cdef on_lost(self, exc):
        if self.inflight and not self.stopping:
            self.fail(ERR_RESET, now_ns())
        self.inflight = 0

    def oldest_sent_ns(self):
        return self.sent[self.head] if self.inflight else -1

    def expire(self, int64_t older_than_ns):
        """Per-request timeout: the requests in flight are counted as timeouts and the connection
        is replaced (HTTP/1.1 cannot cancel one request and keep the connection)."""
        cdef int i, n = 0
        cdef int64_t now = now_ns()
        if self.inflight == 0 or self.sent[self.head] >= older_than_ns:
            return 0
        for i in range(self.inflight):
            self.stats.on_failure(ERR_TIMEOUT, self.intended[(self.head + i) % self.pipeline], now, 1)
            if self.mix is not None:
                self.mix_failed((self.head + i) % self.pipeline, ERR_TIMEOUT, now)
            n += 1
        self.inflight = 0
        self.head_reset()
        self.drop()
        return n


cdef class H2Session(_Session):
    """HTTP/2 with up to `streams` concurrent streams on one connection."""

    cdef H2ClientCore core
    cdef int64_t last_out
    cdef bint grpc
    cdef RequestMix mix          # request variants (stats.mix), or None
    # HTTP/2 reads carry many responses: uvloop reads straight into this buffer.
    cdef bytearray rbuf
    cdef object rview
    cdef uint8_t* rptr

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
        data = PyBytes_FromStringAndSize(<char*>self.core.out, n)
        self.core.clear_out()
        if self.stats.record_from_ns <= now_ns() < self.stats.stop_ns:
            self.stats.bytes_out += n
        try:
            self._write(data)
        except Exception:
            self.drop()

    cdef on_connected(self):
        self.core.start()
        self.flush()

    cpdef fill(self):
        cdef int64_t now, t
        if self.closed or self.paused or self.stopping:
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
            self.stats.on_events(self.core.ob_intended_ns[i], now, self.core.ob_prev_ns[i],
                                 self.core.ob_count[i])

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
        cdef int e
        if i >= self.core.ev_entry_cap:
            return  # the entry array could not grow (out of memory): the core fails the connection
        e = self.core.ev_entry[i]
        if e < 0:
            return
        if cls < 0:
            self.mix.on_response(e, self.core.ev_status[i], now - self.core.ev_intended_ns[i])
            if self.core.ev_capture[i] != NULL and not self.mix.run_check(
                    e, self.core.ev_status[i], <const char*>self.core.ev_capture[i],
                    self.core.ev_capture_len[i], self.core.ev_body_bytes[i]):
                self.stats.on_check_failed()
        elif self.stats.in_window(self.core.ev_intended_ns[i], now):
            self.mix.on_failure(e, cls)

    cdef inline void handle_events(self, int64_t now) noexcept:
        self.handle_events_as(-1, now)

    def buffer_updated(self, Py_ssize_t nbytes):
        cdef int64_t now = now_ns()
        cdef int rc
        if self.closed:
            return
        if self.stats.record_from_ns <= now < self.stats.stop_ns:
            self.stats.bytes_in += nbytes
        self.core.rx_ns = now
        rc = self.core.receive(self.rptr, nbytes)
        self.handle_events(now)
        if rc < 0:
            self.fail_all(ERR_PROTOCOL, now)
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
            kind = self.core.ev_kind[i]
            if kind == EV_DONE:
                if self.stats.on_response(self.core.ev_status[i], self.core.ev_intended_ns[i], now,
                                          self.core.ev_sent_ns[i]):
                    self.stats.on_stream_done(self.core.ev_intended_ns[i], self.core.ev_first_ns[i],
                                              self.core.ev_events[i])
                    if self.grpc:
                        self.stats.on_grpc(self.core.ev_grpc[i])
                    if self.mix is not None:
                        self.mix_event(i, -1, now)
                continue
            failed = cls if cls >= 0 else (ERR_TIMEOUT if kind == EV_TIMEOUT else ERR_RESET)
            self.stats.on_failure(failed, self.core.ev_intended_ns[i], now, 1)
            if self.mix is not None:
                self.mix_event(i, failed, now)
        self.core.clear_events()

    cdef on_lost(self, exc):
        if not self.stopping and self.core.in_flight:
            self.core.fail_open_streams()
            self.handle_events_as(ERR_RESET, now_ns())

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

from libc.stdint cimport int64_t

from fastload.native.hdr cimport Histogram
from fastload.native.mix cimport RequestMix
from fastload.native.outcomes cimport GRPC_CODES, GRPC_MISSING, MAX_STATUS, N_ERROR_CLASSES
from fastload.native.schedule cimport Schedule

# The fine timeline's interval (--phase/--fault windows): requests by intended send time.
cpdef enum:
    FINE_NS = 100_000_000


cdef class WorkerStats:
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
    cdef int64_t errors[N_ERROR_CLASSES]
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
    # The open model's arrival schedule (not paced: the closed model).
    cdef readonly Schedule schedule
    cdef public int64_t max_queue_delay_ns
    # --scenario/--replay: the pre-encoded requests and per-variant results (None: one request).
    cdef public RequestMix mix
    # --phase/--fault windows: each outcome is also counted in the phase and the 100 ms interval
    # of its intended send time (offsets from record_from_ns). Off unless set_phases() was
    # called, so a run without windows pays one test per record.
    cdef readonly bint phased
    cdef int n_phases
    cdef int64_t* phase_start       # ns after record_from_ns where phase i begins; [0] == 0
    cdef int64_t* phase_counts      # n_phases x hist.counts_len: latency, in hist's layout
    cdef int64_t* phase_status      # n_phases x MAX_STATUS
    cdef int64_t* phase_errors      # n_phases x N_ERROR_CLASSES
    cdef int64_t* phase_requests
    cdef double* phase_sum_ns
    # The 100 ms intervals, in a ring of fine_cap slots (a power of two): slot f % fine_cap holds
    # interval f (fine_owner, -1 when free). The worker's 1 s tick ships the slots in use and
    # frees them (take_fine), so memory follows the span of intended times recorded within a
    # second (about --timeout), not the length of the run; the ring doubles when that span
    # outgrows it.
    cdef Histogram fine_layout      # the layout of the 100 ms histograms (2 significant digits)
    cdef Py_ssize_t fine_cap
    cdef int64_t* fine_owner        # fine_cap
    cdef int64_t* fine_counts       # fine_cap x fine_layout.counts_len
    cdef int64_t* fine_requests     # fine_cap
    cdef int64_t* fine_errors       # fine_cap x N_ERROR_CLASSES
    # Where the last recorded response went: its check runs right after on_response.
    cdef int last_phase
    cdef int64_t last_offset

    cdef bint grow_fine(self) noexcept
    cdef bint _alloc_fine(self, Py_ssize_t cap) noexcept
    cdef void _free_phases(self) noexcept

    cdef inline int phase_of(self, int64_t offset) noexcept:
        cdef int p = self.n_phases - 1
        while p > 0 and offset < self.phase_start[p]:
            p -= 1
        return p

    cdef inline Py_ssize_t fine_of(self, int64_t offset) noexcept:
        """The ring slot of offset's 100 ms interval (offset >= 0), or -1 if the ring could not
        grow to hold it."""
        cdef int64_t f = offset // FINE_NS
        cdef Py_ssize_t s
        while True:
            s = <Py_ssize_t>(f & (self.fine_cap - 1))
            if self.fine_owner[s] == f:
                return s
            if self.fine_owner[s] < 0:
                self.fine_owner[s] = f
                return s
            if not self.grow_fine():
                return -1

    cdef inline void phase_response(self, int64_t intended, int64_t lat, int status) noexcept:
        """A recorded response (lat: its latency in ns, as on_response measured it)."""
        cdef int64_t offset = intended - self.record_from_ns
        cdef int64_t lat_us = lat // 1000
        cdef int p = self.phase_of(offset)
        cdef Py_ssize_t f = self.fine_of(offset)
        self.phase_requests[p] += 1
        self.phase_sum_ns[p] += <double>lat
        self.phase_counts[p * self.hist.counts_len + self.hist.slot_of(lat_us)] += 1
        self.phase_status[p * MAX_STATUS + status] += 1
        self.last_phase = p
        self.last_offset = offset
        if f >= 0:
            self.fine_requests[f] += 1
            self.fine_counts[f * self.fine_layout.counts_len + self.fine_layout.slot_of(lat_us)] += 1

    cdef inline void phase_error(self, int cls, int64_t at, int64_t n) noexcept:
        """n failures of class cls for requests intended (sent) at `at`."""
        cdef int64_t offset = at - self.record_from_ns
        cdef int p = self.phase_of(offset)
        cdef Py_ssize_t f = self.fine_of(offset)
        self.phase_errors[p * N_ERROR_CLASSES + cls] += n
        if f >= 0:
            self.fine_errors[f * N_ERROR_CLASSES + cls] += n

    cdef inline void phase_check_failed(self, int cls) noexcept:
        cdef Py_ssize_t f = self.fine_of(self.last_offset)
        self.phase_errors[self.last_phase * N_ERROR_CLASSES + cls] += 1
        if f >= 0:
            self.fine_errors[f * N_ERROR_CLASSES + cls] += 1

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

    cdef inline int pick_entry(self) noexcept:
        """The mix entry of the request just taken by take_due: the trace's, or a weighted pick."""
        if self.schedule.replay_n:
            return self.schedule.taken_entry
        return self.mix.pick()

    cdef inline void on_check_failed(self, int cls) noexcept:
        """A recorded response failed its check (cls: ERROR_CHECK, or ERROR_CHECK_ERROR when
        the check raised). Only for responses on_response recorded: same window, so no second
        test here."""
        self.errors[cls] += 1
        self.interval_errors += 1
        if self.phased:
            self.phase_check_failed(cls)

    cdef inline int64_t take_due(self, int64_t now) noexcept:
        """Intended send time of the next request that may go now, or -1 if none is due.
        Closed model: every request is due at once and intended == now."""
        cdef int64_t t
        if not self.schedule.paced:
            return now
        t = self.schedule.take(now)
        if t >= 0 and now >= self.record_from_ns and now < self.stop_ns:
            self.lag_hist.record((now - t) // 1000)
            if now - t > self.max_queue_delay_ns:
                self.max_queue_delay_ns = now - t
        return t

    cdef inline void count_bytes(self, int64_t now, int64_t n_in, int64_t n_out) noexcept:
        """Bytes read and written, counted only inside the measured window (warm-up excluded)."""
        if self.record_from_ns <= now < self.stop_ns:
            self.bytes_in += n_in
            self.bytes_out += n_out

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
        if self.phased:
            self.phase_response(intended, lat, status)
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
            if self.phased:
                self.phase_error(cls, intended, n)
        if intended >= self.record_from_ns:
            # They did not complete: with a quota, other requests take their place.
            self.counted -= n

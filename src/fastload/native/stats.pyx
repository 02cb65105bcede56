# Everything one worker measures: counters and histograms, written by the sessions on the hot
# path (the recording methods are inline in stats.pxd), read by the worker's 1 s timer and at
# the end.

from libc.stdint cimport int64_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy, memset

from fastload.native.clock cimport now_ns
from fastload.native.hdr cimport Histogram
from fastload.native.outcomes cimport (
    GRPC_CODES,
    GRPC_MISSING,
    MAX_STATUS,
    N_ERROR_CLASSES,
    error_class_names,
)
from fastload.native.schedule cimport Schedule


cdef class WorkerStats:
    """Everything one worker measures. Written by the sessions on the hot path, read by the
    worker's 1 s timer and at the end. Recording rules:
    - a response counts only if its request was sent at/after record_from_ns (warm-up excluded)
      and it completed before stop_ns (the deadline);
    - with a quota (-n), requests that fail do not use up the quota, so exactly `quota`
      responses complete unless the run is stopped."""

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
        self.schedule = Schedule()

    def __dealloc__(self):
        self._free_phases()

    cdef void _free_phases(self) noexcept:
        free(self.phase_start)
        free(self.phase_counts)
        free(self.phase_status)
        free(self.phase_errors)
        free(self.phase_requests)
        free(self.phase_sum_ns)
        free(self.fine_owner)
        free(self.fine_counts)
        free(self.fine_requests)
        free(self.fine_errors)
        self.phase_start = self.phase_counts = self.phase_status = self.phase_errors = NULL
        self.phase_requests = self.fine_owner = self.fine_counts = self.fine_requests = NULL
        self.fine_errors = NULL
        self.phase_sum_ns = NULL
        self.fine_cap = 0
        self.phased = False

    def set_phases(self, starts_ns, int64_t span_ns=0):
        """Turns on per-phase and 100 ms counting. starts_ns: where each phase after the first
        begins, in ns after record_from_ns, increasing (the first phase begins at 0).
        span_ns: how far apart the intended times recorded between two take_fine() calls may
        be (the request timeout and the tick), to size the ring at once."""
        cdef Py_ssize_t i
        cdef list starts = [0] + [int(x) for x in starts_ns]
        for i in range(1, len(starts)):
            if starts[i] <= starts[i - 1]:
                raise ValueError("phase starts must increase, after 0")
        self._free_phases()
        self.n_phases = len(starts)
        n = self.n_phases
        self.phase_start = <int64_t*>calloc(n, sizeof(int64_t))
        self.phase_counts = <int64_t*>calloc(n * self.hist.counts_len, sizeof(int64_t))
        self.phase_status = <int64_t*>calloc(n * MAX_STATUS, sizeof(int64_t))
        self.phase_errors = <int64_t*>calloc(n * N_ERROR_CLASSES, sizeof(int64_t))
        self.phase_requests = <int64_t*>calloc(n, sizeof(int64_t))
        self.phase_sum_ns = <double*>calloc(n, sizeof(double))
        if self.fine_layout is None:
            self.fine_layout = Histogram(1, 60_000_000, 2)
        cap = 16
        while cap * FINE_NS <= span_ns:
            cap *= 2
        self.last_offset = 0
        self.last_phase = 0
        if (self.phase_start == NULL or self.phase_counts == NULL or self.phase_status == NULL
                or self.phase_errors == NULL or self.phase_requests == NULL
                or self.phase_sum_ns == NULL or not self._alloc_fine(cap)):
            self._free_phases()
            raise MemoryError()
        for i in range(n):
            self.phase_start[i] = starts[i]
        self.phased = True

    cdef bint _alloc_fine(self, Py_ssize_t cap) noexcept:
        """A new empty ring of cap slots, the old one's slots moved into it (freed)."""
        cdef Py_ssize_t width = self.fine_layout.counts_len, i, s
        cdef int64_t* owner = <int64_t*>malloc(cap * sizeof(int64_t))
        cdef int64_t* counts = <int64_t*>calloc(cap * width, sizeof(int64_t))
        cdef int64_t* requests = <int64_t*>calloc(cap, sizeof(int64_t))
        cdef int64_t* errors = <int64_t*>calloc(cap * N_ERROR_CLASSES, sizeof(int64_t))
        if owner == NULL or counts == NULL or requests == NULL or errors == NULL:
            free(owner)
            free(counts)
            free(requests)
            free(errors)
            return False
        for i in range(cap):
            owner[i] = -1
        # Distinct intervals in distinct slots of the old ring stay distinct in a larger power
        # of two.
        for i in range(self.fine_cap):
            if self.fine_owner[i] >= 0:
                s = <Py_ssize_t>(self.fine_owner[i] & (cap - 1))
                owner[s] = self.fine_owner[i]
                requests[s] = self.fine_requests[i]
                memcpy(counts + s * width, self.fine_counts + i * width, width * sizeof(int64_t))
                memcpy(errors + s * N_ERROR_CLASSES, self.fine_errors + i * N_ERROR_CLASSES,
                       N_ERROR_CLASSES * sizeof(int64_t))
        free(self.fine_owner)
        free(self.fine_counts)
        free(self.fine_requests)
        free(self.fine_errors)
        self.fine_owner = owner
        self.fine_counts = counts
        self.fine_requests = requests
        self.fine_errors = errors
        self.fine_cap = cap
        return True

    cdef bint grow_fine(self) noexcept:
        # On the hot path only when the intended times recorded within one tick span more than
        # the ring (a long backlog): doubling keeps that rare. On failure the ring stays as it
        # is and the caller leaves this record out of the 100 ms intervals.
        return self._alloc_fine(self.fine_cap * 2)

    def phase_results(self):
        """Per phase: requests, errors by class, status codes, latency histogram (encoded) and
        the sum of latencies in ns. [] when phases are off."""
        cdef int p, i
        cdef Histogram h
        out = []
        if not self.phased:
            return out
        names = error_class_names()
        h = Histogram(self.hist.lowest, self.hist.highest, self.hist.sigfigs)
        for p in range(self.n_phases):
            h.load(self.phase_counts + p * self.hist.counts_len)
            out.append({
                "requests": self.phase_requests[p],
                "errors": {names[i]: self.phase_errors[p * N_ERROR_CLASSES + i]
                           for i in range(N_ERROR_CLASSES)},
                "status_codes": {str(i): self.phase_status[p * MAX_STATUS + i]
                                 for i in range(MAX_STATUS) if self.phase_status[p * MAX_STATUS + i]},
                "histogram": h.encode(),
                "sum_ns": self.phase_sum_ns[p],
            })
        return out

    def take_fine(self):
        """The 100 ms intervals recorded since the last call, in order, as (index, requests,
        errors by class, encoded histogram of 2 significant digits); their slots are freed.
        An interval may come in several takes: the parent adds them up."""
        cdef Py_ssize_t s, width
        cdef int i
        cdef Histogram h
        out = []
        if not self.phased:
            return out
        names = error_class_names()
        width = self.fine_layout.counts_len
        h = Histogram(self.fine_layout.lowest, self.fine_layout.highest, self.fine_layout.sigfigs)
        for s in range(self.fine_cap):
            if self.fine_owner[s] < 0:
                continue
            errors = {names[i]: self.fine_errors[s * N_ERROR_CLASSES + i]
                      for i in range(N_ERROR_CLASSES) if self.fine_errors[s * N_ERROR_CLASSES + i]}
            h.load(self.fine_counts + s * width)
            out.append((self.fine_owner[s], self.fine_requests[s], errors, h.encode()))
            self.fine_owner[s] = -1
            self.fine_requests[s] = 0
            memset(self.fine_counts + s * width, 0, width * sizeof(int64_t))
            memset(self.fine_errors + s * N_ERROR_CLASSES, 0, N_ERROR_CLASSES * sizeof(int64_t))
        out.sort(key=lambda x: x[0])
        return out

    def count_error(self, int cls, int64_t n=1):
        """Connection-level errors seen by the engine (connect failures), in the phase of
        when they happened."""
        cdef int64_t now = now_ns()
        if now >= self.record_from_ns and now < self.stop_ns:
            self.errors[cls] += n
            self.interval_errors += n
            if self.phased:
                self.phase_error(cls, now, n)

    def error_counts(self):
        return {name: self.errors[i] for i, name in enumerate(error_class_names())}

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

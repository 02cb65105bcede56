# Everything one worker measures: counters and histograms, written by the sessions on the hot
# path (the recording methods are inline in stats.pxd), read by the worker's 1 s timer and at
# the end.

from libc.stdint cimport int64_t
from libc.stdlib cimport calloc, free, realloc
from libc.string cimport memset

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
        free(self.fine_counts)
        free(self.fine_requests)
        free(self.fine_errors)
        self.phase_start = self.phase_counts = self.phase_status = self.phase_errors = NULL
        self.phase_requests = self.fine_counts = self.fine_requests = self.fine_errors = NULL
        self.phase_sum_ns = NULL
        self.phased = False

    def set_phases(self, starts_ns, int64_t expected_ns=0):
        """Turns on per-phase and 100 ms counting. starts_ns: where each phase after the first
        begins, in ns after record_from_ns, increasing (the first phase begins at 0).
        expected_ns: how long the run should last, to allocate its 100 ms intervals at once
        (they grow if it lasts longer)."""
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
        self.fine_cap = 0
        self.fine_used = 0
        self.last_fine = -1
        self.last_phase = 0
        if (self.phase_start == NULL or self.phase_counts == NULL or self.phase_status == NULL
                or self.phase_errors == NULL or self.phase_requests == NULL
                or self.phase_sum_ns == NULL
                or not self.grow_fine(max(expected_ns // FINE_NS + 1, 16))):
            self._free_phases()
            raise MemoryError()
        for i in range(n):
            self.phase_start[i] = starts[i]
        self.phased = True

    cdef bint grow_fine(self, Py_ssize_t need) noexcept:
        # On the hot path only when a run outlasts its expected length: doubling keeps that rare.
        # On failure the intervals stay as they are and the caller skips this record in them.
        cdef Py_ssize_t cap = self.fine_cap * 2 if self.fine_cap * 2 >= need else need
        cdef Py_ssize_t width = self.fine_layout.counts_len
        cdef int64_t* counts = <int64_t*>realloc(self.fine_counts, cap * width * sizeof(int64_t))
        if counts == NULL:
            return False
        self.fine_counts = counts
        cdef int64_t* requests = <int64_t*>realloc(self.fine_requests, cap * sizeof(int64_t))
        if requests == NULL:
            return False
        self.fine_requests = requests
        cdef int64_t* errors = <int64_t*>realloc(self.fine_errors, cap * N_ERROR_CLASSES * sizeof(int64_t))
        if errors == NULL:
            return False
        self.fine_errors = errors
        memset(counts + self.fine_cap * width, 0, (cap - self.fine_cap) * width * sizeof(int64_t))
        memset(requests + self.fine_cap, 0, (cap - self.fine_cap) * sizeof(int64_t))
        memset(errors + self.fine_cap * N_ERROR_CLASSES, 0,
               (cap - self.fine_cap) * N_ERROR_CLASSES * sizeof(int64_t))
        self.fine_cap = cap
        return True

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

    def fine_results(self):
        """The 100 ms intervals that recorded anything: (index, requests, errors by class,
        encoded histogram of 2 significant digits)."""
        cdef Py_ssize_t f
        cdef int i
        cdef Histogram h
        out = []
        if not self.phased:
            return out
        names = error_class_names()
        h = Histogram(self.fine_layout.lowest, self.fine_layout.highest, self.fine_layout.sigfigs)
        for f in range(self.fine_used):
            errors = {names[i]: self.fine_errors[f * N_ERROR_CLASSES + i]
                      for i in range(N_ERROR_CLASSES) if self.fine_errors[f * N_ERROR_CLASSES + i]}
            if not self.fine_requests[f] and not errors:
                continue
            h.load(self.fine_counts + f * self.fine_layout.counts_len)
            out.append((f, self.fine_requests[f], errors, h.encode()))
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

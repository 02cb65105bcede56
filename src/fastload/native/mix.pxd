from cpython.ref cimport PyObject
from libc.stdint cimport int64_t, uint64_t

from fastload.native.hdr cimport Histogram
from fastload.native.outcomes cimport MAX_STATUS, N_ERROR_CLASSES
from fastload.native.rng cimport xorshift_uniform


cdef class RequestMix:
    cdef readonly int n_variants
    cdef readonly int n_entries
    cdef double* cum              # cumulative weight per variant, the last one == 1.0
    cdef int* pool_start
    cdef int* pool_len
    cdef int* entry_variant
    cdef bint* entry_head         # the response has no body (HEAD)
    cdef PyObject** entry_obj     # borrowed from self.entries
    cdef Py_ssize_t* entry_len
    cdef list entries             # keeps the request objects alive
    cdef PyObject** entry_body    # HTTP/2: the request body of each entry (entries: header blocks)
    cdef Py_ssize_t* entry_body_len
    cdef list bodies
    cdef uint64_t rng
    cdef public double sample_p   # fraction of responses checked; 0: no checks
    cdef public Py_ssize_t capture_limit
    cdef public object checker    # checker(variant, status, raw bytes, body_len) -> bool passed
    cdef public int64_t checked
    cdef public int64_t check_failed
    cdef public int64_t check_errors        # responses whose check raised
    cdef public object first_check_error    # (type name, message, traceback) of the first
    # Per variant: responses, errors by class, status codes, latency; per entry: responses.
    cdef int64_t* v_requests
    cdef int64_t* v_errors
    cdef int64_t* v_status
    cdef int64_t* e_requests
    cdef double* v_sum_ns
    cdef list hists
    cdef PyObject** hist_ptr

    cdef int run_check(self, int entry, int status, const char* raw, Py_ssize_t n,
                       int64_t body_len) noexcept

    cdef inline double uniform(self) noexcept:
        # Its own generator state, so that picks do not shift the schedule's arrivals.
        return xorshift_uniform(&self.rng)

    cdef inline int pick_variant(self, double u) noexcept:
        """The variant whose cumulative-weight interval holds u (binary search; zero-weight
        variants have empty intervals and are never chosen)."""
        cdef int lo = 0, hi = self.n_variants - 1, mid
        while lo < hi:
            mid = (lo + hi) >> 1
            if u < self.cum[mid]:
                hi = mid
            else:
                lo = mid + 1
        return lo

    cdef inline int pick(self) noexcept:
        cdef int v = self.pick_variant(self.uniform())
        cdef int n = self.pool_len[v]
        if n == 1:
            return self.pool_start[v]
        return self.pool_start[v] + <int>(self.uniform() * n)

    cdef inline bint sample(self) noexcept:
        if self.sample_p <= 0.0:
            return False
        return self.sample_p >= 1.0 or self.uniform() < self.sample_p

    cdef inline void on_response(self, int entry, int status, int64_t lat) noexcept:
        """A response recorded by WorkerStats.on_response (same window), lat in ns."""
        cdef int v = self.entry_variant[entry]
        if lat < 0:
            lat = 0
        self.v_requests[v] += 1
        self.e_requests[entry] += 1
        self.v_sum_ns[v] += <double>lat
        if status < 0 or status >= MAX_STATUS:
            status = 0
        self.v_status[v * MAX_STATUS + status] += 1
        (<Histogram>self.hist_ptr[v]).record(lat // 1000)

    cdef inline void on_failure(self, int entry, int cls) noexcept:
        self.v_errors[self.entry_variant[entry] * N_ERROR_CLASSES + cls] += 1

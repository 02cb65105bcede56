# Weighted request variants (--scenario, --replay) and sampled response checks.
#
# A RequestMix holds every pre-encoded request ("entry") of a run: each variant owns a
# contiguous range of entries (one, or a pool of generated body sizes). Per request the session
# asks pick() for an entry: one xorshift draw walks the cumulative weights to a variant, a second
# one picks inside its pool. Results are recorded per variant in C counters and histograms.
#
# Checks: sample() is one draw per request when checks are on; only sampled responses are
# captured by the session and handed to the Python checker (one call per sampled response).

from cpython.ref cimport PyObject
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdlib cimport calloc

DEF MIX_MAX_STATUS = 600
DEF MIX_N_ERR = 5       # N_ERR of _session.pxi; the last class is ERR_CHECK


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
    # Per variant: responses, errors by class, status codes, latency; per entry: responses.
    cdef int64_t* v_requests
    cdef int64_t* v_errors
    cdef int64_t* v_status
    cdef int64_t* e_requests
    cdef double* v_sum_ns
    cdef list hists
    cdef PyObject** hist_ptr

    def __cinit__(self, list entries, list entry_variant, list weights, seed=1,
                  list entry_head=None, list bodies=None):
        """entries: request objects (HTTP/1.1 bytes, or HTTP/2 stateless header blocks with
        `bodies` alongside), grouped by variant in order; entry_variant[i]: the variant of
        entries[i]; weights: one per variant (sum > 0)."""
        cdef int i, v
        cdef double total = 0.0, acc = 0.0
        self.n_variants = len(weights)
        self.n_entries = len(entries)
        if self.n_entries == 0 or self.n_variants == 0 or len(entry_variant) != self.n_entries:
            raise ValueError("entries and variants must be non-empty and aligned")
        self.entries = list(entries)
        nv = self.n_variants
        ne = self.n_entries
        self.cum = <double*>malloc(sizeof(double) * nv)
        self.pool_start = <int*>malloc(sizeof(int) * nv)
        self.pool_len = <int*>malloc(sizeof(int) * nv)
        self.entry_variant = <int*>malloc(sizeof(int) * ne)
        self.entry_head = <bint*>malloc(sizeof(bint) * ne)
        self.entry_obj = <PyObject**>malloc(sizeof(PyObject*) * ne)
        self.entry_len = <Py_ssize_t*>malloc(sizeof(Py_ssize_t) * ne)
        self.v_requests = <int64_t*>calloc(nv, sizeof(int64_t))
        self.v_errors = <int64_t*>calloc(nv * MIX_N_ERR, sizeof(int64_t))
        self.v_status = <int64_t*>calloc(nv * MIX_MAX_STATUS, sizeof(int64_t))
        self.e_requests = <int64_t*>calloc(ne, sizeof(int64_t))
        self.v_sum_ns = <double*>calloc(nv, sizeof(double))
        self.hist_ptr = <PyObject**>malloc(sizeof(PyObject*) * nv)
        if (self.cum == NULL or self.pool_start == NULL or self.pool_len == NULL
                or self.entry_variant == NULL or self.entry_head == NULL or self.entry_obj == NULL
                or self.entry_len == NULL or self.v_requests == NULL or self.v_errors == NULL
                or self.v_status == NULL or self.e_requests == NULL or self.v_sum_ns == NULL
                or self.hist_ptr == NULL):
            raise MemoryError()
        for v in range(nv):
            self.pool_start[v] = -1
            self.pool_len[v] = 0
            total += weights[v]
        if not total > 0:
            raise ValueError("weights must add up to more than 0")
        for i in range(ne):
            v = entry_variant[i]
            if v < 0 or v >= nv:
                raise ValueError(f"entry {i}: variant {v} out of range")
            if self.pool_start[v] < 0:
                self.pool_start[v] = i
            elif self.pool_start[v] + self.pool_len[v] != i:
                raise ValueError("a variant's entries must be contiguous")
            self.pool_len[v] += 1
            self.entry_variant[i] = v
            self.entry_head[i] = bool(entry_head[i]) if entry_head is not None else False
            obj = self.entries[i]
            self.entry_obj[i] = <PyObject*>obj
            self.entry_len[i] = len(obj)
        if bodies is not None:
            if len(bodies) != ne:
                raise ValueError("one body per entry")
            self.bodies = [bytes(b) for b in bodies]
            self.entry_body = <PyObject**>malloc(sizeof(PyObject*) * ne)
            self.entry_body_len = <Py_ssize_t*>malloc(sizeof(Py_ssize_t) * ne)
            if self.entry_body == NULL or self.entry_body_len == NULL:
                raise MemoryError()
            for i in range(ne):
                obj = self.bodies[i]
                self.entry_body[i] = <PyObject*>obj
                self.entry_body_len[i] = len(obj)
        for v in range(nv):
            if self.pool_len[v] == 0 and weights[v] > 0:
                raise ValueError(f"variant {v} has a weight but no entries")
            acc += weights[v] / total
            self.cum[v] = acc
        # Rounding must never leave a draw in [acc, 1) without a variant.
        for v in range(nv - 1, -1, -1):
            if weights[v] > 0:
                self.cum[v] = 1.0
                break
        self.hists = [Histogram(1, 60_000_000, 3) for _ in range(nv)]
        for v in range(nv):
            self.hist_ptr[v] = <PyObject*>self.hists[v]
        self.rng = (<uint64_t>seed) * <uint64_t>0x9E3779B97F4A7C15ULL + 0x5DEECE66DULL
        self.capture_limit = 1 << 20

    def __dealloc__(self):
        free(self.cum)
        free(self.pool_start)
        free(self.pool_len)
        free(self.entry_variant)
        free(self.entry_head)
        free(self.entry_obj)
        free(self.entry_len)
        free(self.v_requests)
        free(self.v_errors)
        free(self.v_status)
        free(self.e_requests)
        free(self.v_sum_ns)
        free(self.hist_ptr)
        free(self.entry_body)
        free(self.entry_body_len)

    cdef inline double uniform(self) noexcept:
        # xorshift64*, as WorkerStats.uniform; its own state so that picks do not shift arrivals.
        self.rng ^= self.rng >> 12
        self.rng ^= self.rng << 25
        self.rng ^= self.rng >> 27
        return ((self.rng * <uint64_t>0x2545F4914F6CDD1DULL) >> 11) * (1.0 / 9007199254740992.0)

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
        if status < 0 or status >= MIX_MAX_STATUS:
            status = 0
        self.v_status[v * MIX_MAX_STATUS + status] += 1
        (<Histogram>self.hist_ptr[v]).record(lat // 1000)

    cdef inline void on_failure(self, int entry, int cls) noexcept:
        self.v_errors[self.entry_variant[entry] * MIX_N_ERR + cls] += 1

    cdef bint run_check(self, int entry, int status, const char* raw, Py_ssize_t n,
                        int64_t body_len) noexcept:
        """True when the response passed its variant's checks. Python, but sampled only."""
        self.checked += 1
        try:
            ok = self.checker(self.entry_variant[entry], status,
                              PyBytes_FromStringAndSize(raw, n), body_len)
        except Exception:
            ok = False
        if not ok:
            self.check_failed += 1
            self.v_errors[self.entry_variant[entry] * MIX_N_ERR + MIX_N_ERR - 1] += 1
            return False
        return True

    # --- Python side: tests and the worker's result

    def pick_py(self, int n):
        """n picks (entry indexes): the native picker, for tests against its Python twin."""
        return [self.pick() for _ in range(n)]

    def variant_of(self, int entry):
        return self.entry_variant[entry]

    def results(self, list error_names):
        """Per variant: requests, errors by class, status codes, latency sum and histogram;
        per entry: responses (to report the body sizes actually sent)."""
        cdef int v, s, c
        out = []
        for v in range(self.n_variants):
            out.append({
                "requests": self.v_requests[v],
                "errors": {error_names[c]: self.v_errors[v * MIX_N_ERR + c]
                           for c in range(min(len(error_names), MIX_N_ERR))},
                "status_codes": {str(s): self.v_status[v * MIX_MAX_STATUS + s]
                                 for s in range(MIX_MAX_STATUS) if self.v_status[v * MIX_MAX_STATUS + s]},
                "sum_ns": self.v_sum_ns[v],
                "histogram": self.hists[v].encode(),
            })
        return out, [self.e_requests[c] for c in range(self.n_entries)]

# Weighted request variants (--scenario, --replay) and sampled response checks.
#
# A RequestMix holds every pre-encoded request ("entry") of a run: each variant owns a
# contiguous range of entries (one, or a pool of generated body sizes). Per request the session
# asks pick() for an entry: one xorshift draw walks the cumulative weights to a variant, a second
# one picks inside its pool. Results are recorded per variant in C counters and histograms.
#
# Checks: sample() is one draw per request when checks are on; only sampled responses are
# captured by the session and handed to the Python checker (one call per sampled response).

from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.ref cimport PyObject
from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport calloc, free, malloc

from fastload.native.outcomes cimport ERROR_CHECK, ERROR_CHECK_ERROR, MAX_STATUS, N_ERROR_CLASSES


cdef class RequestMix:
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
        self.v_errors = <int64_t*>calloc(nv * N_ERROR_CLASSES, sizeof(int64_t))
        self.v_status = <int64_t*>calloc(nv * MAX_STATUS, sizeof(int64_t))
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

    cdef int run_check(self, int entry, int status, const char* raw, Py_ssize_t n,
                       int64_t body_len) noexcept:
        """-1 when the response passed its variant's checks, else the error class to count:
        ERROR_CHECK (it failed one) or ERROR_CHECK_ERROR (the check raised). Python, but
        sampled only."""
        cdef int cls = ERROR_CHECK
        self.checked += 1
        try:
            if self.checker(self.entry_variant[entry], status,
                            PyBytes_FromStringAndSize(raw, n), body_len):
                return -1
            self.check_failed += 1
        except Exception as e:
            # Not the server's fault: counted apart, and the first one is kept for the report.
            cls = ERROR_CHECK_ERROR
            self.check_errors += 1
            if self.first_check_error is None:
                self.first_check_error = _describe(e)
        self.v_errors[self.entry_variant[entry] * N_ERROR_CLASSES + cls] += 1
        return cls

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
                "errors": {error_names[c]: self.v_errors[v * N_ERROR_CLASSES + c]
                           for c in range(min(len(error_names), N_ERROR_CLASSES))},
                "status_codes": {str(s): self.v_status[v * MAX_STATUS + s]
                                 for s in range(MAX_STATUS) if self.v_status[v * MAX_STATUS + s]},
                "sum_ns": self.v_sum_ns[v],
                "histogram": self.hists[v].encode(),
            })
        return out, [self.e_requests[c] for c in range(self.n_entries)]


def _describe(BaseException e):
    """(type name, message, formatted traceback) of an exception a check raised."""
    import traceback

    try:
        tb = "".join(traceback.format_exception(type(e), e, e.__traceback__))
    except Exception:
        tb = ""
    return (type(e).__name__, str(e), tb)

from libc.stdint cimport int64_t, uint64_t


cdef enum:
    MAX_STAGES = 64


cdef class Schedule:
    # Open model: intended send times laid out in advance, independent of responses; either a
    # piecewise-linear rate (stages, evenly spaced or Poisson) or a replayed trace.
    cdef readonly bint paced
    cdef bint poisson
    cdef uint64_t rng
    cdef int n_stages
    cdef int stage
    cdef int64_t stage_start_ns[MAX_STAGES]
    cdef int64_t stage_len_ns[MAX_STAGES]
    cdef double stage_r0[MAX_STAGES]   # requests per ns at the stage start
    cdef double stage_r1[MAX_STAGES]   # ... and at its end
    cdef int64_t stage_k               # requests issued in the current stage (constant/ramp)
    cdef double poisson_t              # ns into the current stage of the next Poisson arrival
    cdef readonly int64_t next_intended_ns
    cdef readonly int64_t schedule_end_ns
    cdef readonly int64_t scheduled    # intended sends taken
    # --replay: an explicit list of intended times, each with its entry of the mix.
    cdef int64_t* replay_t
    cdef int* replay_e
    cdef readonly Py_ssize_t replay_n
    cdef Py_ssize_t replay_k
    cdef int next_entry
    cdef readonly int taken_entry      # the trace entry of the request take() returned last

    cdef void advance(self, bint first) noexcept

    cdef inline int64_t take(self, int64_t now) noexcept:
        """Intended send time of the next request due at `now`, or -1 if none is due."""
        cdef int64_t t = self.next_intended_ns
        if t > now or t >= self.schedule_end_ns:
            return -1
        self.scheduled += 1
        self.taken_entry = self.next_entry
        self.advance(False)
        return t

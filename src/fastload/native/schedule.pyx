# The open model's arrival schedule (--rate, --stages, --arrival poisson, --replay). The
# sessions take due requests from it through WorkerStats.take_due, which also measures how
# late each one goes out.

from libc.math cimport log, sqrt
from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport free, malloc

from fastload.native.rng cimport xorshift_uniform


cdef class Schedule:
    def __dealloc__(self):
        free(self.replay_t)
        free(self.replay_e)

    def set_rates(self, int64_t start_ns, list stages, bint poisson=False, uint64_t seed=1):
        """stages: [(duration_ns, rate_from, rate_to)] in requests/s for this worker; intended
        send times are laid out from start_ns."""
        cdef int i
        cdef int64_t t = start_ns
        if not stages or len(stages) > MAX_STAGES:
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
        self.advance(True)

    def set_replay(self, int64_t start_ns, list offsets_ns, list entries):
        """From a trace: request i is intended at start_ns + offsets_ns[i] (sorted) and sends
        entry entries[i] of the mix."""
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
        self.advance(True)

    def due(self, int64_t now):
        """Whether a scheduled request is due and not yet sent (the open model's queue)."""
        return self.paced and self.next_intended_ns <= now and \
            self.next_intended_ns < self.schedule_end_ns

    cdef void advance(self, bint first) noexcept:
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
                    t = self.poisson_t - log(1.0 - xorshift_uniform(&self.rng)) / rate_now
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

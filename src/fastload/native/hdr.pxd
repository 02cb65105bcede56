from libc.stdint cimport int64_t, uint64_t


cdef extern from *:
    int __builtin_clzll(unsigned long long) nogil


cdef class Histogram:
    cdef int64_t* _counts
    cdef readonly Py_ssize_t counts_len
    cdef readonly int64_t lowest
    cdef readonly int64_t highest
    cdef readonly int sigfigs
    cdef int unit_magnitude
    cdef int sub_bucket_half_count_magnitude
    cdef int64_t sub_bucket_count
    cdef int64_t sub_bucket_half_count
    cdef uint64_t sub_bucket_mask
    cdef int bucket_count
    cdef readonly int64_t total_count
    cdef readonly int64_t overflow_count
    cdef int64_t _min
    cdef int64_t _max

    cdef inline Py_ssize_t index_of(self, int64_t value) noexcept nogil:
        cdef int pow2ceiling = 64 - __builtin_clzll(<uint64_t>value | self.sub_bucket_mask)
        cdef int bucket_index = pow2ceiling - self.unit_magnitude - (self.sub_bucket_half_count_magnitude + 1)
        cdef int64_t sub_bucket_index = value >> (bucket_index + self.unit_magnitude)
        return ((<Py_ssize_t>(bucket_index + 1)) << self.sub_bucket_half_count_magnitude) + \
            sub_bucket_index - self.sub_bucket_half_count

    cdef void load(self, const int64_t* counts) noexcept
    cdef int64_t _value_at(self, Py_ssize_t index) noexcept

    cdef inline Py_ssize_t slot_of(self, int64_t value) noexcept nogil:
        """The counts index record() would use for value (same clamping), for callers that
        keep counts of this layout in their own arrays (per-phase and 100 ms histograms)."""
        if value < 0:
            value = 0
        elif value > self.highest:
            value = self.highest
        return self.index_of(value)

    cdef inline void record(self, int64_t value) noexcept nogil:
        if value < 0:
            value = 0
        elif value > self.highest:
            self.overflow_count += 1
            value = self.highest
        self._counts[self.index_of(value)] += 1
        self.total_count += 1
        if self._min < 0 or value < self._min:
            self._min = value
        if value > self._max:
            self._max = value

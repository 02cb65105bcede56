# HDR histogram with the exact bucket layout of HdrHistogram (Java/C/Python reference), so that
# counts copy 1:1 into hdrhistogram.HdrHistogram for the standard compressed encoding.
#
# CONTRACT (the session code relies on it):
# cdef class Histogram:
#     __cinit__(self, int64_t lowest=1, int64_t highest=60_000_000, int sigfigs=3)
#     cdef void record(self, int64_t value) noexcept nogil
#         value in the histogram's unit (µs for latency); negative values are recorded as 0;
#         values > highest are counted in overflow_count AND recorded at highest, never dropped.
#     def record_value(self, int64_t value)      # Python wrapper of record()
#     def reset(self)
#     def add(self, Histogram other)             # same layout required
#     total_count, overflow_count, min_value, max_value (readonly properties)
#     def counts(self)                           # numpy int64 array (copy), len == counts_len
#     def to_hdr(self)                           # -> hdrhistogram.HdrHistogram with identical counts
#     def encode(self) -> bytes                  # == self.to_hdr().encode()

from libc.math cimport ceil, floor, log2, pow
from libc.stdlib cimport calloc
from libc.string cimport memcpy, memset

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

    def __cinit__(self, int64_t lowest=1, int64_t highest=60_000_000, int sigfigs=3):
        cdef int64_t smallest_untrackable
        cdef int mag
        if lowest < 1 or highest < 2 * lowest or sigfigs < 1 or sigfigs > 5:
            raise ValueError("invalid histogram range or precision")
        self.lowest = lowest
        self.highest = highest
        self.sigfigs = sigfigs
        # Same derivation as HdrHistogram_py's constructor (floating point included), so the
        # layouts agree bit for bit.
        self.unit_magnitude = <int>floor(log2(<double>lowest))
        mag = <int>ceil(log2(2.0 * pow(10.0, sigfigs)))
        self.sub_bucket_half_count_magnitude = mag - 1 if mag > 1 else 0
        self.sub_bucket_count = (<int64_t>1) << (self.sub_bucket_half_count_magnitude + 1)
        self.sub_bucket_half_count = self.sub_bucket_count // 2
        self.sub_bucket_mask = (<uint64_t>(self.sub_bucket_count - 1)) << self.unit_magnitude
        smallest_untrackable = self.sub_bucket_count << self.unit_magnitude
        self.bucket_count = 1
        while smallest_untrackable <= highest:
            if smallest_untrackable > (<int64_t>1 << 62):
                self.bucket_count += 1
                break
            smallest_untrackable <<= 1
            self.bucket_count += 1
        self.counts_len = (self.bucket_count + 1) * self.sub_bucket_half_count
        self._counts = <int64_t*>calloc(self.counts_len, sizeof(int64_t))
        if self._counts == NULL:
            raise MemoryError()
        self._min = -1
        self._max = -1

    def __dealloc__(self):
        free(self._counts)

    cdef inline Py_ssize_t index_of(self, int64_t value) noexcept nogil:
        cdef int pow2ceiling = 64 - __builtin_clzll(<uint64_t>value | self.sub_bucket_mask)
        cdef int bucket_index = pow2ceiling - self.unit_magnitude - (self.sub_bucket_half_count_magnitude + 1)
        cdef int64_t sub_bucket_index = value >> (bucket_index + self.unit_magnitude)
        return ((<Py_ssize_t>(bucket_index + 1)) << self.sub_bucket_half_count_magnitude) + \
            sub_bucket_index - self.sub_bucket_half_count

    cdef void record(self, int64_t value) noexcept nogil:
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

    def record_value(self, int64_t value):
        self.record(value)

    def reset(self):
        memset(self._counts, 0, self.counts_len * sizeof(int64_t))
        self.total_count = 0
        self.overflow_count = 0
        self._min = -1
        self._max = -1

    def add(self, Histogram other not None):
        cdef Py_ssize_t i
        if other.counts_len != self.counts_len or other.lowest != self.lowest or \
                other.sigfigs != self.sigfigs:
            raise ValueError("histograms have different layouts")
        for i in range(self.counts_len):
            self._counts[i] += other._counts[i]
        self.total_count += other.total_count
        self.overflow_count += other.overflow_count
        if other._min >= 0 and (self._min < 0 or other._min < self._min):
            self._min = other._min
        if other._max > self._max:
            self._max = other._max

    @property
    def min_value(self):
        return self._min if self._min >= 0 else 0

    @property
    def max_value(self):
        return self._max if self._max >= 0 else 0

    def counts(self):
        import numpy as np

        out = np.zeros(self.counts_len, dtype=np.int64)
        cdef int64_t[::1] view = out
        if self.counts_len:
            memcpy(&view[0], self._counts, self.counts_len * sizeof(int64_t))
        return out

    def to_hdr(self):
        """An hdrhistogram.HdrHistogram holding the same counts (for encoding and percentiles)."""
        import ctypes

        from hdrh.histogram import HdrHistogram

        h = HdrHistogram(self.lowest, self.highest, self.sigfigs)
        if h.counts_len != self.counts_len:
            raise AssertionError("layout differs from the reference HdrHistogram")
        ctypes.memmove(ctypes.addressof(h.counts), <size_t>self._counts,
                       self.counts_len * sizeof(int64_t))
        h.total_count = self.total_count
        if self.total_count:
            h.min_value = self._min
            h.max_value = self._max
        return h

    def encode(self):
        return self.to_hdr().encode()

    def _bench_record(self, int64_t n):
        """ns per record() over n varying values (a measurement, not a test)."""
        cdef int64_t i, t0, t1
        t0 = now_ns()
        for i in range(n):
            self.record((i * 7919) & 0xFFFFF)
        t1 = now_ns()
        return (t1 - t0) / <double>n

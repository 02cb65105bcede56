# HDR histogram with the exact bucket layout of HdrHistogram (Java/C/Python reference), so that
# counts copy 1:1 into hdrhistogram.HdrHistogram for the standard compressed encoding.
#
# CONTRACT (the session code relies on it):
# cdef class Histogram:
#     __cinit__(self, int64_t lowest=1, int64_t highest=60_000_000, int sigfigs=3)
#     cdef inline void record(self, int64_t value) noexcept nogil   (in hdr.pxd: callers inline it)
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
from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport calloc, free
from libc.string cimport memcpy, memset


cdef class Histogram:
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

    def record_value(self, int64_t value):
        self.record(value)

    cdef void load(self, const int64_t* counts) noexcept:
        """Replaces the counts with counts_len values of this layout (kept elsewhere by
        slot_of); min and max become the lowest and highest recorded bucket's values."""
        cdef Py_ssize_t i
        cdef int64_t total = 0
        memcpy(self._counts, counts, self.counts_len * sizeof(int64_t))
        self.overflow_count = 0
        self._min = -1
        self._max = -1
        for i in range(self.counts_len):
            if counts[i]:
                total += counts[i]
                if self._min < 0:
                    self._min = self._value_at(i)
                self._max = self._value_at(i)
        self.total_count = total

    cdef int64_t _value_at(self, Py_ssize_t index) noexcept:
        # HdrHistogram's value_from_index.
        cdef int64_t bucket_index = (index >> self.sub_bucket_half_count_magnitude) - 1
        cdef int64_t sub_bucket_index = ((index & (self.sub_bucket_half_count - 1))
                                         + self.sub_bucket_half_count)
        if bucket_index < 0:
            sub_bucket_index -= self.sub_bucket_half_count
            bucket_index = 0
        return sub_bucket_index << (bucket_index + self.unit_magnitude)

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

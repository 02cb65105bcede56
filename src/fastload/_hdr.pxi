# HDR histogram with the exact bucket layout of HdrHistogram (Java/C/Python reference), so that
# counts copy 1:1 into hdrhistogram.HdrHistogram for the standard compressed encoding.
#
# CONTRACT (owned by the histogram work; the session code relies on it):
# cdef class Histogram:
#     __cinit__(self, int64_t lowest=1, int64_t highest=60_000_000, int sigfigs=3)
#     cdef void record(self, int64_t value) noexcept nogil
#         value in the histogram's unit (µs for latency); values < lowest are recorded at lowest
#         (HdrHistogram allows 0: record 0 as 0); values > highest are counted in overflow_count
#         AND recorded at highest, never dropped.
#     def record_value(self, int64_t value)      # Python wrapper of record()
#     def reset(self)
#     def add(self, Histogram other)             # same layout required
#     total_count, overflow_count, min_value, max_value (readonly properties)
#     def counts(self)                           # numpy int64 array view/copy, len == counts_len
#     def to_hdr(self)                           # -> hdrhistogram.HdrHistogram with identical counts
#     def encode(self) -> bytes                  # == self.to_hdr().encode()
cdef class Histogram:
    pass

# Everything one worker measures: counters and histograms, written by the sessions on the hot
# path (the recording methods are inline in stats.pxd), read by the worker's 1 s timer and at
# the end.

from libc.stdint cimport int64_t

from fastload.native.clock cimport now_ns
from fastload.native.hdr cimport Histogram
from fastload.native.outcomes cimport GRPC_CODES, GRPC_MISSING, MAX_STATUS, error_class_names
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

    def count_error(self, int cls, int64_t n=1):
        """Connection-level errors seen by the engine (connect failures)."""
        cdef int64_t now = now_ns()
        if now >= self.record_from_ns and now < self.stop_ns:
            self.errors[cls] += n
            self.interval_errors += n

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

# Python-callable recording into a WorkerStats, for the session written in Python (HTTP/3 on
# aioquic) and the worker's end-of-run backlog count. Same rules as the inline methods of
# stats.pxd, which the native sessions call directly.

from libc.stdint cimport int64_t

from fastload.native.stats cimport WorkerStats


cdef class Recorder:
    cdef readonly WorkerStats stats

    def __cinit__(self, WorkerStats stats not None):
        self.stats = stats

    def may_start(self, int64_t now):
        return self.stats.may_start(now)

    def take_due(self, int64_t now):
        return self.stats.take_due(now)

    def on_sent(self, int64_t now, int64_t n=1):
        self.stats.on_sent(now, n)

    def on_response(self, int status, int64_t intended, int64_t now, int64_t sent):
        return self.stats.on_response(status, intended, now, sent)

    def on_failure(self, int cls, int64_t intended, int64_t now, int64_t n=1):
        self.stats.on_failure(cls, intended, now, n)

    def on_events(self, int64_t intended, int64_t now, int64_t prev_ns, int64_t k):
        self.stats.on_events(intended, now, prev_ns, k)

    def on_stream_done(self, int64_t intended, int64_t first_ns, int64_t events):
        self.stats.on_stream_done(intended, first_ns, events)

    def count_bytes(self, int64_t now, int64_t n_in, int64_t n_out):
        self.stats.count_bytes(now, n_in, n_out)

from libc.stdint cimport int64_t, uint8_t

from fastload.native.h1 cimport H1ResponseParser
from fastload.native.h2 cimport H2ClientCore
from fastload.native.mix cimport RequestMix
from fastload.native.stats cimport WorkerStats

cpdef enum:
    # One uvloop read fills at most this much (HTTP/1.1 receive buffer, HTTP/2 get_buffer).
    READ_BUFFER_SIZE = 65536


# Declared here so that the native TLS unit (tls.pyx, built only where OpenSSL's headers are)
# can subclass the sessions: it replaces the byte path (write_obj, write_buf and the reads)
# and keeps everything above it.
cdef class _Session:
    cdef WorkerStats stats
    cdef public object engine
    cdef public object transport
    cdef object _write              # transport.write
    cdef object _buffered           # transport.get_write_buffer_size
    cdef int fd                     # the transport's socket, written with send(2); -1: none
    cdef bint queued                # the transport holds bytes not yet written: write behind them
    cdef public bint closed
    cdef public bint paused
    cdef public bint stopping
    cdef public int index

    cdef on_connected(self)
    cpdef fill(self)
    cdef on_lost(self, exc)
    cdef void attach(self, object transport) noexcept
    cdef void detach(self) noexcept
    cdef int send(self, const uint8_t* p, Py_ssize_t n, object obj) noexcept
    cdef void drop(self) noexcept
    cdef void write_obj(self, object data) noexcept
    cdef void write_buf(self, const uint8_t* p, Py_ssize_t n) noexcept


cdef class WriteBatch:
    cdef list sessions
    cdef list spare
    cdef bint scheduled
    cdef object call_soon
    cdef object flush_cb

    cdef void add(self, H1Session s) noexcept


cdef class H1Session(_Session):
    cdef H1ResponseParser parser
    cdef list batches
    cdef Py_ssize_t req_len
    cdef int pipeline
    cdef int64_t* sent          # actual send times, a ring of `pipeline` slots
    cdef int64_t* intended      # intended send times (open model; == sent otherwise)
    cdef int head
    cdef public int inflight
    cdef bint head_method
    cdef bint must_close
    # The response at the head of the ring: its first byte and its stream events so far.
    cdef int64_t head_first_ns
    cdef int64_t head_events
    cdef int64_t head_last_event_ns
    # With a RequestMix (stats.mix): the entry of each in-flight request, times 2, plus 1 when
    # its response is sampled for checks; the raw bytes of the head response while sampled.
    cdef RequestMix mix
    cdef int* entry
    cdef char* cap
    cdef Py_ssize_t cap_len
    # Closed model: requests taken but not yet written (the last `unsent` of the ring, written
    # by the WriteBatch at the end of the loop iteration), and how many of them the quota
    # counted.
    cdef public WriteBatch batch
    cdef int unsent
    cdef int unsent_counted

    cdef void write_unsent(self) noexcept
    cdef void forget_unsent(self) noexcept
    cdef inline void head_reset(self) noexcept
    cdef void fill_mix(self) noexcept
    cdef inline void capture(self, const uint8_t* p, Py_ssize_t n) noexcept
    cdef void mix_failed(self, int slot, int cls, int64_t now) noexcept
    cdef void on_data(self, const uint8_t* p, Py_ssize_t nbytes) noexcept
    cdef bint complete_one(self, int64_t now) noexcept
    cdef void mix_response(self, int64_t now) noexcept
    cdef void fail(self, int cls, int64_t now) noexcept
    cdef void on_eof(self) noexcept


cdef class H2Session(_Session):
    cdef H2ClientCore core
    cdef int64_t last_out
    cdef bint grpc
    cdef RequestMix mix          # request variants (stats.mix), or None
    # HTTP/2 reads carry many responses: uvloop reads straight into this buffer.
    cdef bytearray rbuf
    cdef object rview
    cdef uint8_t* rptr

    cdef void flush(self) noexcept
    cdef void handle_observations(self, int64_t now) noexcept
    cdef void fill_mix(self, int64_t now) noexcept
    cdef inline void mix_event(self, int i, int cls, int64_t now) noexcept
    cdef inline void handle_events(self, int64_t now) noexcept
    cdef void on_plain(self, const uint8_t* p, Py_ssize_t nbytes) noexcept
    cdef void fail_all(self, int cls, int64_t now) noexcept
    cdef void handle_events_as(self, int cls, int64_t now) noexcept

# Measurement entry points for tests and bench/, kept out of the production classes.

from libc.stdint cimport int64_t, uint8_t, uint32_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

from fastload.native.h2 cimport H2ClientCore, _rd24, _rd32, _wr32


def h2_bench(bytes header_block, bytes flight, int n_streams, int rounds):
    """ns per response of the session loop: submit n_streams, receive a recorded flight, clear.

    flight answers streams 1, 3, ... 2*n_streams-1 after the handshake; its stream ids are
    rebased before every round (a few ns, included in the result).
    """
    import time
    cdef H2ClientCore core = H2ClientCore(header_block, b"", n_streams)
    cdef bytes settings = b"\0\0\0\x04\0\0\0\0\0"
    cdef Py_ssize_t n = len(flight), off = 0, nf = 0
    cdef uint8_t* buf = <uint8_t*>malloc(n)
    cdef Py_ssize_t* offs = <Py_ssize_t*>malloc(sizeof(Py_ssize_t) * (n // 9 + 1))
    cdef uint32_t* sids = <uint32_t*>malloc(sizeof(uint32_t) * (n // 9 + 1))
    cdef uint32_t base
    cdef int r, i, j
    cdef int64_t t0, t1
    if buf == NULL or offs == NULL or sids == NULL:
        free(buf); free(offs); free(sids)
        raise MemoryError()
    memcpy(buf, <const uint8_t*>flight, n)
    while off + 9 <= n:
        if _rd32(buf + off + 5):
            offs[nf] = off
            sids[nf] = _rd32(buf + off + 5)
            nf += 1
        off += 9 + _rd24(buf + off)
    core.start()
    core.receive(settings, 9)
    core.clear_out()
    t0 = time.perf_counter_ns()
    for r in range(rounds):
        base = core._next_sid - 1
        for i in range(n_streams):
            core.submit(i)
        for j in range(nf):
            _wr32(buf + offs[j] + 5, sids[j] + base)
        if core.receive(buf, n) < 0 or core.n_events != n_streams:
            free(buf); free(offs); free(sids)
            raise RuntimeError(f"bench round {r}: {core.error_msg()} events={core.n_events}")
        core.clear_events()
        core.clear_out()
    t1 = time.perf_counter_ns()
    free(buf); free(offs); free(sids)
    return (t1 - t0) / (<double>rounds * n_streams)

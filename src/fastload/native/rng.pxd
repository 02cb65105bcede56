# xorshift64*: reproducible per seed, no Python objects. One generator for the arrival schedule
# and the request mix; each keeps its own state so that mix picks do not shift arrivals.
from libc.stdint cimport uint64_t


cdef inline double xorshift_uniform(uint64_t* state) noexcept nogil:
    """The next draw in [0, 1) (53 random bits)."""
    state[0] ^= state[0] >> 12
    state[0] ^= state[0] << 25
    state[0] ^= state[0] >> 27
    return ((state[0] * <uint64_t>0x2545F4914F6CDD1DULL) >> 11) * (1.0 / 9007199254740992.0)

# The clock every native module stamps requests with; now_ns() itself is inline in clock.pxd so
# that each module calls clock_gettime directly.

from fastload.native.clock cimport now_ns


def monotonic_ns():
    """The clock the sessions stamp requests with."""
    return now_ns()

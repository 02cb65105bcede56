"""Clock offsets of load hosts against the coordinator, NTP-style: the coordinator reads its
clock (t0), asks the host for its clock (r), reads its clock again (t1); the host's clock is
ahead by r - (t0 + t1) / 2, give or take (t1 - t0) / 2. The best of several samples is the one
with the shortest round trip."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

SAMPLES = 7
# Above this, a start instant or a timeline merged across hosts is off by a visible amount.
WARN_S = 0.010


@dataclass(frozen=True)
class Offset:
    offset_s: float  # the host's clock minus the coordinator's
    uncertainty_s: float  # half the round trip of the sample used

    def to_host(self, t: float) -> float:
        """A coordinator's wall-clock instant on the host's clock."""
        return t + self.offset_s

    def from_host(self, t: float) -> float:
        return t - self.offset_s


def estimate(samples: Sequence[tuple[float, float, float]]) -> Offset:
    """From (t0, host_time, t1) samples."""
    t0, r, t1 = min(samples, key=lambda s: s[2] - s[0])
    return Offset(offset_s=r - (t0 + t1) / 2, uncertainty_s=(t1 - t0) / 2)


def measure(ask: Callable[[], float], samples: int = SAMPLES) -> Offset:
    """ask() returns the host's time.time(), by a round trip to it."""
    got = []
    for _ in range(samples):
        t0 = time.time()
        r = ask()
        got.append((t0, r, time.time()))
    return estimate(got)


def warning(name: str, off: Offset) -> str | None:
    if off.uncertainty_s > WARN_S or abs(off.offset_s) > WARN_S:
        return (f"host {name}: clock offset {off.offset_s * 1e3:+.1f} ms ± "
                f"{off.uncertainty_s * 1e3:.1f} ms; its start and timeline are placed by that "
                "estimate (synchronise clocks with NTP/chrony for a closer start)")
    return None

"""The HTTP/3 pre-flight: one QUIC handshake before any worker starts."""

from __future__ import annotations

import asyncio

from fastload import native
from fastload.config.plan import Plan
from fastload.h3.backends import check, load
from fastload.h3.session import H3Request, H3Session, connect, make_configuration


class _ProbeEngine:
    def on_connected(self, session: H3Session) -> None:
        pass

    def on_lost(self, session: H3Session, exc: BaseException | None) -> None:
        pass


def probe(plan: Plan, timeout_s: float) -> str | None:
    """One QUIC handshake before any worker starts (the h3 preflight): None, or why it failed.
    A --h3-backend that is not installed is a UsageError (exit 2)."""
    backend = load(check(plan.h3_backend))
    loop = asyncio.new_event_loop()
    try:
        async def attempt() -> str | None:
            stats = native.WorkerStats()  # never running: the probe sends no request
            t = plan.target
            session, reason = await connect(
                loop, lambda: H3Session(_ProbeEngine(), stats, make_configuration(plan),
                                        H3Request(plan), 1, timeout_s, backend), t.host, t.port)
            if session is not None:
                session.stop()
                await asyncio.sleep(0)  # let the transport finish closing before the loop does
            return reason

        return loop.run_until_complete(attempt())
    finally:
        loop.close()

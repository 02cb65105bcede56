"""One worker's connections on its event loop: connecting, reconnecting, timeouts, start and
stop. Per-request work happens in the native sessions; this module runs per connection event
and on timers only."""

from __future__ import annotations

import asyncio
import errno
import ssl
import time

from fastload import native
from fastload.config.plan import Plan
from fastload.host import placement
from fastload.workload.checks import CheckRunner
from fastload.workload.wire import (
    build_h1_entries,
    build_h1_request,
    build_h2_entries,
    build_h2_session_blocks,
)

RECONNECT_BACKOFF_MIN_S = 0.005
RECONNECT_BACKOFF_MAX_S = 0.5
PACE_TICK_S = 0.001
# --coalesce: how often the response rate is checked while batching, and how soon a timer looks
# again below it (libuv timers count whole ms).
COALESCE_CHECK_NS = 1_000_000
COALESCE_IDLE_MIN_S = 0.001
COALESCE_IDLE_MAX_S = 0.256


def make_native_tls(plan: Plan, alpn: list[str]) -> native.TlsContext:
    """The native TLS unit's SSL_CTX, configured as make_ssl_context() configures Python's."""
    t = plan.target
    return native.TlsContext(t.host, t.host_is_ip, not plan.insecure, plan.ca, alpn)


def make_ssl_context(plan: Plan, alpn: list[str]) -> ssl.SSLContext:
    if plan.insecure:
        # What create_default_context() makes, minus the CA store, which nothing would read:
        # loading the system bundle costs some 80 ms of CPU in every process that does it.
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx = ssl.create_default_context(cafile=plan.ca)
    ctx.set_alpn_protocols(alpn)
    return ctx


def alpn_for(plan: Plan) -> list[str]:
    if plan.protocol_forced or plan.protocol == "h2":
        return ["h2"] if plan.protocol == "h2" else ["http/1.1"]
    return ["h2", "http/1.1"]


def build_mix(plan: Plan, index: int) -> native.RequestMix:
    """Every request variant of plan.mix pre-encoded once, for the native picker; set it as
    WorkerStats.mix before any session is made."""
    m = plan.mix
    assert m is not None
    heads = [m.variants[v].method == "HEAD" for v, _, _ in m.entries]
    bodies = None
    if plan.protocol == "h2":
        entries, bodies = build_h2_entries(plan)
    else:
        entries = build_h1_entries(plan)
    # Seeded per worker, like the arrivals: reproducible, and the workers do not pick in step.
    mix = native.RequestMix(entries, [v for v, _, _ in m.entries], [v.weight for v in m.variants],
                           (plan.seed * 1000003 + index) & (2**63 - 1), heads, bodies)
    if m.has_checks:
        mix.sample_p = m.sample
        mix.capture_limit = m.capture_limit
        mix.checker = CheckRunner([v.checks for v in m.variants], body_only=plan.protocol == "h2")
    return mix


class _PortsExhausted(Exception):
    pass


class Engine:
    """Keeps `n_connections` sessions connected until stopped."""

    def __init__(self, loop: asyncio.AbstractEventLoop, plan: Plan, n_connections: int,
                 stats: native.WorkerStats) -> None:
        self.loop = loop
        self.plan = plan
        self.stats = stats
        self.n_connections = n_connections
        self.sessions: list[native._Session | None] = [None] * n_connections
        self.connected = 0
        self.stopping = False
        self.started = False
        self.backoff_s = [RECONNECT_BACKOFF_MIN_S] * n_connections
        self.connect_errors: list[str] = []
        # EADDRNOTAVAIL: the client ran out of local ports; a client problem, not the server's.
        self.port_exhaustion = 0
        self.ssl_context = None
        if plan.protocol == "h3":
            # Loaded on use: aioquic costs ~0.3 s of start-up CPU that no h1/h2 run should pay.
            from fastload.h3 import session as h3
            from fastload.h3.backends import load

            # QUIC does its own TLS.
            self.h3_backend = load(plan.h3_backend)
            self.h3 = h3
            self.h3_config = h3.make_configuration(plan)
            self.h3_request = h3.H3Request(plan)
        else:
            self.native_tls = None
            if plan.tls_path == "native":
                # TLS records in the native sessions: the transport carries ciphertext.
                self.native_tls = make_native_tls(plan, alpn_for(plan))
            elif plan.target.tls:
                self.ssl_context = make_ssl_context(plan, alpn_for(plan))
            if plan.protocol == "h2":
                self.h2_blocks = build_h2_session_blocks(plan)
            else:
                self.request = build_h1_request(plan)
        # HTTP/1.1, closed model: a loop iteration's requests are written together after its
        # reads (WriteBatch). Not with --coalesce, whose sleep would hold them, nor in the open
        # model, which sends each request on its schedule (asked of the plan: the worker sets
        # the schedule up after the engine).
        self.write_batch = (native.WriteBatch(loop) if plan.protocol == "h1" and not plan.coalesce_ns
                            and not plan.paced and not plan.replay else None)
        self._idle: asyncio.Future | None = None
        self._timeout_handle: asyncio.TimerHandle | None = None
        self._pace_handle: asyncio.TimerHandle | None = None
        self._pace_next = 0
        self._coalesce_handle: asyncio.Handle | None = None
        self._coalesce_polled_ns = 0
        self._coalesce_idle_s = COALESCE_IDLE_MIN_S
        self._coalesce_from = (0, 0)  # (monotonic ns, responses) where the rate is measured from

    def _new_session(self, index: int) -> native._Session:
        if self.plan.protocol == "h3":
            s = self.h3.H3Session(self, self.stats, self.h3_config, self.h3_request,
                                  self.plan.streams, self.plan.timeout_ns / 1e9, self.h3_backend)
        elif self.plan.protocol == "h2":
            first, steady, need, stateless = self.h2_blocks
            if self.native_tls is not None:
                s = native.TlsH2Session(self.native_tls, self.stats, self, steady, self.plan.body,
                                        self.plan.streams, first, need, stateless, self.plan.grpc)
            else:
                s = native.H2Session(self.stats, self, steady, self.plan.body, self.plan.streams,
                                    first, need, stateless, self.plan.grpc)
        else:
            if self.native_tls is not None:
                s = native.TlsH1Session(self.native_tls, self.stats, self, self.request,
                                        self.plan.pipeline, self.plan.method == "HEAD")
            else:
                s = native.H1Session(self.stats, self, self.request, self.plan.pipeline,
                                    self.plan.method == "HEAD")
            s.batch = self.write_batch
        s.index = index
        return s

    async def _connect(self, index: int) -> bool:
        t = self.plan.target
        if self.plan.protocol == "h3":
            return await self._connect_h3(index)
        host, port = self.plan.connect_to or (t.host, t.port)
        try:
            # A handshake is bounded by --timeout on both TLS paths: a peer that stalls it
            # must not hold a connection (and the start of the run) for uvloop's default 60 s.
            tls = {"ssl": self.ssl_context, "server_hostname": t.host,
                   "ssl_handshake_timeout": self.plan.timeout_ns / 1e9} if self.ssl_context else {}
            _, session = await self.loop.create_connection(
                lambda: self._new_session(index), host, port, **tls)
        except (OSError, ssl.SSLError, asyncio.TimeoutError) as e:
            self._connect_error(f"{type(e).__name__}: {e}")
            if isinstance(e, OSError) and e.errno == errno.EADDRNOTAVAIL:
                self.port_exhaustion += 1
                raise _PortsExhausted() from None
            return False
        if self.native_tls is None:
            return True
        # Native TLS: the session is the engine's once its handshake completes (it then calls
        # on_connected), as uvloop's create_connection(ssl=) returns only then.
        try:
            reason = await asyncio.wait_for(asyncio.shield(session.handshake),
                                            self.plan.timeout_ns / 1e9)
        except asyncio.TimeoutError:
            session.stop()
            reason = "the TLS handshake timed out"
        if reason is None:
            return True
        self._connect_error(f"TLS: {reason}")
        return False

    def _connect_error(self, text: str) -> None:
        if len(self.connect_errors) < 100:
            self.connect_errors.append(text)

    async def _connect_h3(self, index: int) -> bool:
        # UDP: "connected" means the QUIC handshake completed (the session then calls
        # on_connected); a failed or timed-out handshake is a connect error like a refused TCP
        # connection.
        t = self.plan.target
        session, reason = await self.h3.connect(self.loop, lambda: self._new_session(index),
                                                t.host, t.port)
        if session is None:
            self._connect_error(reason or "QUIC handshake failed")
            return False
        return True

    async def connect_all(self) -> int:
        """Initial connections, before the start signal. Returns how many succeeded."""
        ok = await asyncio.gather(*(self._connect(i) for i in range(self.n_connections)),
                                  return_exceptions=True)
        return sum(1 for r in ok if r is True)

    # Called by the sessions (per connection, not per request).
    def on_connected(self, session: native._Session) -> None:
        i = session.index
        if self.stopping:
            session.stop()
            return
        self.sessions[i] = session
        self.connected += 1
        self.backoff_s[i] = RECONNECT_BACKOFF_MIN_S
        if self.started:
            session.fill()

    def on_lost(self, session: native._Session, exc: BaseException | None) -> None:
        i = session.index
        if self.sessions[i] is session:
            self.sessions[i] = None
            self.connected -= 1
        if self.stopping:
            self._maybe_idle()
            return
        self.loop.call_soon(self._reconnect, i)

    def _reconnect(self, index: int) -> None:
        if self.stopping:
            return

        async def attempt() -> None:
            try:
                if await self._connect(index):
                    return
            except _PortsExhausted:
                # Not a server error: counted apart, retried after the back-off.
                delay = self.backoff_s[index]
                self.backoff_s[index] = min(delay * 2, RECONNECT_BACKOFF_MAX_S)
                self.loop.call_later(delay, self._reconnect, index)
                return
            if self.stopping:
                return
            self.stats.count_error(native.ERROR_CONNECT)
            delay = self.backoff_s[index]
            self.backoff_s[index] = min(delay * 2, RECONNECT_BACKOFF_MAX_S)
            self.loop.call_later(delay, self._reconnect, index)

        self.loop.create_task(attempt())

    def start(self, start_ns: int, end_ns: int | None) -> None:
        """Begin sending. Warm-up traffic flows from start_ns; recording from start+warmup."""
        self.stats.record_from_ns = start_ns + self.plan.warmup_ns
        self.stats.stop_ns = end_ns if end_ns is not None else (1 << 62)
        self.stats.running = True
        self.started = True
        for i, s in enumerate(self.sessions):
            if s is not None:
                s.fill()
            else:
                self._reconnect(i)
        self._schedule_timeouts()
        if self.stats.schedule.paced:
            self._pace_handle = self.loop.call_later(PACE_TICK_S, self._pace)
        if self.plan.coalesce_ns:
            placement.set_timer_slack_ns(1000)
            self._coalesce_polled_ns = time.monotonic_ns()
            self._coalesce_from = (self._coalesce_polled_ns, self.stats.requests)
            self._coalesce_handle = self.loop.call_soon(self._coalesce)

    def _coalesce(self) -> None:
        """--coalesce: runs once per loop iteration while responses flow. A ready callback
        makes the loop poll without blocking, so sleeping out the rest of the interval here
        means the next poll finds every connection that became readable meanwhile: one
        wake-up for many responses instead of one per response, which is most of a client's
        CPU when the server is the limit. A busy loop (an iteration longer than the interval)
        never sleeps.

        Batching pays only while responses come at least once per interval. That is checked
        every millisecond; below it the loop blocks as usual (an arrival wakes it at once) and
        a timer, backing off from 1 ms to 256 ms, checks the rate again: a slow server costs
        almost no wake-ups it would not have cost anyway. Responses are counted from the end
        of the warm-up, so the warm-up itself is read unbatched."""
        if self.stopping:
            return
        now = time.monotonic_ns()
        left = self._coalesce_polled_ns + self.plan.coalesce_ns - now
        if left > 0:
            time.sleep(left / 1e9)
            now = time.monotonic_ns()
        self._coalesce_polled_ns = now
        if now - self._coalesce_from[0] < COALESCE_CHECK_NS or self._responses_flow(now):
            self._coalesce_handle = self.loop.call_soon(self._coalesce)
        else:
            self._coalesce_idle_s = COALESCE_IDLE_MIN_S
            self._coalesce_handle = self.loop.call_later(self._coalesce_idle_s, self._coalesce_idle)

    def _responses_flow(self, now: int) -> bool:
        """Whether responses came at least once per interval since the last check, which
        starts the next measurement from now."""
        t0, r0 = self._coalesce_from
        requests = self.stats.requests
        self._coalesce_from = (now, requests)
        return (requests - r0) * self.plan.coalesce_ns >= now - t0

    def _coalesce_idle(self) -> None:
        if self.stopping:
            return
        now = time.monotonic_ns()
        if self._responses_flow(now):
            self._coalesce_polled_ns = now
            self._coalesce_handle = self.loop.call_soon(self._coalesce)
            return
        self._coalesce_idle_s = min(self._coalesce_idle_s * 2, COALESCE_IDLE_MAX_S)
        self._coalesce_handle = self.loop.call_later(self._coalesce_idle_s, self._coalesce_idle)

    def _pace(self) -> None:
        """Open model: sessions send scheduled requests as responses free them; this tick wakes
        idle sessions when a request falls due between responses. Timer resolution is 1 ms;
        whatever that costs shows up in schedule_lag_us, not hidden."""
        if self.stopping:
            return
        now = time.monotonic_ns()
        n = self.n_connections
        i = 0
        while i < n and self.stats.schedule.due(now):
            s = self.sessions[(self._pace_next + i) % n]
            if s is not None:
                s.fill()
            i += 1
        self._pace_next = (self._pace_next + i) % n if n else 0
        self._pace_handle = self.loop.call_later(PACE_TICK_S, self._pace)

    def _schedule_timeouts(self) -> None:
        # Check a few times per timeout period: the error of a timeout verdict is bounded by
        # the period, and the cost is per connection, not per request.
        period_s = min(max(self.plan.timeout_ns / 4e9, 0.005), 0.25)
        self._timeout_handle = self.loop.call_later(period_s, self._check_timeouts)

    def _check_timeouts(self) -> None:
        if self.stopping:
            return
        limit = time.monotonic_ns() - self.plan.timeout_ns
        for s in self.sessions:
            if s is not None:
                s.expire(limit)
        self._schedule_timeouts()

    def stop(self) -> None:
        if self.stopping:
            return
        self.stopping = True
        self.stats.running = False
        if self._timeout_handle is not None:
            self._timeout_handle.cancel()
        if self._pace_handle is not None:
            self._pace_handle.cancel()
        if self._coalesce_handle is not None:
            self._coalesce_handle.cancel()
        for s in self.sessions:
            if s is not None:
                s.stop()
        self._maybe_idle()

    def _maybe_idle(self) -> None:
        if self._idle is not None and not self._idle.done() and self.connected == 0:
            self._idle.set_result(None)

    async def closed(self, timeout_s: float = 2.0) -> None:
        """Wait until every transport is gone (bounded)."""
        if self.connected == 0:
            return
        self._idle = self.loop.create_future()
        try:
            await asyncio.wait_for(self._idle, timeout_s)
        except asyncio.TimeoutError:
            pass

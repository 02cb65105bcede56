"""HTTP/3 over QUIC (aioquic, or qh3 with --h3-backend): one H3Session per QUIC connection with
up to `streams` requests in flight, driven by a connected UDP endpoint on the worker's event loop and recorded through
the same WorkerStats (schedule, quota, histograms, error classes) as the native sessions.

aioquic is pure Python, so this path costs Python objects per packet and per request; what it
avoids is work on top of that: the header list is built once per engine, datagrams produced
by a burst of reads go out in one pass after the burst, and the QUIC timer is re-armed only
when it must fire earlier than the one already set.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from typing import Any

from fastload import native
from fastload.config.plan import Plan
from fastload.errors import certificate_rejected
from fastload.h3.backends import Backend, load
from fastload.workload.wire import h2_header_list

monotonic_ns = native.monotonic_ns

# TLS alerts (RFC 8446 §6) that mean "the certificate was not accepted".
_CERT_ALERTS = {42, 43, 44, 45, 46, 48, 49}
_ALERT_NO_APPLICATION_PROTOCOL = 120
# QUIC transport errors (RFC 9000 §20.1) that say a peer broke the protocol; the others (no
# error, internal error, refused, idle timeout...) end a connection without blaming the bytes.
_TRANSPORT_PROTOCOL_ERRORS = {0x3, 0x4, 0x5, 0x6, 0x7, 0x8, 0xa, 0xb, 0xd, 0xe, 0xf, 0x10}
# HTTP/3 (RFC 9114 §8.1) and QPACK (RFC 9204 §6) errors that mean malformed HTTP/3: general
# protocol, stream creation, closed critical stream, frame unexpected, frame, id, settings,
# missing settings, message; QPACK decompression, encoder and decoder stream.
_H3_PROTOCOL_ERRORS = {0x101, 0x103, 0x104, 0x105, 0x106, 0x108, 0x109, 0x10A, 0x10E,
                       0x200, 0x201, 0x202}
_H3_NO_ERROR = 0x100
_CANCELLED = 0x10C  # H3_REQUEST_CANCELLED


def make_configuration(plan: Plan) -> Any:
    """Client QUIC/TLS settings from the plan: verification on unless --insecure, --ca added."""
    b = load(plan.h3_backend)
    config = b.QuicConfiguration(
        is_client=True,
        alpn_protocols=b.H3_ALPN,
        server_name=plan.target.host,
        verify_mode=ssl.CERT_NONE if plan.insecure else ssl.CERT_REQUIRED,
        # Requests are timed out by the engine (--timeout); the idle timeout only has to outlast it.
        idle_timeout=max(60.0, 2 * plan.timeout_ns / 1e9),
    )
    if plan.ca is not None:
        config.load_verify_locations(cafile=plan.ca)
    return config


def termination_class(event: Any) -> int:
    """Error class of the requests in flight on a connection that ended with `event`."""
    code = event.error_code
    if event.frame_type is None:  # APPLICATION_CLOSE: an HTTP/3 or QPACK code
        return native.ERROR_PROTOCOL if code in _H3_PROTOCOL_ERRORS else native.ERROR_RESET
    if code in _TRANSPORT_PROTOCOL_ERRORS or 0x100 <= code <= 0x1FF:
        return native.ERROR_PROTOCOL
    return native.ERROR_RESET


def handshake_error(event: Any, host: str, port: int) -> str:
    """One line for a connection that ended before its handshake completed."""
    reason = event.reason_phrase or f"error 0x{event.error_code:x}"
    if event.frame_type is not None and 0x100 <= event.error_code <= 0x1FF:
        alert = event.error_code - 0x100
        if alert in _CERT_ALERTS:
            return certificate_rejected(host, reason)
        if alert == _ALERT_NO_APPLICATION_PROTOCOL:
            return f"server at {host}:{port} did not negotiate h3 by ALPN"
    return f"QUIC handshake with {host}:{port} failed: {reason}"


def _content_length(headers: list[tuple[bytes, bytes]]) -> int:
    """The announced body length, -1 if none or unreadable (then not checked)."""
    for name, value in headers:
        if name == b"content-length":
            return int(value) if value.isdigit() else -1
    return -1


def _is_event_stream(headers: list[tuple[bytes, bytes]]) -> bool:
    """The response's events are SSE events (the same rule as the native sessions')."""
    for name, value in headers:
        if name == b"content-type":
            return native.is_event_stream(value)
    return False


class H3Request:
    """The request as sent on every stream, built once per engine."""

    def __init__(self, plan: Plan) -> None:
        # HTTP/3 forbids the same connection-specific fields as HTTP/2 (RFC 9114 §4.2).
        self.headers: list[tuple[bytes, bytes]] = h2_header_list(plan)
        self.body: bytes = plan.body
        self.head = plan.method == "HEAD"


class H3Session(asyncio.DatagramProtocol):
    """One QUIC connection. The engine sees the same interface as the native sessions:
    index, fill(), stop(), expire(), oldest_sent_ns(), inflight; it learns about the handshake
    through `handshake` (a future: None on success, else a one-line reason)."""

    def __init__(self, engine: Any, stats: native.WorkerStats, configuration: Any,
                 request: H3Request, streams: int, handshake_timeout_s: float,
                 backend: Backend) -> None:
        self.engine = engine
        self.stats = stats
        self.rec = native.Recorder(stats)
        self.index = -1
        self.loop = asyncio.get_running_loop()
        self.b = backend
        self.quic = backend.QuicConnection(configuration=configuration)
        backend.prepare(self.quic)
        self.h3 = backend.ClientH3(self.quic)
        self._check_length = not backend.checks_content_length
        self.head = request.head
        self.headers = request.headers
        self.body = request.body
        self.streams = streams
        # stream id -> [intended_ns, sent_ns, status]; status 0 until the final HEADERS.
        self.open: dict[int, list[int]] = {}
        self.handshake: asyncio.Future = self.loop.create_future()
        self.connected = False
        self.closed = False
        self.stopping = False
        self.transport: asyncio.DatagramTransport | None = None
        self.peer: Any = None
        self._sendto: Any = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._flush_pending = False
        # Requests started since the last transmit: their send time is stamped again once
        # aioquic has built and encrypted their packets (see _transmit).
        self._unsent: list[list[int]] = []
        self._handshake_timeout_s = handshake_timeout_s
        self._handshake_timer: asyncio.TimerHandle | None = None

    # -- engine interface

    @property
    def inflight(self) -> int:
        return len(self.open)

    def fill(self) -> None:
        if self._fill():
            self._transmit()

    def stop(self) -> None:
        """End of run: close at once; requests in flight are not counted (as H1/H2 do)."""
        self.stopping = True
        if self.closed or self.transport is None:
            return
        # Tell the server (one CONNECTION_CLOSE datagram) rather than leave it to time out.
        self.quic.close(error_code=_H3_NO_ERROR)
        self._transmit()
        self._close()

    def oldest_sent_ns(self) -> int:
        return min((r[1] for r in self.open.values()), default=-1)

    def expire(self, older_than_ns: int) -> int:
        """Per-request timeout: late streams are counted as timeouts and cancelled (reset and
        STOP_SENDING); unlike HTTP/1.1 the connection and its other streams go on."""
        if self.closed or not self.open:
            return 0
        now = monotonic_ns()
        late = [sid for sid, r in self.open.items() if r[1] < older_than_ns]
        for sid in late:
            r = self.open.pop(sid)
            self.rec.on_failure(native.ERROR_TIMEOUT, r[0], now, 1)
            try:
                self.quic.reset_stream(sid, _CANCELLED)
                self.quic.stop_stream(sid, _CANCELLED)
            except ValueError:  # already finished on one side: nothing left to cancel
                pass
        if late:
            self._fill()
            self._transmit()
        return len(late)

    # -- asyncio.DatagramProtocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._sendto = transport.sendto  # type: ignore[attr-defined]
        self.peer = transport.get_extra_info("peername")
        self.quic.connect(self.peer, now=time.monotonic())
        self._handshake_timer = self.loop.call_later(self._handshake_timeout_s,
                                                     self._handshake_timed_out)
        self._transmit()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if self.closed:
            return
        now_ns = monotonic_ns()
        self.rec.count_bytes(now_ns, len(data), 0)
        self.quic.receive_datagram(data, addr, now=now_ns / 1e9)
        self._process_events(now_ns)
        self._check_closing()
        if self.closed:
            return
        # A read burst delivers several datagrams before the loop runs its ready callbacks:
        # new requests and ACKs for all of them go out together, after the burst.
        if not self._flush_pending:
            self._flush_pending = True
            self.loop.call_soon(self._flush)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable on the connected socket: nothing listens there (any more).
        if not self.connected:
            self._handshake_failed(f"cannot connect to {self._where()}: {exc.strerror or exc}"
                                   if isinstance(exc, OSError) else str(exc))
            return
        self._fail_all(native.ERROR_RESET)
        self._close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._cancel_timers()
        if self.open and not self.stopping:
            self._fail_all(native.ERROR_RESET)
        self.open.clear()
        if not self.handshake.done():
            self.handshake.set_result(f"QUIC connection to {self._where()} closed during the handshake")
        self.transport = None
        self._sendto = None
        if self.connected:
            self.connected = False
            self.engine.on_lost(self, exc)

    # -- internals

    def _where(self) -> str:
        return f"{self.peer[0]}:{self.peer[1]}" if self.peer else "server"

    def _fill(self) -> bool:
        """Starts as many requests as the stream limit, quota and schedule allow."""
        if self.closed or self.stopping or not self.connected:
            return False
        open_ = self.open
        if len(open_) >= self.streams:
            return False
        rec = self.rec
        now = monotonic_ns()
        n = 0
        quic, h3, headers, body = self.quic, self.h3, self.headers, self.body
        # The server's MAX_STREAMS: past it the library would queue or refuse the stream. Like
        # h2 under SETTINGS_MAX_CONCURRENT_STREAMS, wait for the server to grant more
        # (MAX_STREAMS frames arrive as streams complete).
        max_streams = self.b.max_streams_bidi(quic)
        while len(open_) < self.streams and rec.may_start(now):
            sid = quic.get_next_available_stream_id()
            if sid >> 2 >= max_streams:  # client bidi streams are 0, 4, 8...: sid/4 opened
                break
            t = rec.take_due(now)
            if t < 0:
                break
            h3.send_headers(sid, headers, end_stream=not body)
            if body:
                h3.send_data(sid, body, end_stream=True)
            # intended, sent, status, first byte, SSE scanner, events, last event time,
            # Content-Length (-1: none), body bytes received
            r = [t, now, 0, 0, None, 0, -1, -1, 0]
            open_[sid] = r
            self._unsent.append(r)
            rec.on_sent(now, 1)  # before the next may_start: the -n quota counts it
            n += 1
        return n > 0

    def _flush(self) -> None:
        self._flush_pending = False
        if self.closed:
            return
        self._fill()
        self._transmit()

    def _transmit(self) -> None:
        if self.closed or self._sendto is None:
            return
        now = time.monotonic()
        sendto = self._sendto
        n = 0
        datagrams = self.quic.datagrams_to_send(now=now)
        if self._unsent:
            # Latency runs from the moment the request is handed to the kernel, as for h1/h2
            # (there one clock read just before the write): aioquic's packet building and
            # encryption above is client work, not the server's. In the closed model the
            # intended time is the send time, so it moves too.
            t = monotonic_ns()
            record_from = self.stats.record_from_ns
            for r in self._unsent:
                if r[1] < record_from <= t:
                    continue  # started in the warm-up: it must stay there (-n counts it so)
                if r[0] == r[1]:
                    r[0] = t
                r[1] = t
            self._unsent.clear()
        try:
            for data, _addr in datagrams:
                sendto(data)
                n += len(data)
        except OSError:
            pass  # the transport reports it through error_received/connection_lost
        if n:
            self.rec.count_bytes(int(now * 1e9), 0, n)
        at = self.quic.get_timer()
        if at is None:
            return
        # Keep an armed timer that fires no later than needed: firing early only re-checks.
        if self._timer is not None:
            if self._timer_at <= at:
                return
            self._timer.cancel()
        self._timer_at = at
        self._timer = self.loop.call_later(max(at - now, 0.0), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self.closed:
            return
        now = time.monotonic()
        self.quic.handle_timer(now=max(now, self._timer_at))
        self._process_events(monotonic_ns())
        self._check_closing()
        if not self.closed:
            self._fill()
            self._transmit()

    def _process_events(self, now: int) -> None:
        quic, h3, b = self.quic, self.h3, self.b
        event = quic.next_event()
        while event is not None:
            kind = type(event)
            if kind is b.StreamDataReceived:
                for h in h3.handle_event(event):
                    self._on_h3_event(h, now)
            elif kind is b.StreamReset:
                r = self.open.pop(event.stream_id, None)
                if r is not None:
                    self.rec.on_failure(native.ERROR_RESET, r[0], now, 1)
                h3.handle_event(event)
            elif kind is b.HandshakeCompleted:
                self._handshake_done()
            elif kind is b.ConnectionTerminated:
                self._terminated(event)
                return
            else:
                h3.handle_event(event)
            event = quic.next_event()

    def _on_h3_event(self, h: Any, now: int) -> None:
        r = self.open.get(h.stream_id)
        if r is None:
            # A stream we gave up on (timeout), or a control/push stream.
            self.h3.length_mismatch.discard(h.stream_id)
            return
        if type(h) is self.b.HeadersReceived:
            if r[3] == 0:
                r[3] = now
            if r[2] == 0:
                for name, value in h.headers:
                    if name == b":status":
                        status = int(value) if value.isdigit() else -1
                        if status >= 200 or status < 100:  # 1xx: interim, wait for the final one
                            r[2] = status
                        break
                if r[2] >= 200:
                    if _is_event_stream(h.headers):
                        r[4] = native.StreamScanner("sse")
                    if self._check_length:
                        r[7] = _content_length(h.headers)
        elif type(h) is self.b.DataReceived:
            r[8] += len(h.data)
            if r[4] is not None and h.data:
                k = r[4].feed(h.data)
                if k:
                    self.rec.on_events(r[0], now, r[6], k)
                    r[5] += k
                    r[6] = now
        else:
            return
        if h.stream_ended:
            del self.open[h.stream_id]
            bad_length = False
            if self.h3.length_mismatch and h.stream_id in self.h3.length_mismatch:
                self.h3.length_mismatch.discard(h.stream_id)
                bad_length = not (self.head or r[2] == 304)
            elif r[7] >= 0 and r[8] != r[7]:
                bad_length = not (self.head or r[2] == 304)
            if r[2] <= 0 or bad_length:
                # Ended without a final status, or with a body that is not the length it
                # announced: not a valid HTTP response.
                self.rec.on_failure(native.ERROR_PROTOCOL, r[0], now, 1)
            elif self.rec.on_response(r[2], r[0], now, r[1]):
                self.rec.on_stream_done(r[0], r[3], r[5] if r[4] is not None else -1)

    def _handshake_done(self) -> None:
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None
        self.connected = True
        if not self.handshake.done():
            self.handshake.set_result(None)
        self.engine.on_connected(self)

    def _handshake_timed_out(self) -> None:
        self._handshake_timer = None
        if not self.connected:
            self._handshake_failed(f"cannot connect to {self._where()}: no QUIC handshake within "
                                   f"{self._handshake_timeout_s:g}s")

    def _handshake_failed(self, reason: str) -> None:
        if not self.handshake.done():
            self.handshake.set_result(reason)
        self._close()

    def _check_closing(self) -> None:
        # aioquic reports ConnectionTerminated only after the closing/draining period (3 PTO),
        # but once a close is decided (by the peer's CONNECTION_CLOSE, or by aioquic on a
        # protocol error) no stream will complete: settle the requests now and let the engine
        # reconnect. The pending close event is not public API; without it the
        # ConnectionTerminated event does the same, only later.
        event = getattr(self.quic, "_close_event", None)
        if event is not None and not self.closed:
            self._terminated(event)

    def _terminated(self, event: Any) -> None:
        if self.closed:
            return
        self._transmit()  # our CONNECTION_CLOSE, if we are the side closing
        if not self.connected:
            self._handshake_failed(handshake_error(event, *(self.peer or ("server", 0))))
            return
        if not self.stopping:
            self._fail_all(termination_class(event))
        self._close()

    def _fail_all(self, cls: int) -> None:
        now = monotonic_ns()
        for r in self.open.values():
            self.rec.on_failure(cls, r[0], now, 1)
        self.open.clear()

    def _cancel_timers(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None

    def _close(self) -> None:
        self._cancel_timers()
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.close()


async def connect(loop: asyncio.AbstractEventLoop, factory: Any, host: str, port: int
                  ) -> tuple[H3Session | None, str | None]:
    """Opens a UDP endpoint, runs the QUIC handshake: (session, None) or (None, reason)."""
    try:
        _, session = await loop.create_datagram_endpoint(
            factory, remote_addr=(host, port), family=_family(host))
    except OSError as e:
        return None, f"cannot connect to {host}:{port}: {e.strerror or e}"
    reason = await session.handshake
    return (None, reason) if reason is not None else (session, None)


def _family(host: str) -> int:
    # IP literals pick their family; a name takes the first address getaddrinfo gives (UDP has
    # no connect to fail over on, unlike the TCP path's tries of every address).
    return socket.AF_INET6 if ":" in host else socket.AF_INET if host.replace(".", "").isdigit() \
        else 0

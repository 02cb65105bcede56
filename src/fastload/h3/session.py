"""HTTP/3 over QUIC (aioquic, or qh3 with --h3-backend): one H3Session per QUIC connection with
up to `streams` requests in flight, driven by a connected UDP endpoint on the worker's event
loop and recorded through the same WorkerStats (schedule, quota, histograms, error classes) as
the native sessions.

The QUIC library carries STREAM data; HTTP/3 above it is fastload's own: the request is
encoded once (workload/qpack.py) and written as one bytes object per stream, responses are
parsed and recorded by native/h3.pyx (H3Core), and the connection-level streams are
h3/control.py's. The library's Python objects per packet and per STREAM event remain; what
this path avoids on top of them: datagrams produced by a burst of reads go out in one pass
after the burst, and the QUIC timer is re-armed only when it must fire earlier than the one
already set.
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
from fastload.h3.control import CLIENT_CONTROL_STREAM, H3_NO_ERROR, ServerStreams
from fastload.workload.qpack import encode_request
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


class H3Request:
    """The request as sent on every stream, built once per engine."""

    def __init__(self, plan: Plan) -> None:
        # HTTP/3 forbids the same connection-specific fields as HTTP/2 (RFC 9114 §4.2).
        self.headers: list[tuple[bytes, bytes]] = h2_header_list(plan)
        self.body: bytes = plan.body
        # HEADERS (+ DATA): the whole request stream, written as is on every stream.
        self.wire: bytes = encode_request(self.headers, self.body)
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
        # Request streams: parsed and recorded in C, one call per STREAM event.
        self.core = native.H3Core(stats, streams, request.head)
        self.server_streams = ServerStreams()
        self.wire = request.wire
        self.handshake: asyncio.Future = self.loop.create_future()
        self.connected = False
        self.closed = False
        self.stopping = False
        self.draining = False  # after the server's GOAWAY: no new requests here
        self.transport: asyncio.DatagramTransport | None = None
        self.peer: Any = None
        self._sendto: Any = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._flush_pending = False
        # Requests were started since the last transmit: their send time is stamped again once
        # the library has built and encrypted their packets (see _transmit).
        self._started = False
        self._handshake_timeout_s = handshake_timeout_s
        self._handshake_timer: asyncio.TimerHandle | None = None

    # -- engine interface

    @property
    def inflight(self) -> int:
        return self.core.inflight

    def fill(self) -> None:
        if self._fill():
            self._transmit()

    def stop(self) -> None:
        """End of run: close at once; requests in flight are not counted (as H1/H2 do)."""
        self.stopping = True
        if self.closed or self.transport is None:
            return
        # Tell the server (one CONNECTION_CLOSE datagram) rather than leave it to time out.
        self.quic.close(error_code=H3_NO_ERROR)
        self._transmit()
        self._close()

    def oldest_sent_ns(self) -> int:
        return self.core.oldest_sent_ns()

    def expire(self, older_than_ns: int) -> int:
        """Per-request timeout: late streams are counted as timeouts and cancelled (reset and
        STOP_SENDING); unlike HTTP/1.1 the connection and its other streams go on."""
        if self.closed or not self.core.inflight:
            return 0
        late = self.core.expire(older_than_ns, monotonic_ns())
        for sid in late:
            self._cancel(sid, _CANCELLED)
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
        # Our control stream with its SETTINGS: sent with the first 1-RTT packets.
        self.quic.send_stream_data(self.quic.get_next_available_stream_id(is_unidirectional=True),
                                   CLIENT_CONTROL_STREAM)
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
        if self.core.inflight and not self.stopping:
            self._fail_all(native.ERROR_RESET)
        self.core.fail_all(native.ERROR_RESET, monotonic_ns(), False)
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
        if self.closed or self.stopping or self.draining or not self.connected:
            return False
        quic, core, wire = self.quic, self.core, self.wire
        now = monotonic_ns()
        n = 0
        # The server's MAX_STREAMS: past it the library would queue or refuse the stream. Like
        # h2 under SETTINGS_MAX_CONCURRENT_STREAMS, wait for the server to grant more
        # (MAX_STREAMS frames arrive as streams complete).
        max_streams = self.b.max_streams_bidi(quic)
        next_sid = quic.get_next_available_stream_id
        send = quic.send_stream_data
        while True:
            sid = next_sid()
            # Client bidi streams are 0, 4, 8...: sid/4 opened so far.
            if sid >> 2 >= max_streams or not core.open_next(sid, now):
                break
            send(sid, wire, True)
            n += 1
        if n:
            self._started = True
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
        if self._started:
            # Latency runs from the moment the request is handed to the kernel (H3Core.restamp).
            self._started = False
            self.core.restamp(monotonic_ns(), self.stats.record_from_ns)
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
        quic, core, b = self.quic, self.core, self.b
        data_event = b.StreamDataReceived
        event = quic.next_event()
        while event is not None:
            kind = type(event)
            if kind is data_event:
                rc = core.feed(event.stream_id, event.data, event.end_stream, now)
                if rc and not self._stream_outcome(event, rc, now):
                    return
            elif kind is b.StreamReset:
                core.reset(event.stream_id, now)
            elif kind is b.HandshakeCompleted:
                self._handshake_done()
            elif kind is b.ConnectionTerminated:
                self._terminated(event)
                return
            event = quic.next_event()
        if self.draining and not core.inflight and not self.closed:
            # Every request the server took after its GOAWAY is answered: reconnect.
            self.quic.close(error_code=H3_NO_ERROR)
            self._transmit()
            self._close()

    def _stream_outcome(self, event: Any, rc: int, now: int) -> bool:
        """What H3Core.feed asked for besides recording; False once the connection is closing."""
        if rc == native.H3_RC_UNI:
            rc = self.server_streams.feed(event.stream_id, event.data, event.end_stream)
            if not rc:
                goaway = self.server_streams.goaway
                if goaway >= 0 and not self.draining:
                    self.draining = True
                    for sid in self.core.refuse_from(goaway, now):
                        self._cancel(sid, _CANCELLED)
                return True
        elif rc == native.H3_RC_STREAM_ERROR:
            self._cancel(event.stream_id, native.H3_MESSAGE_ERROR)
            return True
        # A connection error (RFC 9114 §8, RFC 9204 §6): what is in flight fails as a protocol
        # error once the close is seen (_check_closing, termination_class).
        self.quic.close(error_code=rc)
        return False

    def _cancel(self, sid: int, code: int) -> None:
        try:
            self.quic.reset_stream(sid, code)
            self.quic.stop_stream(sid, code)
        except ValueError:  # already finished on one side: nothing left to cancel
            pass

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
        # The library reports ConnectionTerminated only after the closing/draining period
        # (3 PTO), but once a close is decided (by the peer's CONNECTION_CLOSE, by the library
        # on a QUIC protocol error, or by us on an HTTP/3 one) no stream will complete: settle
        # the requests now and let the engine reconnect. The pending close event is not public
        # API; without it the ConnectionTerminated event does the same, only later.
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
        self.core.fail_all(cls, monotonic_ns())

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

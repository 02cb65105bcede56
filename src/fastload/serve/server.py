"""A small, predictable HTTP/1.1 + h2c server for demos and tests.

It answers every request with a fixed status and body after an optional,
guaranteed-minimum delay, and counts what it served so tests can check a load
generator's numbers against the server's own. Control endpoints:

* ``GET /__fastload/stats``  -> ``{"responses": n, "requests_by_path": {...}, "held_us":
  {"count", "min", "p50", "max"}}`` (held: request parsed -> response ready, plain responses)
* ``POST /__fastload/reset`` -> resets the counters

``GET /sse?events=N&first=20ms&gap=10ms`` streams a text/event-stream response instead, like a
token-streaming API: headers after the server's delay, event i at (first + i * gap) after the
request arrived (never earlier), each event in its own chunk (HTTP/1.1) or DATA frame (h2),
then the end of the response.

Run: ``fastload serve --host 127.0.0.1 --port 0 --delay 5ms``.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import socket
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import cast

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import uvloop

from fastload.errors import UsageError
from fastload.units import parse_duration_ns

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
STATS_PATH = "/__fastload/stats"
RESET_PATH = "/__fastload/reset"
DEFAULT_BODY = b"hello world\n"
# Request heads larger than this are rejected rather than buffered forever.
MAX_HEAD = 64 * 1024
HELD_SAMPLES = 100_000
H2_MAX_STREAMS = 256


# --------------------------------------------------------------------------- config / stats


@dataclass
class Stats:
    responses: int = 0
    requests_by_path: dict[str, int] = field(default_factory=dict)
    # How long each plain response was held (request parsed -> response ready), in µs. A
    # client's latency for a request can never be below its hold time, so tests compare the
    # client's percentiles with these instead of with the nominal delay, which a loaded
    # machine's timers overshoot. Bounded: the server also runs long demos and soaks.
    held_us: deque[int] = field(default_factory=lambda: deque(maxlen=HELD_SAMPLES))

    def record_request(self, path: str) -> None:
        self.requests_by_path[path] = self.requests_by_path.get(path, 0) + 1

    def record_response(self, since: float) -> None:
        self.responses += 1
        self.held_us.append(int((time.monotonic() - since) * 1e6))

    def reset(self) -> None:
        self.responses = 0
        self.requests_by_path.clear()
        self.held_us.clear()

    def to_json(self) -> bytes:
        return json.dumps(
            {"responses": self.responses, "requests_by_path": self.requests_by_path,
             "held_us": held_summary(self.held_us)}
        ).encode()


def held_summary(held_us: Iterable[int]) -> dict[str, int]:
    """count/min/p50/max of hold times (also used by the tests' HTTP/3 server)."""
    held = sorted(held_us)
    if not held:
        return {"count": 0}
    # Nearest rank, as the generator's HDR percentiles are defined.
    return {"count": len(held), "min": held[0], "max": held[-1],
            "p50": held[max(math.ceil(0.5 * len(held)) - 1, 0)]}


@dataclass
class Config:
    delay_s: float = 0.0
    status: int = 200
    body: bytes = DEFAULT_BODY


def make_body(body_size: int | None) -> bytes:
    if body_size is None:
        return DEFAULT_BODY
    if body_size <= 0:
        return b""
    return b"x" * (body_size - 1) + b"\n"


def reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Status"


# --------------------------------------------------------------------------- shared logic


class Handler:
    """Decides what to answer and when; shared by the h1 and h2 protocols."""

    def __init__(self, loop: asyncio.AbstractEventLoop, config: Config, stats: Stats) -> None:
        self.loop = loop
        self.config = config
        self.stats = stats

    def control(self, method: str, path: str) -> tuple[int, bytes] | None:
        """Answer control endpoints immediately (not delayed, not counted)."""
        if path == STATS_PATH and method in ("GET", "HEAD"):
            return 200, self.stats.to_json()
        if path == RESET_PATH and method == "POST":
            self.stats.reset()
            return 200, b'{"reset": true}'
        return None

    def schedule(self, callback: Callable[[], None]) -> None:
        """Run callback once at least delay_s has elapsed from now.

        Timers may fire early (libuv caches loop time at ms granularity), so the
        callback re-arms itself until the monotonic deadline really passed.
        """
        delay = self.config.delay_s
        if delay <= 0:
            callback()
            return
        self.at(time.monotonic() + delay, callback)

    def at(self, deadline: float, callback: Callable[[], None]) -> None:
        """Run callback at the monotonic deadline, never before it."""

        def fire() -> None:
            remaining = deadline - time.monotonic()
            if remaining > 0:
                self.loop.call_later(remaining, fire)
            else:
                callback()

        self.loop.call_later(max(deadline - time.monotonic(), 0.0), fire)


def split_path(target: str) -> str:
    return target.split("?", 1)[0] or "/"


SSE_PATH = "/sse"


@dataclass
class SseSpec:
    events: int = 10
    first_s: float = 0.0
    gap_s: float = 0.0


def sse_spec(target: str) -> SseSpec | None:
    """The stream a /sse request asks for; None for other paths. Bad parameters fall back to
    the defaults: this is a test server, not a validator."""
    path, _, query = target.partition("?")
    if path != SSE_PATH:
        return None
    spec = SseSpec()
    for item in query.split("&"):
        key, _, value = item.partition("=")
        try:
            if key == "events":
                spec.events = max(0, int(value))
            elif key == "first":
                spec.first_s = parse_duration_ns(value, allow_zero=True) / 1e9
            elif key == "gap":
                spec.gap_s = parse_duration_ns(value, allow_zero=True) / 1e9
        except (ValueError, UsageError):
            pass
    return spec


def sse_event(i: int) -> bytes:
    return b"id: %d\ndata: token %d\n\n" % (i, i)


def stream_events(handler: Handler, spec: SseSpec, on_head: Callable[[], None],
                  on_event: Callable[[bytes], None], on_end: Callable[[], None]) -> None:
    """Drives one SSE response on the loop: head after the delay, events on their deadlines."""
    t0 = time.monotonic()
    state = {"head": False, "next": 0}

    def step() -> None:
        if not state["head"]:
            state["head"] = True
            on_head()
        while state["next"] < spec.events:
            due = t0 + spec.first_s + state["next"] * spec.gap_s
            if due > time.monotonic():
                handler.at(due, step)
                return
            on_event(sse_event(state["next"]))
            state["next"] += 1
        on_end()

    handler.schedule(step)


# --------------------------------------------------------------------------- HTTP/1.1


class H1Session:
    """Incremental HTTP/1.1 parser with in-order (pipelined) responses."""

    def __init__(self, transport: asyncio.Transport, handler: Handler) -> None:
        self.transport = transport
        self.handler = handler
        self.buf = bytearray()
        # Each entry is [bytes ready to write, done, close_after]; answered in order, and a
        # streamed reply holds back the ones behind it until it is done.
        self.pending: deque[list] = deque()
        self.closing = False

    def feed(self, data: bytes) -> None:
        self.buf += data
        while not self.closing:
            if not self._parse_one():
                break

    def _parse_one(self) -> bool:
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buf) > MAX_HEAD:
                self._fail(431)
            return False
        head = bytes(self.buf[:end]).decode("latin-1")
        lines = head.split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            self._fail(400)
            return False
        method, target, version = parts
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                self._fail(400)
                return False
            headers[name.strip().lower()] = value.strip()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self._fail(501)  # not needed by the load generator; keep the parser small
            return False
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            self._fail(400)
            return False
        total = end + 4 + length
        if len(self.buf) < total:
            return False  # wait for the rest of the body
        del self.buf[:total]
        conn = headers.get("connection", "").lower()
        close = conn == "close" or (version == "HTTP/1.0" and conn != "keep-alive")
        self._request(method, target, close)
        return True

    def _request(self, method: str, target: str, close: bool) -> None:
        handler = self.handler
        path = split_path(target)
        entry: list = [b"", False, close]
        self.pending.append(entry)
        ctl = handler.control(method, path)
        if ctl is not None:
            entry[0] = self._encode(ctl[0], ctl[1], method, close, "application/json")
            entry[1] = True
            self._flush()
            return
        handler.stats.record_request(path)
        cfg = handler.config
        spec = sse_spec(target) if method != "HEAD" else None
        if spec is not None:
            self._stream(entry, spec, close)
            return
        payload = self._encode(cfg.status, cfg.body, method, close, "text/plain")
        since = time.monotonic()

        def ready() -> None:
            entry[0] = payload
            entry[1] = True
            handler.stats.record_response(since)
            self._flush()

        handler.schedule(ready)

    def _stream(self, entry: list, spec: SseSpec, close: bool) -> None:
        def head() -> None:
            entry[0] += ("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                         "Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n"
                         + ("Connection: close\r\n" if close else "") + "\r\n").encode()
            self._flush()

        def event(data: bytes) -> None:
            entry[0] += b"%x\r\n%s\r\n" % (len(data), data)
            self._flush()

        def end() -> None:
            entry[0] += b"0\r\n\r\n"
            entry[1] = True
            self.handler.stats.responses += 1
            self._flush()

        stream_events(self.handler, spec, head, event, end)

    @staticmethod
    def _encode(status: int, body: bytes, method: str, close: bool, ctype: str) -> bytes:
        head = (
            f"HTTP/1.1 {status} {reason(status)}\r\n"
            f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
            + ("Connection: close\r\n" if close else "")
            + "\r\n"
        ).encode()
        return head if method == "HEAD" else head + body

    def _flush(self) -> None:
        out = []
        while self.pending:
            entry = self.pending[0]
            if entry[0]:
                out.append(bytes(entry[0]))
                entry[0] = b""
            if not entry[1]:
                break
            self.pending.popleft()
            if entry[2]:
                self.closing = True
                self.pending.clear()
                break
        if self.transport.is_closing():
            return
        if out:
            self.transport.write(b"".join(out))
        if self.closing:
            self.transport.close()

    def _fail(self, status: int) -> None:
        self.closing = True
        if not self.transport.is_closing():
            self.transport.write(self._encode(status, b"", "GET", True, "text/plain"))
            self.transport.close()


# --------------------------------------------------------------------------- HTTP/2


class H2Session:
    """h2c (prior knowledge) server side on the h2 library, honouring flow control."""

    def __init__(self, transport: asyncio.Transport, handler: Handler) -> None:
        self.transport = transport
        self.handler = handler
        cfg = h2.config.H2Configuration(client_side=False, header_encoding=None)
        self.conn = h2.connection.H2Connection(config=cfg)
        self.conn.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: H2_MAX_STREAMS,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: 65536,
            },
        )
        self.conn.initiate_connection()
        self.requests: dict[int, tuple[str, str]] = {}  # stream -> (method, target)
        # stream -> [body bytes still to send, whole body known (end the stream after it)]
        self.outbound: dict[int, list] = {}
        self.streaming: set[int] = set()  # SSE streams whose events are still being produced
        self._send()

    def feed(self, data: bytes) -> None:
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            self._send()
            self.transport.close()
            return
        for ev in events:
            self._event(ev)
        self._send()

    def _event(self, ev: h2.events.Event) -> None:
        if isinstance(ev, h2.events.RequestReceived):
            hdrs = {k: v for k, v in ev.headers}
            method = hdrs.get(b":method", b"GET").decode("latin-1")
            target = hdrs.get(b":path", b"/").decode("latin-1")
            self.requests[ev.stream_id] = (method, target)
            if ev.stream_ended is not None:
                self._request(ev.stream_id)
        elif isinstance(ev, h2.events.DataReceived):
            # Request bodies are discarded; give the window back right away.
            self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            if ev.stream_ended is not None:
                self._request(ev.stream_id)
        elif isinstance(ev, h2.events.StreamEnded):
            if ev.stream_id in self.requests:
                self._request(ev.stream_id)
        elif isinstance(ev, h2.events.StreamReset):
            self.requests.pop(ev.stream_id, None)
            self.outbound.pop(ev.stream_id, None)
            self.streaming.discard(ev.stream_id)
        elif isinstance(ev, h2.events.WindowUpdated):
            self._pump()
        elif isinstance(ev, h2.events.ConnectionTerminated):
            self.transport.close()

    def _request(self, stream_id: int) -> None:
        req = self.requests.pop(stream_id, None)
        if req is None:
            return  # already dispatched (RequestReceived + StreamEnded both fire)
        method, target = req
        path = split_path(target)
        handler = self.handler
        ctl = handler.control(method, path)
        if ctl is not None:
            self._respond(stream_id, ctl[0], ctl[1], method, "application/json")
            self._send()
            return
        handler.stats.record_request(path)
        cfg = handler.config
        spec = sse_spec(target) if method != "HEAD" else None
        if spec is not None:
            self._stream(stream_id, spec)
            return
        since = time.monotonic()

        def ready() -> None:
            if self.transport.is_closing():
                return
            try:
                self._respond(stream_id, cfg.status, cfg.body, method, "text/plain")
            except h2.exceptions.StreamClosedError:
                return  # client reset the stream while we were delaying
            handler.stats.record_response(since)
            self._send()

        handler.schedule(ready)

    def _stream(self, stream_id: int, spec: SseSpec) -> None:
        def alive() -> bool:
            return not self.transport.is_closing() and stream_id in self.streaming

        def head() -> None:
            if self.transport.is_closing():
                return
            try:
                self.conn.send_headers(stream_id, [(b":status", b"200"),
                                                   (b"content-type", b"text/event-stream"),
                                                   (b"cache-control", b"no-cache")])
            except h2.exceptions.StreamClosedError:
                return
            self.streaming.add(stream_id)
            self.outbound[stream_id] = [b"", False]
            self._send()

        def event(data: bytes) -> None:
            if alive() and stream_id in self.outbound:
                self.outbound[stream_id][0] += data
                self._pump()
                self._send()

        def end() -> None:
            if alive() and stream_id in self.outbound:
                self.outbound[stream_id][1] = True
                self.streaming.discard(stream_id)
                self.handler.stats.responses += 1
                self._pump()
                self._send()

        stream_events(self.handler, spec, head, event, end)

    def _respond(self, stream_id: int, status: int, body: bytes, method: str, ctype: str) -> None:
        headers = [
            (b":status", str(status).encode()),
            (b"content-type", ctype.encode()),
            (b"content-length", str(len(body)).encode()),
        ]
        if method == "HEAD" or not body:
            self.conn.send_headers(stream_id, headers, end_stream=True)
            return
        self.conn.send_headers(stream_id, headers)
        self.outbound[stream_id] = [body, True]
        self._pump()

    def _pump(self) -> None:
        """Send as much pending body data as the peer's flow-control windows allow."""
        for stream_id in list(self.outbound):
            data, whole = self.outbound[stream_id]
            try:
                window = self.conn.local_flow_control_window(stream_id)
            except h2.exceptions.StreamClosedError:
                del self.outbound[stream_id]
                self.streaming.discard(stream_id)
                continue
            frame = self.conn.max_outbound_frame_size
            view = memoryview(data)
            while view and window > 0:
                n = min(len(view), window, frame)
                self.conn.send_data(stream_id, view[:n].tobytes(), end_stream=whole and n == len(view))
                view = view[n:]
                window -= n
            if whole and not data:
                self.conn.end_stream(stream_id)  # a stream whose last event went out earlier
            if view or not whole:
                self.outbound[stream_id] = [view.tobytes(), whole]
            else:
                del self.outbound[stream_id]

    def _send(self) -> None:
        out = self.conn.data_to_send()
        if out and not self.transport.is_closing():
            self.transport.write(out)


# --------------------------------------------------------------------------- protocol / server


class ServeProtocol(asyncio.Protocol):
    """Sniffs the first bytes: the h2 preface selects h2c, anything else is HTTP/1.1."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.transport: asyncio.Transport | None = None
        self.session: H1Session | H2Session | None = None
        self.sniff = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, hence the cast.
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass

    def data_received(self, data: bytes) -> None:
        if self.session is None:
            self.sniff += data
            n = min(len(self.sniff), len(H2_PREFACE))
            if self.sniff[:n] == H2_PREFACE[:n] and n < len(H2_PREFACE):
                return  # could still be the preface: wait for more bytes
            assert self.transport is not None
            if self.sniff.startswith(H2_PREFACE):
                self.session = H2Session(self.transport, self.handler)
            else:
                self.session = H1Session(self.transport, self.handler)
            data, self.sniff = self.sniff, b""
        self.session.feed(data)

    # Backpressure: stop reading new requests while the socket buffer is full.
    def pause_writing(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.session = None


class Server:
    """Owns the listening socket; usable from a CLI command or tests."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        delay_s: float = 0.0,
        status: int = 200,
        body_size: int | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.config = Config(delay_s=delay_s, status=status, body=make_body(body_size))
        self.stats = Stats()
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> int:
        loop = asyncio.get_running_loop()
        handler = Handler(loop, self.config, self.stats)
        try:
            self._server = await loop.create_server(
                lambda: ServeProtocol(handler), self.host, self.port, backlog=1024,
                reuse_address=True
            )
        except OSError as e:  # port in use, address not on this host, port below 1024, ...
            why = os.strerror(e.errno).lower() if e.errno else str(e)
            raise UsageError(f"cannot listen on {self.address}: {why}") from None
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None


async def serve(
    host: str = "127.0.0.1",
    port: int = 0,
    delay_s: float = 0.0,
    status: int = 200,
    body_size: int | None = None,
    announce: Callable[[str], None] | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT (or cancellation)."""
    server = Server(host, port, delay_s, status, body_size)
    await server.start()
    if announce is not None:
        announce(server.address)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass  # not the main thread / platform without signal support
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.remove_signal_handler(sig)
            except (NotImplementedError, RuntimeError):
                pass
        await server.close()


def _announce(address: str) -> None:
    # Fixtures read this first line to learn the port picked by --port 0.
    print(f"listening on {address}", flush=True)


def run(coro_factory: Callable[[], object]) -> None:
    uvloop.run(coro_factory())  # type: ignore[arg-type]


def serve_forever(host: str, port: int, delay_s: float, status: int,
                  body_size: int | None) -> None:
    """`fastload serve`: announce the address on stdout, serve until SIGTERM/SIGINT. A port
    that cannot be listened on raises UsageError."""
    try:
        run(lambda: serve(host, port, delay_s, status, body_size, announce=_announce))
    except KeyboardInterrupt:
        pass

"""The userspace fault proxy: a TCP proxy on uvloop (no root) that forwards untouched outside its
windows and applies each window's fault inside it, with toxiproxy's semantics.

Forwarding is one asyncio Protocol per side: each read is handed to the other side's
transport.write as it came (no copy, no StreamReader), and a side whose peer cannot keep up
stops reading (pause_reading/resume_reading), so memory stays bounded. Only a connection that a
fault shapes, or that still drains what a fault queued, leaves that path.

The schedule is a list of FaultSpec windows relative to a start instant (CLOCK_MONOTONIC ns,
the clock of time.monotonic_ns() in every process), so the run's parent can start the proxy
before the workers and give it the common start when it knows it. Every probability draw comes
from one seeded random.Random per proxy.

Run in its own process with ProxyProcess (a JSON-lines control channel on stdin/stdout), or by
hand: `python -m fastload.faults.proxy --fault-proxy web=127.0.0.1:8081=127.0.0.1:8080
--fault '5s-10s@web:latency=100ms'` (windows from the moment it listens; Ctrl-C prints counts).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import selectors
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict
from http import HTTPStatus

import uvloop

from fastload.errors import FastloadError, UsageError
from fastload.faults.http1 import DATA, END, HEAD, Framer
from fastload.faults.spec import FaultSpec, ProxySpec, parse_fault_proxies, parse_faults, validate
from fastload.units import parse_cpu_list

UP, DOWN = 0, 1  # UP: client -> upstream server; DOWN: server -> client (toxiproxy's downstream)
_LINGER_RST = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST, not FIN
LATENCY_QUEUE_BYTES = 16 << 20  # a lane stops its source reading above this many queued bytes
EARLY_S = 0.003  # shaping windows switch connections over this early (see FaultProxy.outside)
BANDWIDTH_SLICE_S = 0.01  # a throttled chunk is cut into 10 ms worth of bytes, sent one by one
# The counters a proxy keeps, in total and per window (those a window can cause).
COUNTERS = ("connections", "upstream_connect_failed", "bytes_up", "bytes_down", "resets",
            "refused", "closed_by_down", "blackholed_connections", "blackholed_bytes",
            "delayed_chunks", "throttled_chunks", "requests", "requests_forwarded", "statuses",
            "affected_connections", "http_unframed", "relisten_failed")
_WINDOW_COUNTERS = ("resets", "refused", "closed_by_down", "blackholed_connections",
                    "blackholed_bytes", "delayed_chunks", "throttled_chunks", "requests",
                    "statuses", "affected_connections")


def _status_response(status: int, name: str, method: str, keep_alive: bool) -> bytes:
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Fault"
    body = b"" if status in (204, 304) else f"fastload fault {name}: {status}\n".encode()
    head = [f"HTTP/1.1 {status} {reason}", f"x-fastload-fault: {name}"]
    if status not in (204, 304):
        head += ["content-type: text/plain", f"content-length: {len(body)}"]
    if not keep_alive:
        head.append("connection: close")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + (b"" if method == "HEAD" else body)


class _Lane:
    """One direction of one connection while a fault shapes it: chunks wait for their due time
    (CLOCK_MONOTONIC ns) and leave in order. None in the queue stands for the EOF behind them."""

    __slots__ = ("conn", "d", "queue", "tail_ns", "queued", "limit", "timer", "paused")

    def __init__(self, conn: _Conn, d: int):
        self.conn = conn
        self.d = d
        self.queue: deque[tuple[int, bytes | None]] = deque()
        self.tail_ns = 0  # nothing may leave before this: keeps the order of the direction
        self.queued = 0
        self.limit = LATENCY_QUEUE_BYTES
        self.timer: asyncio.TimerHandle | None = None
        self.paused = False

    def push(self, due_ns: int, data: bytes | None) -> None:
        self.queue.append((due_ns, data))
        self.tail_ns = max(self.tail_ns, due_ns)
        if data is not None:
            self.queued += len(data)
            if self.queued > self.limit and not self.paused:
                self.paused = True
                self.conn.pause_source(self.d)
        if self.timer is None:
            self._arm()

    def _arm(self) -> None:
        delay_s = (self.queue[0][0] - time.monotonic_ns()) / 1e9
        self.timer = self.conn.loop.call_later(max(delay_s, 0.0), self.fire)

    def fire(self) -> None:
        self.timer = None
        now = time.monotonic_ns()
        q = self.queue
        while q and q[0][0] <= now:
            _, data = q.popleft()
            if data is None:
                self.conn.deliver_eof(self.d)
            else:
                self.queued -= len(data)
                self.conn.deliver(self.d, data)
        if self.paused and self.queued <= self.limit // 2:
            self.paused = False
            self.conn.resume_source(self.d)
        if q:
            self._arm()  # the loop's timers are ms-coarse and may fire early: check again
        else:
            self.conn.lane_drained()

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.queue.clear()
        self.queued = 0


class _Conn:
    """One proxied connection: the client side (accepted) and the upstream side."""

    __slots__ = ("proxy", "loop", "client", "upstream", "fault", "plain", "lanes", "held", "held_eof", "paused", "closed", "eof", "req", "resp", "queue",
                 "current", "interim", "close_after")

    def __init__(self, proxy: FaultProxy):
        self.proxy = proxy
        self.loop = proxy.loop
        self.client: asyncio.Transport | None = None
        self.upstream: asyncio.Transport | None = None
        self.fault: FaultSpec | None = None  # the window that shapes this connection now
        self.plain = False  # forward each read as it came: no fault, no queue, no framing
        self.lanes: list[_Lane | None] = [None, None]
        # Client bytes while the upstream connection is being made (None once it is).
        self.held: list[bytes] | None = []
        self.held_eof = False
        self.paused = [0, 0]  # per source side (UP: the client, DOWN: the upstream): reasons
        self.closed = False
        self.eof = [False, False]  # an EOF came from the client (UP) / the upstream (DOWN)
        # http_status: request and response framers, the requests in flight in order (each
        # [forwarded, method, keep_alive, local response or None until complete]).
        self.req: Framer | None = None
        self.resp: Framer | None = None
        self.queue: deque[list] = deque()
        self.current: list | None = None
        self.interim = False
        self.close_after = False  # an injected response answered a request that asked to close

    # -- state

    def update(self) -> None:
        self.plain = (self.fault is None and self.req is None and self.lanes[UP] is None
                      and self.lanes[DOWN] is None and self.held is None)

    def lane_drained(self) -> None:
        for d in (UP, DOWN):
            lane = self.lanes[d]
            if lane is not None and not lane.queue and self.fault is None:
                self.lanes[d] = None
        self.update()

    def source(self, d: int) -> asyncio.Transport | None:
        return self.client if d == UP else self.upstream

    def dest(self, d: int) -> asyncio.Transport | None:
        return self.upstream if d == UP else self.client

    def pause_source(self, d: int) -> None:
        self.paused[d] += 1
        t = self.source(d)
        if self.paused[d] == 1 and t is not None and not t.is_closing():
            t.pause_reading()

    def resume_source(self, d: int) -> None:
        self.paused[d] -= 1
        t = self.source(d)
        if self.paused[d] == 0 and t is not None and not t.is_closing():
            t.resume_reading()

    # -- data

    def received(self, d: int, data: bytes) -> None:
        """A read from side d's source, when the connection is not plain."""
        if self.closed:
            return
        if d == UP and self.held is not None:
            self.held.append(data)
            return
        if self.req is not None:
            (self._requests if d == UP else self._responses)(data)
        else:
            self.send(d, data)

    def send(self, d: int, data: bytes) -> None:
        """Data for direction d, through the window's fault (if it shapes this direction)."""
        f = self.fault
        lane = self.lanes[d]
        counts = self.proxy.counts
        if f is not None and self.proxy.outside():
            f = None
        if f is not None:
            kind = f.kind
            if kind == "blackhole":
                counts["blackholed_bytes"] += len(data)
                self.proxy.window_counts["blackholed_bytes"] += len(data)
                return
            if (kind == "latency" or kind == "bandwidth") and _shapes(f.direction, d):
                if lane is None:
                    lane = self.lanes[d] = _Lane(self, d)
                    self.update()
                now = time.monotonic_ns()
                if kind == "latency":
                    jitter = self.proxy.rng.randint(-f.jitter_ns, f.jitter_ns) if f.jitter_ns else 0
                    lane.push(max(now + f.latency_ns + jitter, lane.tail_ns), data)
                    counts["delayed_chunks"] += 1
                    self.proxy.window_counts["delayed_chunks"] += 1
                else:
                    self._throttle(lane, f.bytes_per_s, now, data)
                return
        if lane is not None and lane.queue:
            lane.push(max(time.monotonic_ns(), lane.tail_ns), data)  # behind what is delayed
        else:
            self.deliver(d, data)

    def _throttle(self, lane: _Lane, rate: int, now: int, data: bytes) -> None:
        lane.limit = max(65536, rate // 2)  # the sender feels a slow link within ~0.5 s
        step = max(1, int(rate * BANDWIDTH_SLICE_S))
        counts, window = self.proxy.counts, self.proxy.window_counts
        for i in range(0, len(data), step):
            piece = data[i:i + step] if len(data) > step else data
            due = max(now, lane.tail_ns)
            lane.push(due, piece)
            lane.tail_ns = due + len(piece) * 1_000_000_000 // rate  # the link is busy until then
            counts["throttled_chunks"] += 1
            window["throttled_chunks"] += 1

    def deliver(self, d: int, data: bytes) -> None:
        t = self.dest(d)
        if t is not None and not t.is_closing():
            t.write(data)

    def deliver_eof(self, d: int) -> None:
        t = self.dest(d)
        if t is not None and not t.is_closing():
            if t.can_write_eof():
                t.write_eof()
            else:
                t.close()
        if self.eof[UP] and self.eof[DOWN]:
            self.close()

    def got_eof(self, d: int) -> None:
        self.eof[d] = True
        if d == UP and self.held is not None:
            self.held_eof = True
            return
        lane = self.lanes[d]
        if lane is not None and lane.queue:
            lane.push(lane.tail_ns, None)
        else:
            self.deliver_eof(d)

    # -- http_status

    def _requests(self, data: bytes) -> None:
        assert self.req is not None
        f = self.fault
        inject = f is not None and f.kind == "http_status" and not self.proxy.outside()
        out: list[bytes] = []
        whole, unframe = True, False
        for ev in self.req.feed(data):
            if ev.kind == HEAD:
                if ev.head is None:  # not HTTP/1.1 we can frame: forward, never inject again
                    out.append(ev.carry + data[ev.start:ev.end])
                    whole = False
                    unframe = True
                    continue
                counts, window = self.proxy.counts, self.proxy.window_counts
                counts["requests"] += 1
                local = inject and (f.p >= 1.0 or self.proxy.rng.random() < f.p)  # type: ignore[union-attr]
                if inject:
                    window["requests"] += 1
                self.current = [not local, ev.head.method, ev.head.keep_alive, None]
                self.queue.append(self.current)
                if local:
                    whole = False
                    counts["statuses"] += 1
                    window["statuses"] += 1
                else:
                    counts["requests_forwarded"] += 1
                    self.resp.methods.append(ev.head.method)  # type: ignore[union-attr]
                    if ev.carry:
                        whole = False
                    out.append(ev.carry + data[ev.start:ev.end] if ev.carry
                               else data[ev.start:ev.end])
            elif ev.kind == DATA:
                if self.current is None or self.current[0]:
                    out.append(data[ev.start:ev.end])
                else:
                    whole = False
            elif self.current is not None and not self.current[0]:  # END of an injected one
                assert f is not None
                self.current[3] = _status_response(f.status, f.name, self.current[1],
                                                   self.current[2])
        if whole:
            self.send(UP, data)
        elif out:
            self.send(UP, b"".join(out))
        if unframe:
            self._unframe()
        else:
            self._flush_local()

    def _responses(self, data: bytes) -> None:
        assert self.resp is not None
        out: list[bytes] = []
        last = 0
        for ev in self.resp.feed(data):
            if ev.kind == HEAD:
                self.interim = ev.head is not None and ev.head.interim
                if ev.head is None or self.resp.opaque:  # a tunnel or unframeable: stop framing
                    self._unframe()
                    break
            elif ev.kind == END and not self.interim:
                if self.queue and self.queue[0][0]:
                    self.queue.popleft()
                ready = self._ready_locals()
                if ready:
                    out.append(data[last:ev.end])
                    out.extend(ready)
                    last = ev.end
        if not out:
            self.send(DOWN, data)
        else:
            out.append(data[last:])
            self.send(DOWN, b"".join(out))
        self._close_if_asked()

    def _ready_locals(self) -> list[bytes]:
        """The injected responses now due: those at the head of the queue, complete."""
        out = []
        while (not self.close_after and self.queue and not self.queue[0][0]
               and self.queue[0][3] is not None):
            entry = self.queue.popleft()
            out.append(entry[3])
            self.close_after = not entry[2]
        return out

    def _flush_local(self) -> None:
        ready = self._ready_locals()
        if ready:
            self.send(DOWN, b"".join(ready))
        self._close_if_asked()

    def _close_if_asked(self) -> None:
        # A request that asked to close got an injected response: close after it, as a server
        # would (the transport sends what it buffered first).
        if self.close_after:
            self.close()

    def _unframe(self) -> None:
        self.proxy.counts["http_unframed"] += 1
        for fr in (self.req, self.resp):
            if fr is not None:
                fr.to_opaque()
        self.req = self.resp = None
        self.queue.clear()
        self.update()

    # -- ends

    def reset(self) -> None:
        """RST to the client (SO_LINGER 0, then close), FIN to the upstream."""
        if self.closed:
            return
        t = self.client
        if t is not None and not t.is_closing():
            sock = t.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
            t.abort()
        self.close()

    def close(self, abort_peer: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        for lane in self.lanes:
            if lane is not None:
                lane.cancel()
        for t in (self.client, self.upstream):
            if t is not None and not t.is_closing():
                if abort_peer:
                    sock = t.get_extra_info("socket")
                    if sock is not None:
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
                    t.abort()
                else:
                    t.close()  # after what is buffered for it
        self.proxy.conns.pop(self, None)

    def lost(self, d: int, exc: Exception | None) -> None:
        """Side d's source is gone. A reset is passed on as a reset; a close after the data
        still queued toward the other side."""
        if self.closed:
            return
        lane = self.lanes[d]
        if exc is None and lane is not None and lane.queue:
            self.eof[d] = True
            lane.push(lane.tail_ns, None)
            return
        self.close(abort_peer=exc is not None)


def _shapes(direction: str, d: int) -> bool:
    return direction == "both" or (d == DOWN) == (direction == "down")


class _ClientSide(asyncio.Protocol):
    __slots__ = ("conn", "up")

    def __init__(self, proxy: FaultProxy):
        self.conn = _Conn(proxy)
        self.up: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.conn.client = transport  # type: ignore[assignment]
        self.conn.proxy.accepted(self.conn)

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        conn.proxy.counts["bytes_up"] += len(data)
        if conn.plain:
            conn.upstream.write(data)  # type: ignore[union-attr]
        else:
            conn.received(UP, data)

    def eof_received(self) -> bool:
        self.conn.got_eof(UP)
        return True  # half-close: the response may still come

    def connection_lost(self, exc: Exception | None) -> None:
        self.conn.lost(UP, exc)

    def pause_writing(self) -> None:
        self.conn.pause_source(DOWN)

    def resume_writing(self) -> None:
        self.conn.resume_source(DOWN)


class _UpstreamSide(asyncio.Protocol):
    __slots__ = ("conn",)

    def __init__(self, conn: _Conn):
        self.conn = conn

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Set here, not after create_connection returns: a server that speaks first may send
        # before the coroutine resumes. Client bytes stay held until then (conn.held).
        self.conn.upstream = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        conn.proxy.counts["bytes_down"] += len(data)
        if conn.plain:
            conn.client.write(data)  # type: ignore[union-attr]
        else:
            conn.received(DOWN, data)

    def eof_received(self) -> bool:
        self.conn.got_eof(DOWN)
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.conn.lost(DOWN, exc)

    def pause_writing(self) -> None:
        self.conn.pause_source(UP)

    def resume_writing(self) -> None:
        self.conn.resume_source(UP)


class FaultProxy:
    """One listening address forwarding to one upstream, with its windows. Run on a loop:
    `await start()`, `schedule(t0_ns)`, `stats()`, `await stop()`."""

    def __init__(self, spec: ProxySpec, faults: Sequence[FaultSpec], seed: int = 1,
                 loop: asyncio.AbstractEventLoop | None = None):
        self.spec = spec
        self.faults = tuple(sorted(faults, key=lambda f: f.start_ns))
        self.loop = loop or asyncio.get_event_loop()
        # One generator per proxy, seeded by --seed and the proxy's name, so a proxy's draws do
        # not depend on what the others drew.
        self.rng = random.Random(f"{seed}/{spec.name}")
        self.http = any(f.kind == "http_status" for f in self.faults)
        # Open connections in the order they came (a dict keeps it), so that seeded draws over
        # them at a window's start repeat from run to run.
        self.conns: dict[_Conn, None] = {}
        self.active: FaultSpec | None = None
        self.counts = dict.fromkeys(COUNTERS, 0)
        self.by_fault = {f.name: dict.fromkeys(_WINDOW_COUNTERS, 0) for f in self.faults}
        self._idle = dict.fromkeys(_WINDOW_COUNTERS, 0)  # counts outside any window, unused
        self.window_counts = self._idle
        self.server: asyncio.AbstractServer | None = None
        self.port = spec.listen_port
        self._timers: list[asyncio.TimerHandle] = []
        self._t0_ns = 0
        self._start_ns = self._end_ns = 0  # CLOCK_MONOTONIC bounds of the active window
        self._listening = False

    async def start(self) -> tuple[str, int]:
        await self._listen()
        return self.spec.listen_host, self.port

    async def _listen(self) -> None:
        self.server = await self.loop.create_server(
            lambda: _ClientSide(self), self.spec.listen_host, self.port, reuse_address=True,
            backlog=4096)
        self.port = self.server.sockets[0].getsockname()[1]
        self._listening = True

    def schedule(self, t0_ns: int) -> None:
        """Windows from t0_ns (CLOCK_MONOTONIC); a window already begun begins now."""
        now = time.monotonic_ns()
        self._t0_ns = t0_ns
        for f in self.faults:
            begin_s = (t0_ns + f.start_ns - now) / 1e9
            end_s = (t0_ns + f.end_ns - now) / 1e9
            if end_s <= 0:
                continue
            if f.kind not in ("reset", "down"):
                # Shaping kinds switch the connections over a little early and the data path
                # starts the fault at its nanosecond (outside()); the loop's timers are
                # millisecond-grained and may fire a millisecond late.
                begin_s -= EARLY_S
            self._timers.append(self.loop.call_later(max(begin_s, 0.0), self._begin, f))
            self._timers.append(self.loop.call_later(end_s, self._end, f))

    def _draw(self, f: FaultSpec) -> bool:
        return f.p >= 1.0 or self.rng.random() < f.p

    def outside(self) -> bool:
        """Whether now is outside the active window: before its start (connections are switched
        over EARLY_S ahead) or past its end (its timer has not fired yet). The data path asks,
        so a shaping fault starts and ends at its nanosecond."""
        now = time.monotonic_ns()
        if now < self._start_ns:
            return True
        if now >= self._end_ns and self.active is not None:
            self._end(self.active)
            return True
        return False

    def _begin(self, f: FaultSpec) -> None:
        early_s = (self._t0_ns + f.start_ns - time.monotonic_ns()) / 1e9
        if early_s > 0 and f.kind in ("reset", "down"):  # a timer may fire before its time
            self._timers.append(self.loop.call_later(early_s, self._begin, f))
            return
        self.active = f
        self._start_ns = self._t0_ns + f.start_ns
        self._end_ns = self._t0_ns + f.end_ns
        self.window_counts = self.by_fault[f.name]
        if f.kind == "down" and f.p >= 1.0 and self.server is not None:
            self.server.close()  # connecting now is refused by the kernel (RST to the SYN)
            self.server = None
            self._listening = False
        for conn in list(self.conns):
            self._apply(conn, f)

    def _apply(self, conn: _Conn, f: FaultSpec) -> None:
        """The window f to a connection open at its start, or accepted during it."""
        kind = f.kind
        counts, window = self.counts, self.window_counts
        if kind == "http_status":
            conn.fault = f  # p is drawn per request
        elif not self._draw(f):
            return
        elif kind == "reset":
            counts["resets"] += 1
            window["resets"] += 1
            conn.reset()
            return
        elif kind == "down":
            counts["closed_by_down"] += 1
            window["closed_by_down"] += 1
            conn.close()
            return
        else:
            conn.fault = f
            if kind == "blackhole":
                counts["blackholed_connections"] += 1
                window["blackholed_connections"] += 1
        counts["affected_connections"] += 1
        window["affected_connections"] += 1
        conn.update()

    def _end(self, f: FaultSpec) -> None:
        if self.active is not f:
            return
        self.active = None
        self.window_counts = self._idle
        for conn in list(self.conns):
            conn.fault = None
            conn.lane_drained()  # lanes still queued drain on their own, then go
        if f.kind == "down" and not self._listening:
            self.loop.create_task(self._relisten())

    async def _relisten(self) -> None:
        try:
            await self._listen()
        except OSError:
            self.counts["relisten_failed"] += 1  # someone took the port during the window

    def accepted(self, conn: _Conn) -> None:
        self.counts["connections"] += 1
        f = self.active
        if f is not None and f.kind in ("reset", "down") and not self.outside() \
                and self._draw(f):
            # A new connection in a reset window gets its RST at once; in a down window with
            # p < 1 (with p = 1 nothing listens) it is closed at once: no upstream either way.
            key = "resets" if f.kind == "reset" else "refused"
            self.counts[key] += 1
            self.window_counts[key] += 1
            if f.kind == "reset":
                conn.reset()
            else:
                conn.close()
            return
        self.conns[conn] = None
        if self.http:
            conn.req = Framer(True)
            conn.resp = Framer(False)
        if f is not None and f.kind not in ("reset", "down"):
            self._apply(conn, f)
        self.loop.create_task(self._connect(conn))

    async def _connect(self, conn: _Conn) -> None:
        try:
            transport, _ = await self.loop.create_connection(
                lambda: _UpstreamSide(conn), self.spec.upstream_host, self.spec.upstream_port)
        except OSError:
            self.counts["upstream_connect_failed"] += 1
            conn.close()
            return
        if conn.closed:
            transport.close()
            return
        if conn.paused[DOWN]:
            transport.pause_reading()
        held, conn.held = conn.held or [], None
        conn.update()
        for data in held:
            conn.received(UP, data)
        if conn.held_eof:
            conn.got_eof(UP)

    def stats(self) -> dict:
        return {"name": self.spec.name, "listen": [self.spec.listen_host, self.port],
                "upstream": self.spec.upstream, "open_connections": len(self.conns),
                **self.counts, "by_fault": {k: dict(v) for k, v in self.by_fault.items()}}

    async def stop(self) -> dict:
        for t in self._timers:
            t.cancel()
        if self.server is not None:
            self.server.close()
        for conn in list(self.conns):
            conn.close()
        return self.stats()


# --------------------------------------------------------------------------- a process of proxies

# The proxy in front of the URL, for windows without @TARGET. Not a name a user can type
# (names start with a letter, digit or '_'), so it never collides with a --fault-proxy.
LOAD_PATH = "(url)"


def proxies_for(faults: Sequence[FaultSpec], proxies: Sequence[ProxySpec],
                url_host: str, url_port: int) -> list[tuple[ProxySpec, list[FaultSpec]]]:
    """What a ProxyProcess runs for a run: every --fault-proxy with its windows, and, when some
    window has no @TARGET, LOAD_PATH on a free loopback port in front of the URL (the workers
    then connect to its address, given by start())."""
    out = [(p, [f for f in faults if f.target == p.name]) for p in proxies]
    own = [f for f in faults if f.target is None]
    if own:
        loopback = "::1" if ":" in url_host else "127.0.0.1"
        out.append((ProxySpec(LOAD_PATH, loopback, 0, url_host, url_port), own))
    return out



def _fault_to_json(f: FaultSpec) -> dict:
    d = asdict(f)
    d["explicit"] = sorted(f.explicit)
    return d


def _fault_from_json(d: dict) -> FaultSpec:
    return FaultSpec(**{**d, "explicit": frozenset(d["explicit"])})


async def _serve(config: dict, control: bool) -> dict:
    """Runs the proxies of config until told to stop (control) or signalled; their stats."""
    loop = asyncio.get_running_loop()
    proxies = [FaultProxy(ProxySpec(**p["spec"]), [_fault_from_json(f) for f in p["faults"]],
                          config.get("seed", 1), loop) for p in config["proxies"]]
    ready = {}
    for p in proxies:
        ready[p.spec.name] = list(await p.start())
    if config.get("t0_ns") is not None:
        for p in proxies:
            p.schedule(config["t0_ns"])
    done = loop.create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: done.done() or done.set_result(None))
    if control:
        _reply({"ready": ready})
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        loop.create_task(_commands(reader, proxies, done))
    else:
        for name, (host, port) in ready.items():
            print(f"listening on {name} {host}:{port}", flush=True)
    await done
    return {p.spec.name: await p.stop() for p in proxies}


def _reply(msg: dict) -> None:
    sys.stdout.write(json.dumps(msg) + "\n")
    sys.stdout.flush()


async def _commands(reader: asyncio.StreamReader, proxies: list[FaultProxy],
                    done: asyncio.Future) -> None:
    while not done.done():
        line = await reader.readline()
        if not line:  # the parent is gone (even SIGKILLed): stop with it
            break
        msg = json.loads(line)
        if msg["cmd"] == "schedule":
            for p in proxies:
                p.schedule(msg["t0_ns"])
            _reply({"ok": True})
        elif msg["cmd"] == "stats":
            _reply({"stats": {p.spec.name: p.stats() for p in proxies}})
        elif msg["cmd"] == "stop":
            break
    if not done.done():
        done.set_result(None)


def _run_child(config: dict, control: bool) -> dict:
    if config.get("cpus"):
        os.sched_setaffinity(0, config["cpus"])
    return uvloop.run(_serve(config, control))


class ProxyProcess:
    """The proxies of one run in a child process: `start()` returns once every proxy listens
    (the ready handshake gives the addresses, with the ports picked for port 0), `schedule()`
    starts the windows, `stats()` reads the counters, `stop()` ends it with the final counters.
    The child exits by itself when this process dies (its stdin closes). A context manager."""

    def __init__(self, proxies: Sequence[tuple[ProxySpec, Sequence[FaultSpec]]], seed: int = 1,
                 t0_ns: int | None = None, cpus: Sequence[int] | None = None):
        self.config = {"proxies": [{"spec": asdict(s), "faults": [_fault_to_json(f) for f in fs]}
                                   for s, fs in proxies],
                       "seed": seed, "t0_ns": t0_ns, "cpus": list(cpus) if cpus else None}
        self.proc: subprocess.Popen[str] | None = None
        self._stderr: tempfile._TemporaryFileWrapper | None = None  # the child's, read on failure
        self.listen: dict[str, tuple[str, int]] = {}

    def start(self, timeout_s: float = 10.0) -> dict[str, tuple[str, int]]:
        # stderr to a file: a pipe nobody reads would block the child once full. A session of
        # its own: a Ctrl-C at the terminal goes to the run, which stops the proxy when it has
        # read the final counters (and if the run dies, the child's stdin closes).
        self._stderr = tempfile.TemporaryFile(mode="w+")  # type: ignore[assignment]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fastload.faults.proxy", "--control"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True,
            start_new_session=True)
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(self.config) + "\n")
        self.proc.stdin.flush()
        msg = self._read(timeout_s)
        if "ready" not in msg:
            self.kill()
            raise FastloadError(f"fault proxy: {msg.get('error', msg)}")
        self.listen = {k: (h, p) for k, (h, p) in msg["ready"].items()}
        return self.listen

    def _read(self, timeout_s: float) -> dict:
        assert self.proc is not None and self.proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if not sel.select(timeout_s):
                self.kill()
                raise FastloadError(f"fault proxy: no answer within {timeout_s:g}s")
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            assert self._stderr is not None
            self._stderr.seek(0)
            err = self._stderr.read()
            last = err.strip().splitlines()[-1] if err.strip() else f"exit {self.proc.returncode}"
            self.kill()
            raise FastloadError(f"fault proxy: {last}")
        return json.loads(line)

    def _ask(self, msg: dict, timeout_s: float = 10.0) -> dict:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()
        return self._read(timeout_s)

    def schedule(self, t0_ns: int) -> None:
        self._ask({"cmd": "schedule", "t0_ns": t0_ns})

    def stats(self) -> dict:
        return self._ask({"cmd": "stats"})["stats"]

    def stop(self, timeout_s: float = 10.0) -> dict:
        """The final counters of every proxy, by name ({} if it was not running)."""
        if self.proc is None or self.proc.poll() is not None:
            self.kill()
            return {}
        try:
            final = self._ask({"cmd": "stop"}, timeout_s)
        finally:
            self.kill(timeout_s)
        return final.get("stats", {})

    def kill(self, timeout_s: float = 5.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        for f in (proc.stdin, proc.stdout, self._stderr):
            if f is not None:
                f.close()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self) -> ProxyProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fastload.faults.proxy",
                                 description="Run fault proxies; windows count from the moment"
                                 " they listen. Ctrl-C stops them and prints their counters.")
    ap.add_argument("--fault-proxy", action="append", default=[], metavar="NAME=LISTEN=UPSTREAM")
    ap.add_argument("--fault", action="append", default=[], metavar="SPEC")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cpus", type=str, default=None, help="pin the proxy (e.g. 1)")
    ap.add_argument("--control", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    try:
        if args.control:
            config = json.loads(sys.stdin.readline())
        else:
            config = _manual_config(args)
        stats = _run_child(config, args.control)
    except (UsageError, OSError) as e:
        if args.control:
            _reply({"error": str(e)})
        else:
            print(f"error: {e}", file=sys.stderr)
        return 2
    if args.control:
        _reply({"stats": stats})
    else:
        print(json.dumps(stats, indent=2))
    return 0


def _manual_config(args: argparse.Namespace) -> dict:
    proxies = parse_fault_proxies(args.fault_proxy)
    if not proxies:
        raise UsageError("--fault-proxy: give at least one NAME=LISTEN=UPSTREAM")
    faults = parse_faults(args.fault)
    # By hand there is no URL: a fault without @NAME goes to the only proxy.
    if len(proxies) > 1 and any(f.target is None for f in faults):
        raise UsageError("--fault: with several proxies, name one with @NAME")
    faults = tuple(f if f.target else _retarget(f, proxies[0].name) for f in faults)
    validate(faults, proxies)
    return {"proxies": [{"spec": asdict(p),
                         "faults": [_fault_to_json(f) for f in faults if f.target == p.name]}
                        for p in proxies],
            "seed": args.seed, "t0_ns": time.monotonic_ns(),
            "cpus": parse_cpu_list(args.cpus) if args.cpus else None}


def _retarget(f: FaultSpec, name: str) -> FaultSpec:
    d = asdict(f)
    d["target"] = name
    d["explicit"] = f.explicit
    return FaultSpec(**d)


if __name__ == "__main__":
    sys.exit(main())

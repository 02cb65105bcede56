"""The project's HTTP/3 test server (aioquic): answers every request with 200 and
'hello world\\n' after an optional delay, and counts what it served.

    python tests/servers/h3_server.py --cert cert.pem --key key.pem [--port 0] [--delay 20ms]
        [--reset-every N] [--close-after N] [--no-status-every N] [--bad-length-every N]
        [--goaway-after N]

It prints 'listening on 127.0.0.1:PORT' (UDP, HTTP/3) and 'stats on 127.0.0.1:PORT' (TCP,
plain HTTP/1.0: GET returns the counters as JSON, POST /reset zeroes them).
Faults, for the error-class tests:
- --reset-every N: every Nth request is answered with RESET_STREAM (H3_REQUEST_REJECTED);
- --close-after N: a connection is closed (CONNECTION_CLOSE, H3_NO_ERROR) right after it
  answered N requests, whatever else is in flight on it;
- --no-status-every N: every Nth response has no :status (malformed HTTP/3);
- --bad-length-every N: every Nth response announces one byte more than its body;
- --goaway-after N: once a connection received N requests it sends GOAWAY with the stream id
  after the last one it received, answers the streams below it, ignores those from it on, and
  closes the connection (H3_NO_ERROR) once the client does not.
--sse N,GAP_MS streams text/event-stream instead: N events, event i at (i + 1) * GAP_MS after
the response headers (never earlier), then the end of the stream.
HEAD is answered with the Content-Length of the body and no body.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time

from aioquic.asyncio import QuicConnectionProtocol, serve
from aioquic.buffer import encode_uint_var
from aioquic.h3.connection import H3_ALPN, ErrorCode, FrameType, H3Connection, encode_frame
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ProtocolNegotiated, QuicEvent

from fastload.serve.server import held_summary

BODY = b"hello world\n"


class Counters:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.requests = 0  # complete requests received
        self.responses = 0  # complete responses sent
        self.resets = 0
        self.closes = 0
        self.malformed = 0
        self.goaways = 0
        self.ignored = 0  # requests on streams from a GOAWAY's id on: never answered
        self.connections = 0
        # µs each plain response was held (request complete -> response written), as
        # `fastload serve` reports them: tests bound client latency against these.
        self.held: list[int] = []

    def as_dict(self) -> dict:
        out = {k: v for k, v in vars(self).items() if k != "held"}
        out["held_us"] = held_summary(self.held)
        return out


class Options:
    delay_s = 0.0
    reset_every = 0
    close_after = 0
    no_status_every = 0
    bad_length_every = 0
    goaway_after = 0
    sse_events = 0
    sse_gap_s = 0.0


COUNTERS = Counters()
OPTIONS = Options()


class H3ServerProtocol(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.h3: H3Connection | None = None
        self.answered = 0
        self.closing = False
        self.received = 0
        self.goaway_id = -1
        self.head_streams: set[int] = set()
        self._tx_pending = False
        # ACK with the next responses instead of 1 ms later in a packet of its own (as the
        # client does): fewer datagrams for both sides to process.
        if hasattr(self._quic, "_ack_delay"):
            self._quic._ack_delay = 0.0

    def transmit(self) -> None:
        # aioquic transmits after every datagram and every response; once per loop iteration
        # puts all responses of a read burst into as few datagrams as possible.
        if not self._tx_pending:
            self._tx_pending = True
            self._loop.call_soon(self._transmit_now)

    def _transmit_now(self) -> None:
        self._tx_pending = False
        if self._transport is not None:
            super().transmit()

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, ProtocolNegotiated) and event.alpn_protocol in H3_ALPN:
            self.h3 = H3Connection(self._quic)
            COUNTERS.connections += 1
        if self.h3 is None:
            return
        for h in self.h3.handle_event(event):
            if isinstance(h, HeadersReceived) and dict(h.headers).get(b":method") == b"HEAD":
                self.head_streams.add(h.stream_id)
            if isinstance(h, (HeadersReceived, DataReceived)) and h.stream_ended:
                self.on_request(h.stream_id)

    def on_request(self, stream_id: int) -> None:
        if self.closing:
            return
        if 0 <= self.goaway_id <= stream_id:
            COUNTERS.ignored += 1
            return
        self.received += 1
        if OPTIONS.goaway_after and self.received == OPTIONS.goaway_after and self.h3 is not None:
            # aioquic has no API for a server's GOAWAY: written on its control stream directly.
            self.goaway_id = stream_id + 4
            COUNTERS.goaways += 1
            self._quic.send_stream_data(self.h3._local_control_stream_id, encode_frame(
                FrameType.GOAWAY, encode_uint_var(self.goaway_id)))
        COUNTERS.requests += 1
        n = COUNTERS.requests
        if OPTIONS.reset_every and n % OPTIONS.reset_every == 0:
            COUNTERS.resets += 1
            self._quic.reset_stream(stream_id, ErrorCode.H3_REQUEST_REJECTED)
            self.transmit()
            return
        now = time.monotonic()
        if OPTIONS.delay_s:
            self.respond_at(now + OPTIONS.delay_s, stream_id, n, now)
        else:
            self.respond(stream_id, n, now)

    def respond_at(self, deadline: float, stream_id: int, n: int, since: float) -> None:
        # Loop timers may fire early (libuv caches loop time at ms granularity): re-arm until
        # the delay really passed, so a measured latency below it is the client's fault.
        remaining = deadline - time.monotonic()
        if remaining > 0:
            self._loop.call_later(remaining, self.respond_at, deadline, stream_id, n, since)
        else:
            self.respond(stream_id, n, since)

    def stream_event(self, stream_id: int, i: int, t0: float) -> None:
        due = t0 + (i + 1) * OPTIONS.sse_gap_s
        if time.monotonic() < due:
            self._loop.call_later(due - time.monotonic(), self.stream_event, stream_id, i, t0)
            return
        last = i + 1 == OPTIONS.sse_events
        try:
            self.h3.send_data(stream_id, b"data: token %d\n\n" % i, end_stream=last)
        except Exception:  # the client cancelled the stream
            return
        if last:
            COUNTERS.responses += 1
        else:
            self.stream_event(stream_id, i + 1, t0)
        self.transmit()

    def respond(self, stream_id: int, n: int, since: float) -> None:
        if self.closing or self.h3 is None:
            return
        if OPTIONS.sse_events:
            self.h3.send_headers(stream_id, [(b":status", b"200"), (b"content-type", b"text/event-stream")])
            self.transmit()
            self.stream_event(stream_id, 0, time.monotonic())
            return
        length = len(BODY)
        if OPTIONS.bad_length_every and n % OPTIONS.bad_length_every == 0:
            COUNTERS.malformed += 1
            length += 1
        headers = [(b":status", b"200"), (b"content-length", str(length).encode())]
        if OPTIONS.no_status_every and n % OPTIONS.no_status_every == 0:
            COUNTERS.malformed += 1
            headers = headers[1:]
        try:
            if stream_id in self.head_streams:  # the length of the body a GET would get
                self.head_streams.discard(stream_id)
                self.h3.send_headers(stream_id, headers, end_stream=True)
            else:
                self.h3.send_headers(stream_id, headers)
                self.h3.send_data(stream_id, BODY, end_stream=True)
        except Exception:  # the client cancelled the stream meanwhile (timeout tests)
            return
        COUNTERS.responses += 1
        if len(COUNTERS.held) < 100_000:
            COUNTERS.held.append(int((time.monotonic() - since) * 1e6))
        self.answered += 1
        if OPTIONS.close_after and self.answered >= OPTIONS.close_after:
            self.closing = True
            COUNTERS.closes += 1
            # Out go the responses written so far (a pending close would drop them), then the
            # CONNECTION_CLOSE: what `responses` counts is what the client can receive.
            self._transmit_now()
            self._quic.close(error_code=ErrorCode.H3_NO_ERROR, reason_phrase="close-after")
        self.transmit()


async def stats_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        line = await reader.readline()
        while (await reader.readline()) not in (b"\r\n", b"\n", b""):
            pass
        if line.startswith(b"POST /reset"):
            COUNTERS.reset()
        body = json.dumps(COUNTERS.as_dict()).encode()
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                     + str(len(body)).encode() + b"\r\n\r\n" + body)
        await writer.drain()
    finally:
        writer.close()


def parse_delay(text: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|us)?", text.strip())
    if not m:
        raise SystemExit(f"bad --delay {text!r}")
    return float(m.group(1)) * {"s": 1.0, "ms": 1e-3, "us": 1e-6, None: 1.0}[m.group(2)]


async def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--delay", default="0")
    ap.add_argument("--reset-every", type=int, default=0)
    ap.add_argument("--close-after", type=int, default=0)
    ap.add_argument("--no-status-every", type=int, default=0)
    ap.add_argument("--bad-length-every", type=int, default=0)
    ap.add_argument("--goaway-after", type=int, default=0)
    ap.add_argument("--sse", default=None, metavar="N,GAP_MS")
    args = ap.parse_args(argv)
    if args.sse:
        n, gap = args.sse.split(",")
        OPTIONS.sse_events, OPTIONS.sse_gap_s = int(n), float(gap) / 1000
    OPTIONS.delay_s = parse_delay(args.delay)
    OPTIONS.reset_every = args.reset_every
    OPTIONS.close_after = args.close_after
    OPTIONS.no_status_every = args.no_status_every
    OPTIONS.bad_length_every = args.bad_length_every
    OPTIONS.goaway_after = args.goaway_after
    config = QuicConfiguration(is_client=False, alpn_protocols=H3_ALPN,
                               max_datagram_frame_size=None)
    config.load_cert_chain(args.cert, args.key)
    server = await serve(args.host, args.port, configuration=config,
                         create_protocol=H3ServerProtocol)
    port = server._transport.get_extra_info("sockname")[1]
    stats = await asyncio.start_server(stats_handler, args.host, 0)
    stats_port = stats.sockets[0].getsockname()[1]
    print(f"listening on {args.host}:{port}", flush=True)
    print(f"stats on {args.host}:{stats_port}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        import uvloop

        run = uvloop.run
    except ImportError:
        run = asyncio.run
    try:
        run(main(sys.argv[1:]))
    except KeyboardInterrupt:
        pass

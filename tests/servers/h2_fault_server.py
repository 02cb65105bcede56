"""A project-owned HTTP/2 (h2c prior knowledge) server that misbehaves on purpose, built on the
h2 library.

    python tests/servers/h2_fault_server.py MODE [GOOD]

Modes (GOOD streams are answered properly first, per connection unless noted):
  goaway      then GOAWAY naming the last answered stream, leaving the new one unanswered
  rst         every (GOOD+1)-th stream on a connection is reset (RST_STREAM INTERNAL_ERROR)
  maxstreams  SETTINGS_MAX_CONCURRENT_STREAMS=1, all answered; records the peak concurrency
  badframe    then a PING frame with a wrong length (a connection error for the client)
  badhpack    then HEADERS whose block is not valid HPACK
  zerowindow  SETTINGS_INITIAL_WINDOW_SIZE=0 and no WINDOW_UPDATE ever; nothing is answered.
              A client may send 65535 bytes of DATA before the SETTINGS reach it (RFC 9113
              6.9.2); body_bytes counts what arrived
Prints "listening on PORT"; a connection whose first bytes are "GET /__stats" gets the
counters as JSON over HTTP/1.1.
"""

from __future__ import annotations

import asyncio
import json
import sys

import h2.config
import h2.connection
import h2.events
import h2.settings

STATS = {"connections": 0, "good": 0, "faults": 0, "peak_streams": 0, "body_bytes": 0}
BODY = b"hello world\n"


class H2Fault(asyncio.Protocol):
    def __init__(self, mode: str, good: int) -> None:
        self.mode, self.good = mode, good
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        self.answered = 0
        self.open = set()
        self.first = True
        self.dead = False

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.first:
            self.first = False
            if data.startswith(b"GET /__stats"):
                body = json.dumps(STATS).encode()
                self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                                     % (len(body), body))
                self.transport.close()
                return
            STATS["connections"] += 1
            if self.mode == "maxstreams":
                self.conn.local_settings = h2.settings.Settings(
                    client=False, initial_values={h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 1})
            self.conn.initiate_connection()
            if self.mode == "zerowindow":
                # A change rather than an initial value: h2 then accepts the DATA the client
                # may send under the default window before it sees this.
                self.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
        if self.dead:
            return
        for ev in self.conn.receive_data(data):
            if isinstance(ev, h2.events.RequestReceived):
                self.open.add(ev.stream_id)
                STATS["peak_streams"] = max(STATS["peak_streams"], len(self.open))
                self.on_request(ev.stream_id)
            elif isinstance(ev, h2.events.DataReceived):
                STATS["body_bytes"] += ev.flow_controlled_length
            elif isinstance(ev, h2.events.StreamReset):
                self.open.discard(ev.stream_id)
        if not self.dead:
            self.transport.write(self.conn.data_to_send())

    def answer(self, sid: int) -> None:
        self.conn.send_headers(sid, [(":status", "200"), ("content-length", str(len(BODY)))])
        self.conn.send_data(sid, BODY, end_stream=True)
        self.open.discard(sid)
        self.answered += 1
        STATS["good"] += 1

    def on_request(self, sid: int) -> None:
        mode = self.mode
        if mode == "zerowindow":
            STATS["faults"] += 1
            return
        if mode == "maxstreams" or self.answered < self.good and mode != "rst":
            self.answer(sid)
            return
        if mode == "rst":
            count = self.answered + self._resets
            if count % (self.good + 1) < self.good:
                self.answer(sid)
            else:
                self._resets += 1
                STATS["faults"] += 1
                self.conn.reset_stream(sid, error_code=2)
                self.open.discard(sid)
            return
        STATS["faults"] += 1
        self.dead = True
        self.transport.write(self.conn.data_to_send())
        if mode == "goaway":
            self.conn.close_connection(error_code=0, last_stream_id=sid - 2)
            self.transport.write(self.conn.data_to_send())
        elif mode == "badframe":
            self.transport.write(b"\x00\x00\x03\x06\x00\x00\x00\x00\x00abc")  # PING of length 3
        elif mode == "badhpack":
            block = b"\xff\xff\xff\xff\xff\xff\xff"  # an index far past both tables
            self.transport.write(len(block).to_bytes(3, "big") + b"\x01\x05" + sid.to_bytes(4, "big") + block)
        else:
            raise SystemExit(f"unknown mode {mode}")

    _resets = 0


async def main(mode: str, good: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: H2Fault(mode, good), "127.0.0.1", 0)
    print(f"listening on {server.sockets[0].getsockname()[1]}", flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 3))

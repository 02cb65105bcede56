"""A project-owned HTTP/1.1 server that holds every response during one fixed window of the
run: the reference for coordinated-omission tests. Responses are otherwise immediate.

python tests/servers/stall_server.py STALL_AFTER_S STALL_FOR_S  -> prints "listening on PORT"; the
clock starts at the first request. GET /__stats returns the number of responses served.
"""

from __future__ import annotations

import asyncio
import sys
import time

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nhello world\n"


class Stall(asyncio.Protocol):
    t0: float | None = None
    served = 0

    def __init__(self, after: float, length: float) -> None:
        self.after = after
        self.length = length
        self.buf = b""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while b"\r\n\r\n" in self.buf:
            head, _, self.buf = self.buf.partition(b"\r\n\r\n")
            now = time.monotonic()
            if head.startswith(b"GET /__stats"):
                body = str(Stall.served).encode()
                self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                continue
            if Stall.t0 is None:
                Stall.t0 = now
            start, end = Stall.t0 + self.after, Stall.t0 + self.after + self.length
            # Responses are sent in order per connection, so a held response holds the ones
            # behind it too, as a real stalled server would.
            delay = end - now if start <= now < end else 0.0
            asyncio.get_running_loop().call_later(delay, self._respond)

    def _respond(self) -> None:
        if not self.transport.is_closing():
            Stall.served += 1
            self.transport.write(RESPONSE)


async def main(after: float, length: float) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Stall(after, length), "127.0.0.1", 0)
    print(f"listening on {server.sockets[0].getsockname()[1]}", flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(float(sys.argv[1]), float(sys.argv[2])))

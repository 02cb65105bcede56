"""A TCP echo server: every byte read is written back on the same connection, in order.

python tests/servers/echo_server.py [HOST] -> prints "listening on HOST:PORT" (default host
127.0.0.1). The reference for the fault proxy's byte transparency (what comes back must be what
was sent) and the peer of the netem tests in a network namespace.
"""

from __future__ import annotations

import asyncio
import sys


class Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)

    def eof_received(self) -> bool:
        return False  # close once our writes are flushed: the client sees EOF after its bytes

    # Backpressure: stop reading while our writes are not taken, so memory stays bounded.
    def pause_writing(self) -> None:
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.transport.resume_reading()


async def main() -> None:
    loop = asyncio.get_running_loop()
    host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
    server = await loop.create_server(Echo, host, 0)
    print(f"listening on {host}:{server.sockets[0].getsockname()[1]}", flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())

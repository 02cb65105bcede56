"""A small service with a dependency: each HTTP/1.1 request it gets (keep-alive) is answered
with what GET / on the dependency returns, over one keep-alive connection per client
connection, opened at the first request. Prints "listening on HOST:PORT" first.

    python relay_server.py DEPENDENCY_HOST:PORT"""

from __future__ import annotations

import asyncio
import sys


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, dep: tuple[str, int]) -> None:
    up: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if length:
                await reader.readexactly(length)
            if up is None:
                up = await asyncio.open_connection(*dep)
            up[1].write(b"GET / HTTP/1.1\r\nHost: dependency\r\n\r\n")
            uphead = await up[0].readuntil(b"\r\n\r\n")
            n = 0
            for line in uphead.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    n = int(line.split(b":", 1)[1])
            body = await up[0].readexactly(n)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()
        if up is not None:
            up[1].close()


async def main() -> None:
    host, _, port = sys.argv[1].rpartition(":")
    dep = (host, int(port))
    server = await asyncio.start_server(lambda r, w: handle(r, w, dep), "127.0.0.1", 0)
    print(f"listening on 127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())

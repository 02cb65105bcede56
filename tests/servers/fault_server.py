"""A project-owned HTTP/1.1 server that misbehaves on purpose, for exact error accounting.

    python tests/servers/fault_server.py MODE [GOOD]

On every connection it answers GOOD (default 3) requests properly, then misbehaves once in the
way MODE says. It prints "listening on PORT"; GET /__stats (on a fresh connection) returns
JSON counters: connections, good responses, faults.

Modes: rst (SO_LINGER 0 reset), close (FIN instead of an answer), midclose (half a response,
then FIN), short (Content-Length larger than the body, then FIN), garbage (bytes that are not
HTTP), nocrlf (a status line that never ends), badchunk (malformed chunked body), hugeheaders
(a 100 KiB header), slow (answers after 2 s), trickle (one byte every 50 ms).
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import sys

GOOD = b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nhello world\n"
STATS = {"connections": 0, "good": 0, "faults": 0}


class Fault(asyncio.Protocol):
    def __init__(self, mode: str, good: int) -> None:
        self.mode = mode
        self.good = good
        self.buf = b""
        self.answered = 0
        self.done = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while b"\r\n\r\n" in self.buf and not self.done:
            head, _, self.buf = self.buf.partition(b"\r\n\r\n")
            if head.startswith(b"GET /__stats"):
                body = json.dumps(STATS).encode()
                self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                continue
            if self.answered == 0:
                STATS["connections"] += 1
            if self.answered < self.good:
                self.answered += 1
                STATS["good"] += 1
                self.transport.write(GOOD)
                continue
            self.done = True
            STATS["faults"] += 1
            self.misbehave()

    def misbehave(self) -> None:
        t, mode = self.transport, self.mode
        if mode == "rst":
            sock = t.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            t.abort()
        elif mode == "close":
            t.close()
        elif mode == "midclose":
            t.write(GOOD[:30])
            t.close()
        elif mode == "short":
            t.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this")
            t.close()
        elif mode == "garbage":
            t.write(b"\x00\xffSSH-2.0-OpenSSH\r\n\r\n" * 4)
        elif mode == "nocrlf":
            t.write(b"HTTP/1.1 200 " + b"x" * 70_000)
        elif mode == "badchunk":
            t.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n")
        elif mode == "hugeheaders":
            t.write(b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 100_000 + b"\r\nContent-Length: 0\r\n\r\n")
        elif mode == "slow":
            asyncio.get_running_loop().call_later(2.0, lambda: t.is_closing() or t.write(GOOD))
        elif mode == "trickle":
            asyncio.get_running_loop().create_task(self.trickle())
        else:
            raise SystemExit(f"unknown mode {mode}")

    async def trickle(self) -> None:
        for b in GOOD:
            if self.transport.is_closing():
                return
            self.transport.write(bytes([b]))
            await asyncio.sleep(0.05)


async def main(mode: str, good: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Fault(mode, good), "127.0.0.1", 0)
    print(f"listening on {server.sockets[0].getsockname()[1]}", flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 3))

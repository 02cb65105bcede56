"""A project-owned HTTP/1.1 server whose slowness is switched by signals: the known truth for
recovery-time tests. SIGUSR1 starts the fault (every response is held DELAY_S); SIGUSR2 says
the fault ended, and the server stays slow for exactly LINGER_S more, as a service that
needs time to drain a queue or warm a cache would. Otherwise responses are immediate.

python tests/servers/slow_server.py DELAY_S LINGER_S  -> prints "listening on PORT".
GET /__stats returns JSON: served, and the monotonic times the signals arrived and the server
became fast again.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nhello world\n"


class State:
    slow_until = 0.0  # monotonic; float("inf") while the fault is on
    served = 0
    events: dict[str, float] = {}


class Slow(asyncio.Protocol):
    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.buf = b""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while b"\r\n\r\n" in self.buf:
            head, _, self.buf = self.buf.partition(b"\r\n\r\n")
            if head.startswith(b"GET /__stats"):
                body = json.dumps({"served": State.served, **State.events}).encode()
                self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                continue
            # Judged when the request arrives: a request that came in while slow is slow.
            delay = self.delay if time.monotonic() < State.slow_until else 0.0
            if delay:
                asyncio.get_running_loop().call_later(delay, self._respond)
            else:
                self._respond()

    def _respond(self) -> None:
        if not self.transport.is_closing():
            State.served += 1
            self.transport.write(RESPONSE)


def main() -> None:
    delay, linger = float(sys.argv[1]), float(sys.argv[2])
    loop = asyncio.new_event_loop()

    def fault_on() -> None:
        State.events["fault_on"] = time.monotonic()
        State.slow_until = float("inf")

    def fault_off() -> None:
        now = time.monotonic()
        State.events["fault_off"] = now
        State.events["fast_again"] = now + linger
        State.slow_until = now + linger

    loop.add_signal_handler(signal.SIGUSR1, fault_on)
    loop.add_signal_handler(signal.SIGUSR2, fault_off)
    server = loop.run_until_complete(loop.create_server(lambda: Slow(delay), "127.0.0.1", 0))
    print(f"listening on {server.sockets[0].getsockname()[1]}", flush=True)
    loop.run_forever()


if __name__ == "__main__":
    main()

"""A project-owned gRPC server on grpcio (the reference implementation's Python binding), for
exact call accounting.

    python tests/servers/grpc_server.py [FAIL_EVERY]

test.Echo/Unary answers with the request message; every FAIL_EVERY-th call (0: never) fails
with UNAVAILABLE instead. test.Echo/Stream is server-streaming: a request b"N,GAP_MS" gets N
messages, the first GAP_MS after the call arrived and then one every GAP_MS.
test.Echo/Stats returns the counters as JSON. Prints "listening on
PORT" (127.0.0.1, h2c).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from concurrent import futures

import grpc

LOCK = threading.Lock()
STATS = {"calls": 0, "ok": 0, "unavailable": 0, "bytes": 0, "stream_calls": 0, "stream_messages": 0}


def main(fail_every: int) -> None:
    def unary(request: bytes, context: grpc.ServicerContext) -> bytes:
        with LOCK:
            STATS["calls"] += 1
            STATS["bytes"] += len(request)
            fail = fail_every > 0 and STATS["calls"] % fail_every == 0
            STATS["unavailable" if fail else "ok"] += 1
        if fail:
            context.abort(grpc.StatusCode.UNAVAILABLE, "failing on purpose")
        return request

    def stream(request: bytes, context: grpc.ServicerContext):
        n, gap_ms = (int(x) for x in request.split(b","))
        with LOCK:
            STATS["stream_calls"] += 1
        t0 = time.monotonic()
        for i in range(n):
            # On an absolute schedule, never early: message i at (i + 1) * gap.
            due = t0 + (i + 1) * gap_ms / 1000
            while (left := due - time.monotonic()) > 0:
                time.sleep(left)
            with LOCK:
                STATS["stream_messages"] += 1
            yield b"message %d" % i

    def stats(request: bytes, context: grpc.ServicerContext) -> bytes:
        with LOCK:
            return json.dumps(STATS).encode()

    handler = grpc.method_handlers_generic_handler("test.Echo", {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "Stats": grpc.unary_unary_rpc_method_handler(stats),
        "Stream": grpc.unary_stream_rpc_method_handler(stream),
    })
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16),
                         options=[("grpc.max_concurrent_streams", 64)])
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(f"listening on {port}", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 0)

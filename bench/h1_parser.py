"""ns per response of the native HTTP/1.1 parser (H1ResponseParser.feed), on a few typical
responses, min of N runs. A measurement of the parser alone, not a test.

    python bench/h1_parser.py [--runs 15] [--reps 200000]
"""

from __future__ import annotations

import argparse

from fastload.native.testing import h1_parse_bench

RESPONSES = {
    # nginx's answer to the compare.py request
    "nginx 200": b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Mon, 30 Nov 2026 14:00:00 GMT\r\n"
                 b"Content-Type: text/plain\r\nContent-Length: 12\r\nConnection: keep-alive\r\n\r\n"
                 b"hello world\n",
    "chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"
               b"5\r\nhello\r\n7\r\n world!\r\n0\r\n\r\n",
    "sse": b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: 24\r\n\r\n"
           b"data: a\n\ndata: b\n\ndata:\n\n",
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--reps", type=int, default=200_000)
    args = ap.parse_args()
    for name, raw in RESPONSES.items():
        best = min(h1_parse_bench(raw, args.reps) for _ in range(args.runs))
        print(f"{name:10} {best:7.1f} ns/response (min of {args.runs} x {args.reps})")


if __name__ == "__main__":
    main()

"""Per-request CPU of the native HTTP/1.1 session with one request, a weighted scenario, and
sampled response checks, without a network: a fake transport swallows the writes and canned
responses are fed back, so only the session's own work is timed (no kernel, no server noise).

    PYTHONPATH=src python bench/scenario_overhead.py [--requests 2000000] [--reps 5]

Not a test: prints ns/request (median of the repetitions) per configuration.
"""

from __future__ import annotations

import argparse
import statistics
import time

from fastload import native
from fastload.workload.checks import CheckRunner, from_flags

RESPONSE = b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\nhello world\n"
REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: fastload\r\nAccept: */*\r\n\r\n"


class Transport:
    def write(self, data: bytes) -> None:
        pass

    def abort(self) -> None:
        pass


class Engine:
    def on_connected(self, session) -> None:
        pass

    def on_lost(self, session, exc) -> None:
        pass


def mix(n_variants: int, sample: float) -> native.RequestMix:
    entries = [REQUEST.replace(b"GET / ", f"GET /v{i} ".encode()) for i in range(n_variants)]
    m = native.RequestMix(entries, list(range(n_variants)), [float(i + 1) for i in range(n_variants)], 1)
    if sample > 0:
        m.sample_p = sample
        m.checker = CheckRunner([from_flags("200", ["hello"], (), (), None)] * n_variants)
    return m


def time_session(n: int, request_mix: native.RequestMix | None) -> float:
    stats = native.WorkerStats()
    stats.record_from_ns = 0
    stats.running = True
    stats.mix = request_mix
    s = native.H1Session(stats, Engine(), REQUEST, 1)
    s.connection_made(Transport())
    s.fill()
    t0 = time.perf_counter_ns()
    for _ in range(n):
        s.data_received(RESPONSE)  # completes the request in flight, then fill() sends the next
    elapsed = time.perf_counter_ns() - t0
    assert stats.requests == n, stats.requests
    return elapsed / n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=2_000_000)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    configs = {
        "one request": lambda: None,
        "scenario, 3 variants": lambda: mix(3, 0.0),
        "scenario, 50 variants": lambda: mix(50, 0.0),
        "3 variants + checks 1%": lambda: mix(3, 0.01),
        "3 variants + checks 100%": lambda: mix(3, 1.0),
    }
    results: dict[str, list[float]] = {k: [] for k in configs}
    for _ in range(args.reps):
        for name, make in configs.items():  # alternating, so that machine noise is shared
            n = args.requests if "100%" not in name else args.requests // 10
            results[name].append(time_session(n, make()))
    base = statistics.median(results["one request"])
    for name, xs in results.items():
        med = statistics.median(xs)
        print(f"{name:<26} {med:8.1f} ns/request  ({med / base:.2f}x)")


if __name__ == "__main__":
    main()

"""Latency agreement with wrk against a server with a known delay (not a test; ~30 s).

Starts `fastload serve --delay D` pinned to CPU 0, then alternately runs
`wrk --latency` and `fastload run` pinned to CPU 1 with the same connections and duration,
and prints each tool's p50/p99, the p50 difference and whether any latency fell below D.

    python3 bench/latency.py [--delay 5ms] [--connections 8] [--duration 5] [--reps 3]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys

from servers import Server

_UNITS_US = {"us": 1.0, "ms": 1_000.0, "s": 1_000_000.0}


def wrk_percentiles(out: str) -> dict[str, float]:
    got = {}
    for pct, value, unit in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M):
        got[f"p{pct}"] = float(value) * _UNITS_US[unit]
    return got


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--delay", default="5ms")
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args(argv)
    delay_us = float(args.delay.rstrip("ms")) * 1000 if args.delay.endswith("ms") else float(args.delay) * 1e6
    pin = ["taskset", "-c", "1"]
    rows = {"wrk": [], "fastload": []}
    min_fastload = []
    with Server("fastload", "--delay", args.delay, cpu=0) as server:
        for _ in range(args.reps):
            out = subprocess.run(pin + ["wrk", "-t1", f"-c{args.connections}", f"-d{args.duration}s",
                                        "--latency", server.url], capture_output=True, text=True,
                                 check=True).stdout
            rows["wrk"].append(wrk_percentiles(out))
            out = subprocess.run(pin + [sys.executable, "-m", "fastload", "run", server.url,
                                        "-c", str(args.connections), "-w", "1", "--cpus", "1",
                                        "-d", f"{args.duration}s", "--json", "-", "--quiet"],
                                 capture_output=True, text=True, check=True).stdout
            lat = json.loads(out)["latency_us"]
            rows["fastload"].append({"p50": lat["p50"], "p99": lat["p99"]})
            min_fastload.append(lat["min"])
    med = {tool: {k: statistics.median(r[k] for r in runs) for k in ("p50", "p99")}
           for tool, runs in rows.items()}
    print(f"server delay {delay_us:.0f} us, {args.connections} connections, {args.duration} s x {args.reps}")
    for tool in ("wrk", "fastload"):
        print(f"  {tool:<9} p50 {med[tool]['p50']:9.1f} us   p99 {med[tool]['p99']:9.1f} us")
    diff = med["fastload"]["p50"] - med["wrk"]["p50"]
    print(f"  p50 difference fastload - wrk: {diff:+.1f} us (target: within 300 us)")
    print(f"  fastload min latency over all runs: {min(min_fastload):.1f} us "
          f"({'never' if min(min_fastload) >= delay_us else 'SOMETIMES'} below the delay)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

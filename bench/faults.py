"""What an idle fault mechanism costs (not a test; ~3 min with the defaults).

- **proxy**: nginx (1 worker, no access log) on CPU 0, `fastload run` on CPU 1, and the fault
  proxy (`fastload.faults.proxy.ProxyProcess`, no window) pinned to each CPU of --proxy-cpus
  (default 0,1: this machine has 2 cores, so it shares one with the server or with the client).
  Direct and through each proxy, alternating, for h1 (-c 64) and h2c (-c 8 -m 32).
- **netem** (root only): the same nginx inside a network namespace behind a veth pair (addresses
  from 198.18.0.0/15), reached directly, and with fastload's tc tree installed on the veth (htb
  root, u32 filter to the server, idle leaf): what a run pays between its windows. A namespace
  keeps the tree off the loopback device that other processes on the machine use.

Medians of --reps alternating runs; ratios are through / direct.

    python3 bench/faults.py [--duration 5] [--reps 3] [--proxy-cpus 0,1] [--only proxy|netem]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from urllib.parse import urlsplit

from fastload.faults.netem import Netem
from fastload.faults.proxy import ProxyProcess
from fastload.faults.spec import ProxySpec
from servers import Server, checkout_env

SCENARIOS = {"h1": ("nginx", []), "h2c": ("nginx-h2c", ["--h2c", "-m", "32"])}
CONNECTIONS = {"h1": "64", "h2c": "8"}


def load(url: str, scenario: str, duration: int) -> dict:
    """One `fastload run` on CPU 1: requests/s, p50 and p99 in µs."""
    extra = SCENARIOS[scenario][1]
    out = subprocess.run(["taskset", "-c", "1", sys.executable, "-m", "fastload", "run", url,
                          "-c", CONNECTIONS[scenario], *extra, "-w", "1", "--cpus", "1",
                          "-d", f"{duration}s", "--warmup", "1s", "--json", "-", "--quiet"],
                         capture_output=True, text=True, check=True, env=checkout_env()).stdout
    doc = json.loads(out)
    assert doc["errors"]["total"] == 0, doc["errors"]
    return {"rps": doc["rps"], "p50": doc["latency_us"]["p50"], "p99": doc["latency_us"]["p99"]}


def median_rows(runs: list[dict]) -> dict:
    return {k: statistics.median(r[k] for r in runs) for k in ("rps", "p50", "p99")}


def bench_proxy(scenario: str, args: argparse.Namespace) -> dict[str, dict]:
    kind = SCENARIOS[scenario][0]
    runs: dict[str, list[dict]] = {"direct": []}
    with Server(kind, "--no-access-log", cpu=0) as server, ExitStack() as stack:
        u = urlsplit(server.url)
        spec = ProxySpec("bench", "127.0.0.1", 0, u.hostname or "127.0.0.1", u.port or 80)
        via = {}
        for cpu in args.proxy_cpus:
            proxy = stack.enter_context(ProxyProcess([(spec, [])], cpus=[cpu]))
            host, port = proxy.listen["bench"]
            via[f"proxy on CPU {cpu}"] = f"http://{host}:{port}/"
            runs[f"proxy on CPU {cpu}"] = []
        for _ in range(args.reps):
            runs["direct"].append(load(server.url, scenario, args.duration))
            for path, url in via.items():
                runs[path].append(load(url, scenario, args.duration))
    return {k: median_rows(v) for k, v in runs.items()}


@contextmanager
def namespace() -> Iterator[tuple[str, str]]:
    """(namespace, the server's address in it), behind a veth pair; removed afterwards."""
    n = os.getpid() % 250 + 1
    ns, a, b = f"fastload-b{n}", f"flb{n}a", f"flb{n}b"
    here, there = f"198.19.{n}.1", f"198.19.{n}.2"
    steps = [["netns", "add", ns], ["link", "add", a, "type", "veth", "peer", "name", b, "netns", ns],
             ["addr", "add", f"{here}/30", "dev", a], ["link", "set", a, "up"],
             ["-n", ns, "addr", "add", f"{there}/30", "dev", b], ["-n", ns, "link", "set", b, "up"],
             ["-n", ns, "link", "set", "lo", "up"]]
    try:
        for step in steps:
            subprocess.run(["ip", *step], check=True, capture_output=True)
        yield ns, there
    finally:
        subprocess.run(["ip", "link", "del", a], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def bench_netem(scenario: str, args: argparse.Namespace) -> dict[str, dict]:
    kind = SCENARIOS[scenario][0]
    runs: dict[str, list[dict]] = {"veth": [], "veth+tc": []}
    with namespace() as (ns, ip), Server(kind, "--no-access-log", "--host", ip, cpu=0,
                                         wrap=("ip", "netns", "exec", ns)) as server:
        port = urlsplit(server.url).port or 80
        for _ in range(args.reps):
            runs["veth"].append(load(server.url, scenario, args.duration))
            with Netem([], ip, port):  # the tree, its filter matching every request packet
                runs["veth+tc"].append(load(server.url, scenario, args.duration))
    return {k: median_rows(v) for k, v in runs.items()}


def table(title: str, results: dict[str, dict[str, dict]], base: str) -> None:
    print(f"\n{title}\n")
    print("| scenario | path | requests/s | p50 µs | p99 µs | rps ratio | p50 ratio | p99 ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for scenario, paths in results.items():
        b = paths[base]
        for path, r in paths.items():
            ratios = ("", "", "") if path == base else (
                f"**{r['rps'] / b['rps']:.2f}**", f"{r['p50'] / b['p50']:.2f}",
                f"{r['p99'] / b['p99']:.2f}")
            print(f"| {scenario} | {path} | {r['rps']:,.0f} | {r['p50']:,.0f} | {r['p99']:,.0f} |"
                  f" {' | '.join(ratios)} |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--proxy-cpus", type=lambda t: [int(c) for c in t.split(",")],
                    default=[0, 1])
    ap.add_argument("--only", choices=("proxy", "netem"))
    args = ap.parse_args(argv)
    if args.only != "netem":
        results = {s: bench_proxy(s, args) for s in SCENARIOS}
        table(f"Idle fault proxy vs direct: {args.duration} s runs, medians of {args.reps}",
              results, "direct")
    if args.only != "proxy":
        if os.geteuid() != 0:
            print("\nnetem: skipped (needs root)")
        else:
            results = {s: bench_netem(s, args) for s in SCENARIOS}
            table(f"Idle netem tree on a veth vs the bare veth: {args.duration} s runs,"
                  f" medians of {args.reps}", results, "veth")
    return 0


if __name__ == "__main__":
    sys.exit(main())

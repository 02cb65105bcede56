#!/usr/bin/env python3
"""What `--cluster` costs: the same HTTP/1.1 run (nginx on the server CPU, 64 connections, one
worker on the client CPU) plain, with `--cluster local:1`, and through a `dask scheduler` with
one `fastload agent` (tcp://), alternating, medians of --reps.

Everything of the client side is pinned to the client CPU: the coordinator, and for local:1
the LocalCluster's scheduler and agent, which are its children (their CPU counts in
"CPU µs/req"). For tcp:// the scheduler and agent are separate processes (also on the client
CPU); the coordinator's own CPU, from the result's cluster.coordinator_cpu_s, is reported
per host per minute: the figure that grows with the number of hosts.

    python bench/cluster_overhead.py --reps 3 --duration 10
"""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from compare import Run, measure, median, parse_fastload

from servers import Server, have


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd: list[str], wait_for: str, log: Path) -> subprocess.Popen:
    out = open(log, "wb")
    # The installed fastload, like the runs measured (the checkout's src/ may have no
    # compiled extension).
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while wait_for not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{cmd[0]}: did not print {wait_for!r}:\n{log.read_text()[-2000:]}")
        time.sleep(0.1)
    return proc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--client-cpu", type=int, default=1)
    ap.add_argument("--fastload", default="fastload")
    ap.add_argument("--json", metavar="OUT")
    args = ap.parse_args(argv)
    if not (have("nginx") and have("taskset")):
        print("needs nginx and taskset", file=sys.stderr)
        return 2
    fl = shlex.split(args.fastload)
    pin = ["taskset", "-c", str(args.client_cpu)]
    common = ["-c", "64", "-w", "1", "--cpus", str(args.client_cpu), "-d", f"{args.duration}s",
              "--json", "-", "--quiet"]
    port = free_port()
    scratch = Path("/tmp") / f"fastload-bench-cluster-{port}"
    scratch.mkdir(exist_ok=True)
    sched = start([*pin, sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                   "--port", str(port), "--no-dashboard", "--no-show"], "Scheduler at:",
                  scratch / "scheduler.log")
    agent = start([*pin, *fl, "agent", f"tcp://127.0.0.1:{port}", "--name", "bench"],
                  "fastload agent bench: joined", scratch / "agent.log")
    coordinator: list[float] = []
    runs: list[Run] = []

    def parse_cluster(out: str) -> tuple[int, float]:
        doc = json.loads(out)
        if "cluster" in doc:
            coordinator.append(doc["cluster"]["coordinator_cpu_s_per_host_per_min"])
        return parse_fastload(out)

    try:
        with Server("nginx", "--no-access-log", cpu=args.server_cpu) as server:
            modes = [("plain", [*pin, *fl, "run", server.url, *common], parse_fastload),
                     ("local:1", [*pin, *fl, "run", server.url, "--cluster", "local:1", *common],
                      parse_fastload),
                     ("tcp", [*pin, *fl, "run", server.url, "--cluster", f"tcp://127.0.0.1:{port}",
                              *common], parse_cluster)]
            measure("h1", "warmup", -1, [*pin, *fl, "run", server.url, "-d", "1s", "--quiet"],
                    lambda _: (0, 0.0), 60)
            for rep in range(args.reps):
                for mode, cmd, parse in (modes if rep % 2 == 0 else modes[::-1]):
                    r = measure("h1", mode, rep, cmd, parse, args.duration * 3 + 60)
                    runs.append(r)
                    print(f"  rep {rep} {mode:<8} " + (f"{r.rps:>10,.0f} req/s {r.cpu_us_per_req:7.2f} µs CPU/req"
                                                       if r.ok else f"FAILED {r.error}"), flush=True)
    finally:
        for p in (agent, sched):
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=20)
    plain_rps = median([r for r in runs if r.tool == "plain"], "rps")
    print(f"\n{'mode':<9}{'median req/s':>14}{'CPU µs/req':>12}{'rps vs plain':>14}")
    rows = []
    for mode in ("plain", "local:1", "tcp"):
        mine = [r for r in runs if r.tool == mode]
        rps, cpu = median(mine, "rps"), median(mine, "cpu_us_per_req")
        rows.append({"mode": mode, "rps": rps, "cpu_us": cpu, "rps_ratio": rps / plain_rps})
        note = "  (scheduler and agent are other processes: not in this CPU)" if mode == "tcp" else ""
        print(f"{mode:<9}{rps:>14,.0f}{cpu:>12.2f}{rps / plain_rps:>14.2f}{note}")
    if coordinator:
        coordinator.sort()
        print(f"coordinator CPU (tcp://, one agent): median {coordinator[len(coordinator) // 2]:.3f} s "
              f"per host per minute ({coordinator[len(coordinator) // 2] / 60 * 100:.2f}% of a core)")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "coordinator_cpu_s_per_host_per_min":
                                               coordinator, "runs": [r.__dict__ for r in runs]},
                                              indent=2))
    return 0 if all(r.ok for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())

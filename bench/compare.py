#!/usr/bin/env python3
"""Compare fastload with wrk (HTTP/1.1) and h2load (h2c) on the same server and CPUs, in
cleartext and over TLS (nginx https://: wrk for HTTP/1.1, h2load for h2 by ALPN; fastload on
its native TLS path and, as `fastload-py`, on uvloop's TLS with --tls-path python). Every
scenario also runs fastload with --coalesce 100us, as `fastload-co`.

The server is pinned to one CPU and every client to another, so requests/s and
client CPU per request compare the clients, not the scheduler. Repetitions
alternate the tool order to spread out drift (thermal, caches, background noise).

    python bench/compare.py                # all four scenarios, 3 reps, ~3-4 min
    python bench/compare.py --only h2 --reps 5 --json out.json
    python bench/compare.py --only tls-h1 --only tls-h2
    python bench/compare.py --fastload "python -m fastload"
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import resource
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, MutableMapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from servers import Server, have


@dataclass
class Run:
    scenario: str
    tool: str
    rep: int
    cmd: list[str]
    ok: bool
    requests: int = 0
    rps: float = 0.0
    cpu_s: float = 0.0
    wall_s: float = 0.0
    error: str = ""
    # fastload only: the measuring workers' own CPU (their rusage, in the JSON), without the
    # interpreter start, imports, pre-flight and parent that cpu_s also holds.
    worker_cpu_s: float = float("nan")
    p50_ms: float = float("nan")  # fastload only: median latency, to show what --coalesce costs
    # The share of the client CPU's time that the hypervisor gave to other guests during the
    # run (/proc/stat steal): where it is high, both tools' rates drift with the neighbours'.
    steal: float = float("nan")

    @property
    def cpu_us_per_req(self) -> float:
        return self.cpu_s / self.requests * 1e6 if self.requests else float("nan")

    @property
    def worker_us_per_req(self) -> float:
        return self.worker_cpu_s / self.requests * 1e6 if self.requests else float("nan")


@dataclass
class Scenario:
    name: str
    start_server: Callable[[int], Server]
    peer_tool: str
    peer_cmd: Callable[[str, int], list[str]]
    parse_peer: Callable[[str], tuple[int, float]]
    fastload_args: list[str]
    # More fastload runs in the same rotation: tool name -> extra arguments.
    variants: dict[str, list[str]] = field(default_factory=dict)


# --------------------------------------------------------------------------- output parsers


def parse_wrk(out: str) -> tuple[int, float]:
    """-> (completed requests, requests/s) from wrk's summary."""
    total = re.search(r"(\d+) requests in", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not (total and rps):
        raise ValueError(f"unrecognised wrk output:\n{out}")
    return int(total.group(1)), float(rps.group(1))


def parse_h2load(out: str) -> tuple[int, float]:
    """-> (succeeded requests, requests/s) from h2load's summary."""
    rps = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    reqs = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded", out)
    if not (rps and reqs):
        raise ValueError(f"unrecognised h2load output:\n{out}")
    return int(reqs.group(4)), float(rps.group(1))


def parse_fastload(out: str) -> tuple[int, float]:
    doc = json.loads(out)
    return int(doc["requests"]), float(doc["rps"])


# --------------------------------------------------------------------------- measurement


def cpu_times(cpu: int, stat: str = "/proc/stat") -> list[int] | None:
    """One CPU's time counters (user nice system idle iowait irq softirq steal), in ticks."""
    try:
        with open(stat) as f:
            for line in f:
                if line.startswith(f"cpu{cpu} "):
                    return [int(x) for x in line.split()[1:9]]
    except (OSError, ValueError):
        pass
    return None


def steal_share(before: list[int] | None, after: list[int] | None) -> float:
    """The part of a CPU's time between two cpu_times() readings that was stolen."""
    if before is None or after is None or len(before) < 8 or len(after) < 8:
        return float("nan")
    delta = [b - a for a, b in zip(before[:8], after[:8], strict=True)]
    return delta[7] / sum(delta) if sum(delta) > 0 else float("nan")


def default_fastload(executable: str = sys.executable) -> list[str]:
    """fastload's console script beside the interpreter running this (a venv's bin, or a pyenv
    version's), not the first `fastload` on PATH: that may be a version manager's shim, a shell
    script whose own start-up (0.07 s of CPU per run here, pyenv) would count as fastload's."""
    beside = Path(executable).parent / "fastload"
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)]
    return ["fastload"]


def allow_bytecode_cache(environ: MutableMapping[str, str]) -> bool:
    """Drops PYTHONDONTWRITEBYTECODE from the environment the clients inherit; True if it was set.

    A Python program compiles every module that has no cached bytecode each time it starts, and
    with that variable set (some shells and CI images set it) never writes the cache: fastload
    from an editable install then spends 0.11 s more CPU on each run here (0.36 s against 0.25
    for `run -n 1`), which a 5 s run counts against it. With the variable gone, the unrecorded
    warm-up run writes the cache before the first measured run."""
    return environ.pop("PYTHONDONTWRITEBYTECODE", None) is not None


def children_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_client(
    cmd: list[str], timeout_s: float
) -> tuple[subprocess.CompletedProcess[str], float, float]:
    """Run one client to completion; its CPU (whole process tree, once reaped) is the
    RUSAGE_CHILDREN delta, which is why clients never run concurrently."""
    cpu0, t0 = children_cpu_s(), time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    return proc, children_cpu_s() - cpu0, time.perf_counter() - t0


def measure(
    scenario: str,
    tool: str,
    rep: int,
    cmd: list[str],
    parse: Callable[[str], tuple[int, float]],
    timeout_s: float,
    client_cpu: int = 1,
) -> Run:
    run = Run(scenario, tool, rep, cmd, ok=False)
    before = cpu_times(client_cpu)
    try:
        proc, run.cpu_s, run.wall_s = run_client(cmd, timeout_s)
        run.steal = steal_share(before, cpu_times(client_cpu))
    except subprocess.TimeoutExpired:
        run.error = f"timed out after {timeout_s}s"
        return run
    if proc.returncode != 0:
        run.error = f"exit {proc.returncode}: {(proc.stderr or proc.stdout).strip()[-500:]}"
        return run
    try:
        run.requests, run.rps = parse(proc.stdout)
        if parse is parse_fastload:
            doc = json.loads(proc.stdout)
            run.worker_cpu_s = sum(w["cpu_user_s"] + w["cpu_sys_s"] for w in doc["workers"])
            run.p50_ms = doc["latency_us"]["p50"] / 1000
    except (ValueError, KeyError, json.JSONDecodeError) as e:
        run.error = f"parse error: {e}"
        return run
    run.ok = True
    return run


def fastload_available(base: list[str]) -> str | None:
    """None if `fastload run` exists, else a one-line reason."""
    try:
        proc = subprocess.run([*base, "run", "--help"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return str(e)
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines() or ["no output"]
        return f"`{shlex.join([*base, 'run', '--help'])}` exited {proc.returncode}: {lines[-1]}"
    return None


def cpu_idle(base: list[str]) -> dict | None:
    """How this host's idle CPUs wait, from `fastload info --json` (None if it cannot say). Where
    they halt at once (a KVM guest's haltpoll driver with polling set to 0), every time a server
    wakes a client that sleeps between responses costs the server a VM exit: the ratios then
    depend on how often each client sleeps, not only on its CPU (bench/README.md)."""
    try:
        proc = subprocess.run([*base, "info", "--json"], capture_output=True, text=True, timeout=60)
        return json.loads(proc.stdout)["cpu_idle"] if proc.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, ValueError, KeyError):
        return None


def idle_note(idle: dict | None) -> str:
    if idle is None or idle.get("driver") is None:
        return "CPU idle: unknown"
    text = f"CPU idle: {idle['driver']} driver, {idle.get('governor')} governor"
    if idle.get("halt_poll_ns") is None:
        return text
    if idle["halt_poll_ns"] == 0:
        return (text + "; halts without polling (guest_halt_poll_ns 0): each wake-up of a sleeping "
                "client costs the server a VM exit (bench/README.md, 'Idle CPUs that halt at once')")
    return text + f"; polls up to {idle['halt_poll_ns'] / 1e3:g}us before halting"


# --------------------------------------------------------------------------- scenarios


# The same run reading in batches: one wake-up per 100 µs at most while responses flow.
COALESCE = {"fastload-co": ["--coalesce", "100us"]}


def scenarios(duration_s: int, server_cpu: int) -> dict[str, Scenario]:
    d = str(duration_s)
    return {
        "h1": Scenario(
            name="h1 keep-alive, 64 conns, nginx 1 worker",
            start_server=lambda cpu: Server("nginx", "--no-access-log", cpu=cpu),
            peer_tool="wrk",
            peer_cmd=lambda url, secs: ["wrk", "-t1", "-c64", f"-d{secs}s", url],
            parse_peer=parse_wrk,
            fastload_args=["-c", "64", "-w", "1", "--cpus", "1", "-d", f"{d}s", "--json", "-"],
            variants=COALESCE,
        ),
        "h2": Scenario(
            name="h2c, 8 conns x 32 streams, h2o 1 thread",
            start_server=lambda cpu: Server("h2o", "--no-access-log", cpu=cpu),
            peer_tool="h2load",
            peer_cmd=lambda url, secs: ["h2load", "-c8", "-m32", "-t1", "-D", str(secs), url],
            parse_peer=parse_h2load,
            fastload_args=[
                "--h2c",
                "-c",
                "8",
                "-m",
                "32",
                "-w",
                "1",
                "--cpus",
                "1",
                "-d",
                f"{d}s",
                "--json",
                "-",
            ],
            variants=COALESCE,
        ),
        "tls-h1": Scenario(
            name="https HTTP/1.1 keep-alive, 64 conns, nginx 1 worker",
            start_server=lambda cpu: Server("nginx-tls", "--no-access-log", cpu=cpu),
            peer_tool="wrk",
            peer_cmd=lambda url, secs: ["wrk", "-t1", "-c64", f"-d{secs}s", url],
            parse_peer=parse_wrk,
            fastload_args=["--protocol", "h1", "-k", "-c", "64", "-w", "1", "--cpus", "1",
                           "-d", f"{d}s", "--json", "-"],
            variants={"fastload-py": ["--tls-path", "python"], **COALESCE},
        ),
        "tls-h2": Scenario(
            name="https h2 (ALPN), 8 conns x 32 streams, nginx 1 worker",
            start_server=lambda cpu: Server("nginx-tls", "--no-access-log", cpu=cpu),
            peer_tool="h2load",
            peer_cmd=lambda url, secs: ["h2load", "-c8", "-m32", "-t1", "-D", str(secs), url],
            parse_peer=parse_h2load,
            fastload_args=["--protocol", "h2", "-k", "-c", "8", "-m", "32", "-w", "1", "--cpus",
                           "1", "-d", f"{d}s", "--json", "-"],
            variants={"fastload-py": ["--tls-path", "python"], **COALESCE},
        ),
    }


def run_scenario(
    key: str, sc: Scenario, args: argparse.Namespace, fastload: list[str] | None
) -> list[Run]:
    pin = ["taskset", "-c", str(args.client_cpu)]
    timeout_s = args.duration * 3 + 30
    runs: list[Run] = []
    with sc.start_server(args.server_cpu) as server:
        url = server.url
        print(
            f"\n[{key}] {sc.name}: {url} (server CPU {args.server_cpu}, client CPU {args.client_cpu})"
        )
        fastload_cmd = (None if fastload is None
                        else [*pin, *fastload, "run", url, *sc.fastload_args])
        # Short unrecorded warm-up so the first measured run doesn't pay for cold caches.
        measure(key, "warmup", -1, [*pin, *sc.peer_cmd(url, 1)], sc.parse_peer, timeout_s,
                args.client_cpu)
        if fastload_cmd is not None:
            # The last -d wins: one second, enough to fill caches and write fastload's bytecode.
            measure(key, "warmup", -1, [*fastload_cmd, "-d", "1s"], parse_fastload, timeout_s,
                    args.client_cpu)
        tools: list[tuple[str, list[str], Callable[[str], tuple[int, float]]]] = [
            (sc.peer_tool, [*pin, *sc.peer_cmd(url, args.duration)], sc.parse_peer)
        ]
        if fastload_cmd is not None:
            tools.append(("fastload", fastload_cmd, parse_fastload))
            for tool, extra in sc.variants.items():
                tools.append((tool, [*fastload_cmd, *extra], parse_fastload))
        for rep in range(args.reps):
            order = tools if rep % 2 == 0 else tools[::-1]
            for tool, cmd, parse in order:
                r = measure(key, tool, rep, cmd, parse, timeout_s, args.client_cpu)
                status = (
                    f"{r.rps:>12,.0f} req/s  {r.cpu_us_per_req:7.2f} µs CPU/req"
                    if r.ok
                    else f"FAILED: {r.error}"
                )
                if r.steal >= 0.005:
                    status += f"  ({r.steal:.0%} stolen)"
                print(f"  rep {rep} {tool:<9} {status}", flush=True)
                runs.append(r)
    return runs


# --------------------------------------------------------------------------- report


def median(runs: list[Run], attr: str) -> float:
    vals = [getattr(r, attr) for r in runs if r.ok]
    return statistics.median(vals) if vals else float("nan")


def paired(fl: list[Run], peer: list[Run], attr: str) -> list[float]:
    """Each repetition's own ratio, its fastload run's attr over its peer run's (the peer's
    CPU µs/req for worker_us_per_req), lowest first. A repetition's two runs are minutes apart
    at most, so its ratio is less exposed to this machine's drift than a ratio of medians."""
    key = "cpu_us_per_req" if attr == "worker_us_per_req" else attr
    base = {r.rep: getattr(r, key) for r in peer if r.ok}
    return sorted(getattr(r, attr) / base[r.rep] for r in fl
                  if r.ok and base.get(r.rep) and getattr(r, attr) == getattr(r, attr))


def median_interval(vals: list[float], coverage: float = 0.9) -> tuple[float, float] | None:
    """A distribution-free interval for the median of what vals (sorted) were drawn from: the
    k-th lowest and k-th highest, k the largest for which the interval holds the median with
    probability >= coverage, 1 - 2 P(Binomial(n, 1/2) <= k - 1). None when even the lowest and
    highest are not enough (n < 5 at 0.9)."""
    n = len(vals)
    best = None
    for k in range(1, (n + 1) // 2 + 1):
        if 1 - 2 * sum(math.comb(n, i) for i in range(k)) / 2**n >= coverage:
            best = k
    return (vals[best - 1], vals[n - best]) if best is not None else None


def summarize(all_runs: list[Run], keys: list[str], peer_tools: dict[str, str]) -> list[dict]:
    rows = []
    for key in keys:
        peer = [r for r in all_runs if r.scenario == key and r.tool == peer_tools[key]]
        p_rps, p_cpu = median(peer, "rps"), median(peer, "cpu_us_per_req")
        rows.append({"scenario": key, "tool": peer_tools[key], "rps": p_rps, "cpu_us": p_cpu})
        tools = sorted({r.tool for r in all_runs if r.scenario == key and r.tool.startswith("fastload")})
        for tool in tools:
            fl = [r for r in all_runs if r.scenario == key and r.tool == tool]
            f_rps, f_cpu = median(fl, "rps"), median(fl, "cpu_us_per_req")
            row = {
                "scenario": key,
                "tool": tool,
                "rps": f_rps,
                "cpu_us": f_cpu,
                "worker_cpu_us": median(fl, "worker_us_per_req"),
                "p50_ms": median(fl, "p50_ms"),
                "rps_ratio": f_rps / p_rps if p_rps else float("nan"),
                "cpu_ratio": f_cpu / p_cpu if p_cpu else float("nan"),
            }
            # Paired per repetition: the median of the ratios and its 90% interval. The worker
            # ratio leaves out fastload's start-up (interpreter, imports, pre-flight), not the
            # peer's: the peer's whole process is the denominator.
            for name, attr in (("rps", "rps"), ("cpu", "cpu_us_per_req"),
                               ("worker", "worker_us_per_req")):
                pairs = paired(fl, peer, attr)
                row[f"{name}_ratio_per_rep"] = pairs
                row[f"{name}_ratio_rep_median"] = statistics.median(pairs) if pairs else float("nan")
                row[f"{name}_ratio_rep_interval"] = median_interval(pairs)
            rows.append(row)
    return rows


def print_summary(runs: list[Run], keys: list[str], peer_tools: dict[str, str]) -> list[dict]:
    """The tables, and the steal line where there was steal; returns summarize()'s rows."""
    rows = summarize(runs, keys, peer_tools)
    print_table(rows)
    note = steal_note(runs)
    if note:
        print(note)
    return rows


def steal_note(runs: list[Run]) -> str | None:
    vals = sorted(r.steal for r in runs if r.ok and r.steal == r.steal)
    if not vals or vals[-1] < 0.005:
        return None
    return (f"steal: the hypervisor took {statistics.median(vals):.1%} of the client CPU's time "
            f"(median of the runs; up to {vals[-1]:.1%}): rates drift with other guests' load, "
            "which the paired ratios absorb better than the medians")


def print_table(rows: list[dict]) -> None:
    print(
        f"\n{'scenario':<9}{'tool':<12}{'median req/s':>14}{'CPU µs/req':>12}"
        f"{'rps ratio':>11}{'CPU ratio':>11}{'worker µs/req':>15}{'p50 ms':>8}"
        f"{'CPU ratio per rep':>19}"
    )
    for r in rows:
        pairs = r.get("cpu_ratio_per_rep") or []
        spread = f"{pairs[0]:.2f}-{pairs[-1]:.2f}" if pairs else "-"
        ratios = (
            f"{r['rps_ratio']:>11.2f}{r['cpu_ratio']:>11.2f}{r['worker_cpu_us']:>15.2f}"
            f"{r['p50_ms']:>8.2f}{spread:>19}"
            if "rps_ratio" in r else f"{'':>22}"
        )
        print(f"{r['scenario']:<9}{r['tool']:<12}{r['rps']:>14,.0f}{r['cpu_us']:>12.2f}{ratios}")
    print("ratios are fastload / peer: rps ratio > 1 is faster, CPU ratio < 1 is cheaper; "
          "worker µs/req is fastload's steady state (its workers' own CPU, no start-up); "
          "fastload-co runs with --coalesce 100us; CPU ratio per rep: the lowest and highest of "
          "each repetition's own fastload/peer ratio")

    def cell(r: dict, name: str) -> str:
        iv = r.get(f"{name}_ratio_rep_interval")
        m = r.get(f"{name}_ratio_rep_median", float("nan"))
        return f"{m:.2f} [{iv[0]:.2f}-{iv[1]:.2f}]" if iv else f"{m:.2f} [n too small]"

    paired_rows = [r for r in rows if "rps_ratio_per_rep" in r]
    if not paired_rows:
        return
    print(f"\n{'scenario':<9}{'tool':<12}{'rps ratio':>20}{'CPU ratio':>20}{'worker CPU ratio':>20}")
    for r in paired_rows:
        print(f"{r['scenario']:<9}{r['tool']:<12}{cell(r, 'rps'):>20}{cell(r, 'cpu'):>20}"
              f"{cell(r, 'worker'):>20}")
    print("paired: the median of each repetition's own fastload/peer ratio, and in brackets an "
          "interval that holds the median of such ratios with >= 90% probability (order "
          "statistics, no distribution assumed); worker CPU ratio: fastload's workers' CPU over "
          "the peer's whole process")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5, help="seconds per client run")
    ap.add_argument("--only", choices=["h1", "h2", "tls-h1", "tls-h2"], action="append",
                    help="run only this scenario (repeatable)")
    ap.add_argument("--fastload", help="command prefix for `... run URL` (default: the fastload "
                    "console script beside this Python, else `fastload` on PATH)")
    ap.add_argument("--json", metavar="OUT", help="write all raw numbers here ('-' = stdout)")
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--client-cpu", type=int, default=1)
    ap.add_argument("--summarize", metavar="JSON",
                    help="print the tables of an earlier run's --json file again; runs nothing")
    args = ap.parse_args(argv)

    if args.summarize:
        doc = json.loads(Path(args.summarize).read_text())
        print(idle_note(doc.get("meta", {}).get("cpu_idle")))
        fields = {f.name for f in Run.__dataclass_fields__.values()}
        runs = [Run(**{k: v for k, v in r.items() if k in fields}) for r in doc["runs"]]
        keys = list(dict.fromkeys(r.scenario for r in runs))
        peers = {k: next(r.tool for r in runs if r.scenario == k and not r.tool.startswith("fastload"))
                 for k in keys}
        print_summary(runs, keys, peers)
        return 0

    fastload: list[str] | None = (shlex.split(args.fastload) if args.fastload
                                  else default_fastload())
    reason = fastload_available(fastload)
    if reason:
        print(f"NOTE: fastload not measured ({reason}); reporting peers only.")
        fastload = None
    scs = scenarios(args.duration, args.server_cpu)
    keys = args.only or list(scs)
    missing = {b for k in keys for b in ("taskset", scs[k].peer_tool) if not have(b)}
    missing |= {b for b, k in (("nginx", "h1"), ("h2o", "h2"), ("nginx", "tls-h1"), ("nginx", "tls-h2"))
                if k in keys and not have(b)}
    if missing:
        print(f"missing binaries: {', '.join(sorted(missing))}", file=sys.stderr)
        return 2

    idle = cpu_idle(fastload) if fastload is not None else None
    print(idle_note(idle))
    if fastload is not None:
        print(f"fastload: {shlex.join(fastload)}")
    if allow_bytecode_cache(os.environ):
        print("PYTHONDONTWRITEBYTECODE unset for the clients: fastload's start-up would otherwise "
              "compile its modules on every run")
    runs: list[Run] = []
    for key in keys:
        runs += run_scenario(key, scs[key], args, fastload)
    rows = print_summary(runs, keys, {k: scs[k].peer_tool for k in keys})
    if fastload is None:
        print(f"fastload: not measured ({reason})")

    if args.json:
        doc = {
            "meta": {
                "argv": sys.argv,
                "host": platform.node(),
                "cpus": os.cpu_count(),
                "kernel": platform.release(),
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "fastload_unavailable": reason,
                "cpu_idle": idle,
                "fastload_cmd": fastload,
            },
            "runs": [asdict(r) | {"cpu_us_per_req": r.cpu_us_per_req,
                                  "worker_us_per_req": r.worker_us_per_req} for r in runs],
            "summary": rows,
        }
        text = json.dumps(doc, indent=2)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text + "\n")
    return 0 if all(r.ok for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())

"""One host's share of a cluster run, in a child process of the agent: the normal pinned
engine (runtime.runner) with a start gate. A child process, not the Dask worker itself,
because the worker is threaded (forking it is unsafe) and may be daemonic (a daemonic process
may not start the workers' processes); the child is neither.

Messages over the socket the agent passes (multiprocessing Connection, pickles):
in:  ("plan", Plan), then ("go", unix_start) or ("stop",) at the gate, ("stop",) while running
out: ("ready", info), ("tick", worker, second, tick)..., then ("done", report) or
     ("error", exit_code, message)."""

from __future__ import annotations

import dataclasses
import signal
import sys
from multiprocessing.connection import Connection

from fastload.config.plan import Plan
from fastload.errors import FastloadError, UsageError
from fastload.host import perfstat, placement
from fastload.results.document import build_result
from fastload.runtime import preflight, runner
from fastload.runtime.faults import FaultRun
from fastload.runtime.worker import die_with_parent

# How long a host waits at the gate for the start signal before it gives up without sending
# a request (the coordinator is gone, or declared this host lost).
GATE_TIMEOUT_S = 60.0


def main(fd: int, parent_pid: int) -> None:
    die_with_parent(parent_pid)  # a lost host must not go on sending load
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the coordinator stops us, through the agent
    conn = Connection(fd)
    try:
        kind, plan = conn.recv()
        assert kind == "plan"
        conn.send(_run(conn, plan))
    except (EOFError, OSError):
        pass  # the agent is gone
    finally:
        conn.close()


def _run(conn: Connection, plan: Plan) -> tuple:
    try:
        preflight.ensure_fd_limit(plan)
        preflight.ensure_ports(plan)
        early = placement.warnings(plan.cpus, coalescing=bool(plan.coalesce_ns))
        if plan.perf_stat is not None:
            plan = dataclasses.replace(plan, perf_stat=perfstat.check(plan.perf_stat))
            if plan.perf_stat.note:
                early.append(plan.perf_stat.note)
        plan = preflight.preflight(plan)
        # Faults on the load path run on every host, on the shared start (the coordinator
        # runs the named proxies).
        faults = FaultRun(plan) if plan.faults else None
        if faults is not None:
            plan, fault_warnings = faults.start()
            early += fault_warnings
    except FastloadError as e:
        return ("error", 2 if isinstance(e, UsageError) else 3, str(e))
    stop = {"asked": False}

    def gate(ready: dict[int, dict]) -> float | None:
        conn.send(("ready", {"workers": len(ready), "protocol": plan.protocol,
                             "connected": sum(r.get("connected", 0) for r in ready.values())}))
        if not conn.poll(GATE_TIMEOUT_S):
            return None
        msg = conn.recv()
        return msg[1] if msg[0] == "go" else None

    def stop_requested() -> bool:
        while not stop["asked"] and conn.poll(0):
            stop["asked"] = conn.recv()[0] == "stop"
        return stop["asked"]

    def on_tick(index: int, tick: dict, elapsed_s: float) -> None:
        conn.send(("tick", index, round(elapsed_s),
                   {k: v for k, v in tick.items() if k != "t_ns"}))  # t_ns is this host's clock

    on_start = None
    if faults is not None:
        def on_start(start_ns: int) -> None:
            faults.schedule(start_ns + plan.warmup_ns)

    try:
        out = runner.run(plan, stop_requested=stop_requested, on_tick=on_tick, start_gate=gate,
                         on_start=on_start)
    except FastloadError as e:
        return ("error", 2 if isinstance(e, UsageError) else 3, str(e))
    finally:
        if faults is not None:
            faults.stop()
    out.warnings[:0] = early
    doc = build_result(out)
    if faults is not None:
        doc["faults"], late = faults.report()
        doc.setdefault("warnings", []).extend(late)
    # The measured start: when the first worker began, against the instant asked for.
    lag_s = None
    if out.workers and out.start_ns is not None:
        lag_s = (min(w["start_ns"] for w in out.workers) - out.start_ns) / 1e9
    return ("done", {"doc": doc, "start_lag_s": lag_s, "workers": plan.workers,
                     "cpus": sorted({c for group in plan.cpus for c in group}),
                     "failed_workers": out.failed_workers, "no_results": not out.workers})


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))

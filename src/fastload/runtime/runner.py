"""The parent side of a run: spawning pinned workers, starting them together,
progress, collecting and merging their results. Knows nothing about click or printing:
progress goes to a callback, problems are raised as RunError."""

from __future__ import annotations

import multiprocessing as mp
import os
import shlex
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing import resource_tracker, spawn
from multiprocessing.connection import Connection, wait

from fastload.config.plan import Plan
from fastload.errors import RunError
from fastload.host.info import ServerCPU
from fastload.host.placement import wrapper_argv
from fastload.results.document import RunOutput
from fastload.results.histogram import decode, encode, percentiles_us
from fastload.runtime.worker import worker_main

START_DELAY_NS = 50_000_000  # lets every worker arm its start timer before the instant arrives
READY_TIMEOUT_S = 60.0
STOP_GRACE_S = 2.0


@dataclass
class Progress:
    elapsed_s: float
    rps: float
    p99_us: float | None
    errors: int
    requests: int
    # The merged interval of this second (histogram, counts), as it goes into the timeline.
    interval: dict | None = None


def _start_workers(plan: Plan, scratch: str) -> tuple[list[mp.Process], list[Connection]]:
    """Forks the workers (they pin themselves), or for --pin-mode taskset/numactl spawns each
    one through a generated script that execs Python under the wrapper: multiprocessing's
    spawn start method runs whatever executable it is given with Python's arguments."""
    procs: list[mp.Process] = []
    conns: list[Connection] = []
    wrapped = plan.pin_mode != "affinity"
    ctx = mp.get_context("spawn" if wrapped else "fork")
    if wrapped:

        # The tracker is started with the current executable: keep it out of the wrappers.
        resource_tracker.ensure_running()
        saved_exe = spawn.get_executable()
    try:
        for i in range(plan.workers):
            if wrapped:
                spawn.set_executable(_wrapper_script(plan, i, scratch))
            parent_end, child_end = ctx.Pipe(duplex=True)
            p = ctx.Process(target=worker_main, args=(plan, i, child_end, os.getpid()),
                            name=f"fastload-worker-{i}", daemon=True)
            p.start()
            child_end.close()
            procs.append(p)
            conns.append(parent_end)
    except BaseException:
        for p in procs:
            p.kill()
        raise
    finally:
        if wrapped:
            spawn.set_executable(saved_exe)
    return procs, conns


def _wrapper_script(plan: Plan, index: int, scratch: str) -> str:

    argv = wrapper_argv(plan.pin_mode, plan.cpus[index], plan.numa_node)
    path = os.path.join(scratch, f"worker-{index}")
    with open(path, "w") as f:
        f.write("#!/bin/sh\nexec " + shlex.join([*argv, sys.executable]) + ' "$@"\n')
    os.chmod(path, 0o700)
    return path


TickHook = Callable[[int, dict, float], None]
# Given the workers' ready reports, returns the wall-clock start instant, or None to stop.
StartGate = Callable[[dict[int, dict]], "float | None"]


def run(plan: Plan, on_progress: Callable[[Progress], None] | None = None,
        stop_requested: Callable[[], bool] | None = None,
        on_tick: TickHook | None = None,
        on_spawned: Callable[[], None] | None = None,
        start_gate: StartGate | None = None,
        on_start: Callable[[int], None] | None = None) -> RunOutput:
    """Runs the plan (after preflight) and returns every worker's raw result.

    on_tick(worker_index, tick, elapsed_s) sees every worker's raw per-second tick as it
    arrives; on_spawned() runs once all workers are started (the place to start threads, which
    must not exist while forking); start_gate(ready), if given, is asked for the start instant
    once every worker has connected (a cluster host waits there for the common start);
    on_start(start_ns) runs once the start instant is sent (the workers' common
    CLOCK_MONOTONIC start, before any warm-up), unless the run was stopped."""

    with tempfile.TemporaryDirectory(prefix="fastload-") as scratch:
        return _run(plan, scratch, on_progress, stop_requested, on_tick, on_spawned, start_gate,
                    on_start)


def _run(plan: Plan, scratch: str, on_progress: Callable[[Progress], None] | None,
         stop_requested: Callable[[], bool] | None, on_tick: TickHook | None,
         on_spawned: Callable[[], None] | None, start_gate: StartGate | None,
         on_start: Callable[[int], None] | None = None) -> RunOutput:
    procs, conns = _start_workers(plan, scratch)
    server = ServerCPU(plan.server_pid) if plan.server_pid is not None else None
    interrupted = False
    prev_handler = None
    sigint = {"hit": False}

    def on_sigint(signum, frame):  # noqa: ARG001
        sigint["hit"] = True

    try:
        prev_handler = signal.signal(signal.SIGINT, on_sigint)
        prev_term = signal.signal(signal.SIGTERM, on_sigint)
    except ValueError:  # not the main thread (e.g. the Python API from a thread): no handler
        prev_handler = prev_term = None
    try:
        if on_spawned is not None:
            on_spawned()  # inside the try: the workers are reaped even if it fails
        ready = _await_ready(procs, conns, sigint)
        if sigint["hit"]:
            interrupted = True
        connected = sum(r.get("connected", 0) for r in ready.values())
        if connected == 0 and not interrupted:
            errs = sorted({e for r in ready.values() for e in r.get("connect_errors", [])})
            _broadcast(conns, ("stop",))
            raise RunError("no connection could be made to "
                           f"{plan.target.host}:{plan.target.port}" + (f": {errs[0]}" if errs else ""))
        start_at = plan.start_at
        if start_gate is not None and not interrupted:
            start_at = start_gate(ready)
            interrupted = start_at is None or sigint["hit"]
        wall, mono = time.time(), time.monotonic_ns()
        start_ns = mono + START_DELAY_NS
        if start_at is not None:
            # Wall-clock rendezvous for several hosts; the monotonic clock then takes over.
            start_ns = max(start_ns, mono + int((start_at - wall) * 1e9))
        _broadcast(conns, ("stop",) if interrupted else ("go", start_ns))
        if on_start is not None and not interrupted:
            on_start(start_ns)
        out = RunOutput(plan=plan, started_at=wall + (start_ns - mono) / 1e9, workers=[],
                        start_ns=start_ns)
        _collect(plan, procs, conns, out, start_ns, sigint, on_progress, stop_requested, server,
                 on_tick)
        if server is not None:
            out.server_cpu = server.report(sum(w["requests"] for w in out.workers))
        out.interrupted = out.interrupted or interrupted or sigint["hit"]
        return out
    finally:
        if prev_handler is not None:
            signal.signal(signal.SIGINT, prev_handler)
            signal.signal(signal.SIGTERM, prev_term)
        for p in procs:
            p.join(timeout=STOP_GRACE_S)
            if p.is_alive():
                p.kill()
                p.join(timeout=1)
        for c in conns:
            c.close()


def _broadcast(conns: list[Connection], msg: tuple) -> None:
    for c in conns:
        try:
            c.send(msg)
        except OSError:
            pass


def _await_ready(procs: list[mp.Process], conns: list[Connection], sigint: dict) -> dict[int, dict]:
    ready: dict[int, dict] = {}
    deadline = time.monotonic() + READY_TIMEOUT_S
    pending = {c: i for i, c in enumerate(conns)}
    while pending and time.monotonic() < deadline and not sigint["hit"]:
        for c in wait(list(pending), timeout=0.1):
            i = pending.pop(c)
            try:
                msg = c.recv()
            except (EOFError, OSError):
                raise RunError(f"worker {i} exited during start-up (exit code {procs[i].exitcode})") from None
            if msg[0] == "failed":
                raise RunError(f"worker {i} failed during start-up: {msg[1]}\n{msg[2]}")
            ready[i] = msg[1]
    if pending and not sigint["hit"]:
        raise RunError(f"{len(pending)} worker(s) did not start within {READY_TIMEOUT_S:.0f}s")
    return ready


def _collect(plan: Plan, procs: list[mp.Process], conns: list[Connection], out: RunOutput,
             start_ns: int, sigint: dict, on_progress: Callable[[Progress], None] | None,
             stop_requested: Callable[[], bool] | None, server: ServerCPU | None = None,
             on_tick: TickHook | None = None) -> None:

    # The server's CPU is sampled when measuring begins (after the warm-up) and once every
    # worker is done (its last response answered; only the closing of connections is extra).
    measure_from = start_ns + plan.warmup_ns
    sampled = server is None
    pending = {c: i for i, c in enumerate(conns)}
    stop_sent_at: float | None = None
    # Ticks of all workers for the same second are merged into one interval.
    tick_buf: dict[int, list[dict]] = {}
    total_requests = 0
    total_errors = 0
    # Each worker's 100 ms intervals (--phase windows) as its ticks shipped them.
    fine: dict[int, list] = {}
    while pending:
        if (sigint["hit"] or (stop_requested is not None and stop_requested())) and stop_sent_at is None:
            out.interrupted = True
            _broadcast(list(pending), ("stop",))
            stop_sent_at = time.monotonic()
        if stop_sent_at is not None and time.monotonic() - stop_sent_at > STOP_GRACE_S:
            for i in pending.values():
                out.failed_workers.append({"index": i, "pid": procs[i].pid,
                                           "error": "did not stop within 2 s after the stop request"})
                procs[i].kill()
            break
        timeout = 0.1
        if not sampled:
            left = (measure_from - time.monotonic_ns()) / 1e9
            if left <= 0:
                server.start()
                sampled = True
            else:
                timeout = min(timeout, left)
        for c in wait(list(pending), timeout=timeout):
            i = pending[c]
            try:
                msg = c.recv()
            except (EOFError, OSError):
                procs[i].join(timeout=1)
                out.failed_workers.append({"index": i, "pid": procs[i].pid,
                                           "error": f"worker died (exit code {procs[i].exitcode})"})
                del pending[c]
                continue
            kind = msg[0]
            if kind == "tick":
                tick = msg[1]
                fine.setdefault(i, []).extend(tick.pop("fine", ()))
                second = round((tick["t_ns"] - start_ns) / 1e9)
                tick_buf.setdefault(second, []).append(tick)
                total_requests += tick["requests"]
                total_errors += tick["errors"]
                if on_tick is not None:
                    on_tick(i, tick, (tick["t_ns"] - start_ns) / 1e9)
                if len(tick_buf[second]) == len(pending) or len(tick_buf[second]) == len(conns):
                    interval = merge_ticks(second, tick_buf.pop(second))
                    out.intervals.append(interval)
                    if on_progress is not None:
                        on_progress(Progress(elapsed_s=second, rps=interval["requests"],
                                             p99_us=interval["p99_us"], errors=total_errors,
                                             requests=total_requests, interval=interval))
            elif kind == "done":
                if "fine" in msg[1]:
                    msg[1]["fine"] = fine.pop(i, []) + msg[1]["fine"]
                out.workers.append(msg[1])
                del pending[c]
            elif kind == "failed":
                out.failed_workers.append({"index": i, "pid": procs[i].pid, "error": msg[1],
                                           "traceback": msg[2]})
                del pending[c]
    if server is not None:
        if not sampled:  # stopped before measuring began: an empty interval
            server.start()
        server.stop()
    for second in sorted(tick_buf):
        out.intervals.append(merge_ticks(second, tick_buf[second]))
    out.intervals.sort(key=lambda x: x["t"])
    out.workers.sort(key=lambda w: w["index"])


def merge_ticks(second: int, ticks: list[dict]) -> dict:
    """One second's ticks of several workers (of one host or many) as one timeline interval."""
    h = None
    for t in ticks:
        d = decode(t["histogram"])
        if h is None:
            h = d
        else:
            h.add(d)
    requests = sum(t["requests"] for t in ticks)
    requests_recorded = h is not None and h.get_total_count() > 0
    p50, p99 = percentiles_us(h, (50.0, 99.0)) if requests_recorded else (None, None)
    return {
        "histogram": encode(h) if h is not None else None,
        "t": second,
        "requests": requests,
        "errors": sum(t["errors"] for t in ticks),
        "rps": float(requests),
        "p50_us": p50 if requests_recorded else None,
        "p99_us": p99 if requests_recorded else None,
    }

"""A worker process: pins itself, runs one uvloop event loop with an Engine, reports to the
parent over a pipe. The only place that creates event loops.

Messages to the parent: ("ready", info) | ("tick", interval) | ("done", result) | ("failed", msg).
Messages from the parent: ("go", start_ns) | ("stop",).
"""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import time
import traceback
from multiprocessing.connection import Connection

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a dependency; plain asyncio still works
    uvloop = None

from fastload import native
from fastload.config.plan import Plan
from fastload.errors import ERROR_CLASSES
from fastload.host import info as host
from fastload.host import perfstat, placement
from fastload.runtime.engine import Engine, build_mix

TICK_S = 1.0


def die_with_parent(parent_pid: int) -> None:
    """Killed when the parent dies, SIGKILL included: a load generator must not go on sending
    without the process that would collect and report. (Not the pipe's end of file: forked
    siblings hold copies of each other's pipe ends.)"""
    try:
        placement.prctl(placement.PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:  # it died before prctl took effect
        os._exit(1)


def worker_main(plan: Plan, index: int, conn: Connection, parent_pid: int | None = None) -> None:
    if parent_pid is not None:
        die_with_parent(parent_pid)
    # The parent owns Ctrl-C: it asks workers to stop and still collects their results.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    cpus = plan.cpus[index] if index < len(plan.cpus) else ()
    if cpus and plan.pin_mode == "affinity":  # otherwise taskset/numactl started us pinned
        os.sched_setaffinity(0, cpus)
    loop = uvloop.new_event_loop() if uvloop is not None else asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    perf = None
    try:
        if plan.perf_stat is not None:
            # Attached (counters off) before "ready": nothing is spawned once the run is on.
            perf = perfstat.Session(plan.perf_stat, os.getpid())
        result = loop.run_until_complete(_run(loop, plan, index, conn, perf))
        conn.send(("done", result))
    except BaseException as e:  # report any failure instead of dying silently
        conn.send(("failed", f"{type(e).__name__}: {e}", traceback.format_exc()))
    finally:
        if perf is not None:
            perf.close()
        loop.close()
        conn.close()


async def _run(loop: asyncio.AbstractEventLoop, plan: Plan, index: int, conn: Connection,
               perf: perfstat.Session | None) -> dict:
    stats = native.WorkerStats()
    quota = plan.worker_requests(index)
    if plan.mix is not None:
        stats.mix = build_mix(plan, index)
    trace = plan.worker_trace(index) if plan.replay else None
    if trace is not None:
        quota = len(trace[0])
    if plan.phases:
        # Counted per phase (shipped with the result) and per 100 ms interval (shipped with
        # each tick). Between two ticks, intended times recorded span about the timeout.
        stats.set_phases([p.start_ns for p in plan.phases[1:]], plan.timeout_ns + int(2 * TICK_S * 1e9))
    engine = Engine(loop, plan, plan.worker_connections(index), stats)
    finished = loop.create_future()
    if quota is not None:
        stats.quota = quota

        def quota_done() -> None:
            if not finished.done():
                finished.set_result("quota")

        stats.on_quota_done = quota_done

    connected = await engine.connect_all()
    conn.send(("ready", {"index": index, "pid": os.getpid(), "connected": connected,
                         "connect_errors": engine.connect_errors[:5]}))

    go = loop.create_future()

    def on_message() -> None:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            msg = ("stop",)  # the parent is gone: stop and exit
        if msg[0] == "go" and not go.done():
            go.set_result(msg[1])
        elif msg[0] == "stop":
            if not go.done():
                go.set_result(None)
            if not finished.done():
                finished.set_result("stopped")

    loop.add_reader(conn.fileno(), on_message)
    start_ns = await go
    if start_ns is None:
        loop.remove_reader(conn.fileno())
        engine.stop()
        result = _result(plan, index, stats, time.monotonic_ns(), time.monotonic_ns(), "stopped",
                         _rusage())
        if perf is not None:
            result["perf"] = perf.stop()
        return result
    delay_s = (start_ns - time.monotonic_ns()) / 1e9
    if delay_s > 0:
        await asyncio.sleep(delay_s)
    # Loop timers have millisecond granularity and may fire early; a request sent before
    # start_ns would count as warm-up, outside the -n quota. The rest is under a millisecond.
    while time.monotonic_ns() < start_ns:
        pass
    start_ns = max(start_ns, time.monotonic_ns())
    end_ns = None if plan.duration_ns is None else start_ns + plan.warmup_ns + plan.duration_ns
    if trace is not None:
        stats.schedule.set_replay(start_ns, *trace)
    elif plan.paced:
        stages = plan.worker_stages(index)
        if plan.warmup_ns:
            stages = [(plan.warmup_ns, stages[0][1], stages[0][1])] + stages
        offset = 0
        if plan.arrival == "constant" and plan.stages[0][1] > 0:
            # Interleave the workers' identical schedules instead of firing them together.
            offset = int(index * 1e9 / plan.stages[0][1])
        stats.schedule.set_rates(start_ns + offset, stages, plan.arrival == "poisson", plan.seed + index)
    cpu_at_start = _rusage()
    if perf is not None:
        # Count the measured interval only: from the end of the warm-up.
        if plan.warmup_ns:
            loop.call_at(loop.time() + (start_ns + plan.warmup_ns - time.monotonic_ns()) / 1e9,
                         lambda: finished.done() or perf.enable())
        else:
            perf.enable()
    engine.start(start_ns, end_ns)
    if end_ns is not None:
        loop.call_at(loop.time() + (end_ns - time.monotonic_ns()) / 1e9,
                     lambda: finished.done() or finished.set_result("deadline"))
    tick = loop.call_later(TICK_S, _tick, loop, stats, conn, finished)
    try:
        reason = await finished
    finally:
        if perf is not None:
            perf.disable()  # before the connections are closed: shutdown is not measured
        tick.cancel()
        loop.remove_reader(conn.fileno())
    # The last partial interval, so that the intervals add up to the totals.
    _send_tick(stats, conn)
    stop_ns = time.monotonic_ns()
    if end_ns is not None and reason == "deadline":
        stop_ns = end_ns
    engine.stop()
    await engine.closed()
    measured_from = stats.record_from_ns
    result = _result(plan, index, stats, measured_from, stop_ns, reason, cpu_at_start)
    result["ephemeral_port_errors"] = engine.port_exhaustion
    if perf is not None:
        result["perf"] = perf.stop()
    return result


def _tick(loop: asyncio.AbstractEventLoop, stats: native.WorkerStats, conn: Connection,
          finished: asyncio.Future) -> None:
    if finished.done():
        return
    _send_tick(stats, conn)
    loop.call_later(TICK_S, _tick, loop, stats, conn, finished)


def _send_tick(stats: native.WorkerStats, conn: Connection) -> None:
    requests, errors, blob = stats.take_interval()
    try:
        # Cumulative error classes and status codes ride along for live metrics (--metrics-port).
        conn.send(("tick", {"t_ns": time.monotonic_ns(), "requests": requests, "errors": errors,
                            "histogram": blob, "error_counts": stats.error_counts(),
                            "status_codes": stats.status_counts(),
                            **({"fine": stats.take_fine()} if stats.phased else {})}))
    except OSError:
        pass


def _result(plan: Plan, index: int, stats: native.WorkerStats, start_ns: int, stop_ns: int,
            reason: str, cpu_at_start: tuple[float, float, float]) -> dict:
    # CPU of the run itself (from the start signal to the end), not of imports and connecting.
    ru = _rusage()
    # Where the kernel actually put us (whatever pinned us), not what was asked for.
    where = host.placement()
    return {
        "index": index,
        "pid": os.getpid(),
        "cpus": sorted(os.sched_getaffinity(0)),
        "numa_nodes": where["numa_nodes"],
        "mems_allowed": where["mems_allowed"],
        "mempolicy": where["mempolicy"],
        "pin_mode": plan.pin_mode,
        "reason": reason,
        "start_ns": start_ns,
        "stop_ns": stop_ns,
        "requests": stats.requests,
        "bytes_in": stats.bytes_in,
        "bytes_out": stats.bytes_out,
        "errors": stats.error_counts(),
        "status_codes": stats.status_counts(),
        "grpc_status": stats.grpc_counts() if plan.grpc else None,
        "sum_ns": stats.sum_ns,
        "sumsq_ns": stats.sumsq_ns,
        "min_ns": stats.min_ns,
        "max_ns": stats.max_ns,
        "histogram": stats.hist.encode(),
        "service_histogram": stats.service_hist.encode(),
        "lag_histogram": stats.lag_hist.encode() if stats.schedule.paced else None,
        "scheduled": stats.schedule.scheduled,
        "max_queue_delay_ns": stats.max_queue_delay_ns,
        "backlog": _backlog(stats, stop_ns),
        "overflow": stats.hist.overflow_count,
        "ttfb_histogram": stats.ttfb_hist.encode(),
        "ttfe_histogram": stats.ttfe_hist.encode(),
        "gap_histogram": stats.gap_hist.encode(),
        "events_histogram": stats.events_hist.encode(),
        "streams": stats.streams,
        "stream_events": stats.stream_events,
        "cpu_user_s": ru[0] - cpu_at_start[0],
        "cpu_sys_s": ru[1] - cpu_at_start[1],
        "cpu_wait_s": ru[2] - cpu_at_start[2],
        **({"mix": _mix_result(stats.mix)} if stats.mix is not None else {}),
        # "fine": the 100 ms intervals recorded after the last tick (the parent adds the ticks').
        **({"phases": stats.phase_results(), "fine": stats.take_fine()} if stats.phased else {}),
    }


def _mix_result(mix: native.RequestMix) -> dict:
    variants, entry_counts = mix.results(list(ERROR_CLASSES))
    out = {"variants": variants, "entries": entry_counts}
    runner = mix.checker
    if runner is not None:
        out["checked"] = runner.checked
        out["failed"] = runner.failed
        out["by_check"] = runner.by_check
        if mix.first_check_error is not None:
            kind, message, tb = mix.first_check_error
            out["check_error"] = {"responses": mix.check_errors, "type": kind, "message": message,
                                  "traceback": tb}
    return out


def _backlog(stats: native.WorkerStats, stop_ns: int) -> int:
    """Scheduled requests that were due before the end but never sent (connections full)."""
    if not stats.schedule.paced:
        return 0
    n = 0
    # Requests falling due in the last few timer ticks are not a shortfall.
    limit = stop_ns - 3_000_000
    rec = native.Recorder(stats)
    while stats.schedule.due(limit) and n < 10_000_000:
        rec.take_due(limit)
        n += 1
    return n


def _rusage() -> tuple[float, float, float]:
    """(user, sys, waited for a CPU) seconds of this worker so far."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime, _cpu_wait_s()


def _cpu_wait_s() -> float:
    # The kernel's run_delay: time this thread was runnable but another task had its CPU. CPU
    # time alone cannot tell a worker that was idle from one that was starved of its CPU.
    try:
        with open("/proc/thread-self/schedstat", "rb") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0

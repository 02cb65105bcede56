"""Where the workers run: the CPU pool from --cpus/--numa-node/--avoid-cpus, the taskset or
numactl command a worker is started under, the pre-flight warnings about placement
(workers sharing CPUs, a governor other than performance, CPUs shared with the server, idle
CPUs whose wake-ups exit the VM), and a worker's timer slack."""

from __future__ import annotations

import ctypes
import os
import shutil

from fastload.errors import UsageError
from fastload.host import info as host

PIN_MODES = ("affinity", "taskset", "numactl")
_PACKAGE = {"taskset": "util-linux", "numactl": "numactl"}


def choose_pool(cpus: list[int] | None, numa_node: int | None, avoid: list[int] | None,
                node_root: str = host.NODE_ROOT) -> list[int]:
    """The CPUs workers may use: the allowed ones, narrowed by --numa-node and --cpus (which
    must agree), minus --avoid-cpus."""
    allowed = sorted(os.sched_getaffinity(0))
    if cpus is not None:
        bad = [c for c in cpus if c not in allowed]
        if bad:
            raise UsageError(f"--cpus: CPU(s) {','.join(map(str, bad))} not available "
                             f"(allowed: {host.format_cpulist(allowed)})")
    pool = cpus if cpus is not None else allowed
    if numa_node is not None:
        nodes = host.numa_nodes(node_root)
        if numa_node not in nodes:
            known = ",".join(map(str, nodes)) or "none visible in " + node_root
            raise UsageError(f"--numa-node {numa_node}: no such NUMA node (nodes: {known})")
        on_node = nodes[numa_node]
        if cpus is not None:
            off = [c for c in cpus if c not in on_node]
            if off:
                raise UsageError(f"--cpus and --numa-node {numa_node} disagree: CPU(s) "
                                 f"{','.join(map(str, off))} are not on node {numa_node} "
                                 f"(its CPUs: {host.format_cpulist(on_node)})")
        pool = [c for c in pool if c in on_node]
        if not pool:
            raise UsageError(f"--numa-node {numa_node}: none of its CPUs "
                             f"({host.format_cpulist(on_node)}) is allowed for this process "
                             f"(allowed: {host.format_cpulist(allowed)})")
    if avoid:
        left = [c for c in pool if c not in avoid]
        if not left:
            raise UsageError(f"--avoid-cpus {host.format_cpulist(avoid)} leaves no CPU for the "
                             f"workers (they could use {host.format_cpulist(pool)})")
        pool = left
    return pool


def check_pin_mode(pin_mode: str) -> None:
    if pin_mode not in PIN_MODES:
        raise UsageError(f"--pin-mode: {pin_mode!r} must be one of {', '.join(PIN_MODES)}")
    if pin_mode != "affinity" and shutil.which(pin_mode) is None:
        raise UsageError(f"--pin-mode {pin_mode}: {pin_mode!r} is not installed (package "
                         f"{_PACKAGE[pin_mode]}), or use --pin-mode affinity")


def check_server_pid(pid: int | None) -> None:
    if pid is not None and not host.pid_exists(pid):
        raise UsageError(f"--server-pid {pid}: no such process")


def wrapper_argv(pin_mode: str, cpus: tuple[int, ...], numa_node: int | None,
                 node_root: str = host.NODE_ROOT) -> list[str]:
    """The command a worker's Python is started under; [] for the affinity mode (the worker
    calls sched_setaffinity itself). numactl also binds memory: to --numa-node, or else to the
    nodes of the worker's CPUs (local memory even when the kernel would spill elsewhere)."""
    if pin_mode == "affinity" or not cpus:
        return []
    cpulist = host.format_cpulist(cpus)
    if pin_mode == "taskset":
        return [shutil.which("taskset") or "taskset", "-c", cpulist]
    mems = [numa_node] if numa_node is not None else host.nodes_of(cpus, host.numa_nodes(node_root))
    argv = [shutil.which("numactl") or "numactl", f"--physcpubind={cpulist}"]
    if mems:
        argv.append(f"--membind={host.format_cpulist(mems)}")
    return argv


def warnings(cpus: tuple[tuple[int, ...], ...], server_pid: int | None = None,
             cpu_root: str = host.CPU_ROOT, proc: str = host.PROC, coalescing: bool = False,
             halt_poll_path: str = host.HALT_POLL_NS) -> list[str]:
    """Set-ups that distort measurements but are allowed; printed and kept in the JSON."""
    out = []
    used = [c for group in cpus for c in group]
    distinct = sorted(set(used))
    if len(used) != len(distinct):
        out.append(f"{len(cpus)} workers on {len(distinct)} CPU(s): several workers share a CPU; "
                   "their measurements disturb each other")
    govs = {c: g for c, g in host.governors(distinct, cpu_root).items() if g is not None}
    slow = sorted(c for c, g in govs.items() if g != "performance")
    if slow:
        names = ",".join(sorted({govs[c] for c in slow}))
        out.append(f"CPU frequency governor is {names} on CPU(s) {host.format_cpulist(slow)}, not "
                   "performance: clock changes add noise (cpupower frequency-set -g performance)")
    if server_pid is not None:
        shared = sorted(set(distinct) & set(host.process_cpus(server_pid, proc)))
        if shared:
            out.append(f"workers share CPU(s) {host.format_cpulist(shared)} with the server (pid "
                       f"{server_pid}): each slows the other; pin them apart (--avoid-cpus, "
                       "--cpus, taskset on the server)")
    # Not with --coalesce: its client waits on a timer while responses flow, so the server has
    # no one to wake. Measured in bench/README.md ("Idle CPUs that halt at once").
    if not coalescing and host.wakeups_exit_the_vm(host.cpu_idle(cpu_root, halt_poll_path)):
        out.append("idle CPUs halt without polling (cpuidle haltpoll, guest_halt_poll_ns 0): "
                   "waking one costs the waker a VM exit, so a server on this host that wakes a "
                   "waiting client for its responses can lose throughput to it (h2o over h2c: 16% in "
                   "bench/README.md); --coalesce (closed model) waits on a timer instead, or raise "
                   f"{host.HALT_POLL_NS} (upstream default 200000)")
    return out


def assign_cpus(workers: int | None, pool: list[int]) -> tuple[int, tuple[tuple[int, ...], ...]]:
    """One worker per CPU of the pool by default. With fewer workers than CPUs the CPUs are split
    in contiguous groups; with more, workers share CPUs round-robin (allowed, warned about)."""
    n = workers if workers is not None else len(pool)
    if n <= len(pool):
        groups = []
        for i in range(n):
            lo, hi = i * len(pool) // n, (i + 1) * len(pool) // n
            groups.append(tuple(pool[lo:hi]))
        return n, tuple(groups)
    return n, tuple((pool[i % len(pool)],) for i in range(n))


PR_SET_PDEATHSIG = 1
PR_SET_TIMERSLACK = 29
PR_GET_TIMERSLACK = 30


def prctl(option: int, arg: int = 0) -> int:
    """prctl(2) for this process or thread: its return value (-1 with errno on failure).
    OSError or AttributeError where libc cannot be loaded or has no prctl."""
    return ctypes.CDLL(None, use_errno=True).prctl(option, ctypes.c_ulong(arg), 0, 0, 0)


def set_timer_slack_ns(ns: int) -> bool:
    """This thread's timer slack: how late the kernel may end a sleep to batch wake-ups (50 µs
    by default). --coalesce sleeps in 100 µs steps, where 50 µs more would be half as late
    again. False where prctl refuses it."""
    return prctl(PR_SET_TIMERSLACK, ns) == 0


def timer_slack_ns() -> int:
    return prctl(PR_GET_TIMERSLACK)

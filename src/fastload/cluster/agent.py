"""`fastload agent SCHEDULER`: a Dask worker with one thread and the resource fastload=1 that
runs its host's share of cluster runs. Also the functions the coordinator calls on agents:
facts() and place() through Client.run, run_host() as the run's task, deliver() to pass
the start and stop signals to a running task."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import pickle
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection

import dask
import distributed

from fastload import __version__
from fastload.config.options import RunOptions
from fastload.config.plan import Plan, place
from fastload.errors import RunError, UsageError
from fastload.host import info as host_info
from fastload.host.info import format_cpulist

RESOURCE = "fastload"
TOPIC_PREFIX = "fastload-run-"
POLL_S = 0.05  # how often a running task looks for signals: the delay of a stop, at most


@dataclass(frozen=True)
class AgentOptions:
    """The pinning options `fastload agent` was started with: the host's defaults for runs
    that give none of their own."""

    name: str | None = None
    cpus: str | None = None
    numa_node: int | None = None


_OPTIONS = AgentOptions()
# A load host's own CPU is for the load: Dask's background sampling is turned down on agents
# (an idle worker with the defaults used about 6% of a core here: its statistical profiler
# samples every thread every 10 ms).
QUIET_WORKER = {
    "distributed.worker.profile.enabled": False,
    "distributed.worker.memory.monitor-interval": "1s",
    "distributed.admin.system-monitor.interval": "2s",
    "distributed.admin.system-monitor.gil.enabled": False,
}
_INBOXES: dict[str, queue.Queue] = {}
_INBOX_LOCK = threading.Lock()


def facts(dask_worker: distributed.Worker) -> dict:
    """What the coordinator checks and reports about this host."""
    return {"name": str(dask_worker.name), "address": dask_worker.address,
            "hostname": socket.gethostname(), "version": __version__,
            "python": sys.version.split()[0],
            "cpus": sorted(os.sched_getaffinity(0)),
            "numa_nodes": sorted(host_info.numa_nodes()),
            "options": {"cpus": _OPTIONS.cpus, "numa_node": _OPTIONS.numa_node}}


def host_placement(options: RunOptions) -> tuple:
    """This host's workers for a run's placement options, the agent's own as defaults:
    ("ok", Placement, numa_node) or ("error", message)."""
    if options.cpus is None and options.numa_node is None:
        options = dataclasses.replace(options, cpus=_OPTIONS.cpus, numa_node=_OPTIONS.numa_node)
    try:
        return ("ok", place(options), options.numa_node)
    except UsageError as e:
        return ("error", str(e))


def _inbox(run_id: str) -> queue.Queue:
    with _INBOX_LOCK:
        return _INBOXES.setdefault(run_id, queue.Queue())


def deliver(run_id: str, message: tuple) -> None:
    """Runs on the agent (Client.run): hands a start or stop signal to the run's task. A stop
    that arrives before the task has started is kept, so that the task never starts."""
    _inbox(run_id).put(message)


def run_host(run_id: str, index: int, plan: Plan) -> dict:
    """The task: this host's share, in a child process (cluster.hostrun). Ready and ticks go
    to the coordinator as Dask events on the run's topic; the report is the task's result."""
    worker = distributed.get_worker()
    topic = TOPIC_PREFIX + run_id
    inbox = _inbox(run_id)
    ours, theirs = socket.socketpair()
    err = tempfile.TemporaryFile()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fastload.cluster.hostrun", str(theirs.fileno()), str(os.getpid())],
            pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, stdout=err, stderr=err,
            start_new_session=True)  # a Ctrl-C at the agent's terminal is the agent's alone
    finally:
        theirs.close()
    conn = Connection(ours.detach())
    try:
        conn.send(("plan", plan))
        while True:
            while not inbox.empty():
                conn.send(inbox.get_nowait())
            if not conn.poll(POLL_S):
                if proc.poll() is not None and not conn.poll(0):
                    break
                continue
            msg = conn.recv()
            if msg[0] in ("ready", "tick"):
                worker.log_event(topic, {"host": index, "data": pickle.dumps(msg)})
            elif msg[0] in ("done", "error"):
                return {"kind": msg[0], "body": msg[1:]}
    except (EOFError, OSError):
        pass
    finally:
        conn.close()
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        with _INBOX_LOCK:
            _INBOXES.pop(run_id, None)
    err.seek(0)
    tail = err.read()[-2000:].decode(errors="replace").strip().splitlines()
    return {"kind": "error", "body": (3, f"the host's run process exited with code {proc.returncode}"
                                      + (f": {tail[-1]}" if tail else ""))}


def serve(scheduler: str, name: str | None, cpus: str | None, numa_node: int | None,
          security: distributed.Security | None, on_joined: Callable[[str], None]) -> None:
    """`fastload agent`: runs until SIGINT/SIGTERM or until the scheduler goes away;
    on_joined(line) once it has joined (the CLI prints it)."""
    global _OPTIONS
    # The agent's own pinning options are checked here, on the host they describe.
    place(RunOptions(url="http://agent", cpus=cpus, numa_node=numa_node))
    _OPTIONS = AgentOptions(name=name, cpus=cpus, numa_node=numa_node)
    # Dask logs each out-of-band call (a run makes several): only its warnings are news here.
    logging.getLogger("distributed").setLevel(logging.WARNING)
    dask.config.set(QUIET_WORKER)
    asyncio.run(_serve(scheduler, name, security, on_joined))


async def _serve(scheduler: str, name: str | None, security: distributed.Security | None,
                 on_joined: Callable[[str], None]) -> None:
    try:
        worker = await distributed.Worker(scheduler, nthreads=1, name=name, security=security,
                                          resources={RESOURCE: 1}, dashboard=False)
    except (OSError, asyncio.TimeoutError) as e:
        raise RunError(f"cannot reach the scheduler at {scheduler}: {e}") from None
    on_joined(f"fastload agent {worker.name}: joined {scheduler} as {worker.address} (fastload "
              f"{__version__}, CPUs {format_cpulist(sorted(os.sched_getaffinity(0)))})")
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    finished = asyncio.ensure_future(worker.finished())
    stopped = asyncio.ensure_future(stopping.wait())
    await asyncio.wait([finished, stopped], return_when=asyncio.FIRST_COMPLETED)
    if not finished.done():
        await worker.close(reason="fastload agent stopped")

"""--at OFFSET:COMMAND in the parent: `sh -c COMMAND` at OFFSET of run time, without blocking
the load. One thread per hook, started once the workers exist (threads must not exist while
forking), each waiting for its instant, then reading the command's output until it ends."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Sequence

from fastload.config.windows import Hook

OUTPUT_KEPT = 1024  # the last bytes of a hook's output that go into the document


class Hooks:
    def __init__(self, hooks: Sequence[Hook]) -> None:
        self.hooks = list(hooks)
        self.results = [{"at_s": h.offset_ns / 1e9, "command": h.command, "start_s": None,
                         "duration_s": None, "exit_code": None, "killed": False, "output": ""}
                        for h in self.hooks]
        self._cancel = threading.Event()
        self._threads: list[threading.Thread] = []
        self._procs: list[subprocess.Popen | None] = [None] * len(self.hooks)
        self._lock = threading.Lock()
        self._origin_ns = 0

    def start(self, origin_ns: int) -> None:
        """origin_ns: CLOCK_MONOTONIC of run time 0 (the end of the warm-up)."""
        self._origin_ns = origin_ns
        for i in range(len(self.hooks)):
            t = threading.Thread(target=self._run, args=(i,), name=f"fastload-hook-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def _run(self, i: int) -> None:
        hook, out = self.hooks[i], self.results[i]
        wait_s = (self._origin_ns + hook.offset_ns - time.monotonic_ns()) / 1e9
        if wait_s > 0 and self._cancel.wait(wait_s):
            return  # the run ended first: the hook never starts
        with self._lock:
            if self._cancel.is_set():
                return
            t0 = time.monotonic_ns()
            try:
                # Its own session: a hook that outlives the run is killed with its children.
                proc = subprocess.Popen(["sh", "-c", hook.command], stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        start_new_session=True)
            except OSError as e:
                out["output"] = str(e)[-OUTPUT_KEPT:]
                return
            self._procs[i] = proc
        out["start_s"] = round((t0 - self._origin_ns) / 1e9, 6)
        tail = b""
        assert proc.stdout is not None
        while chunk := proc.stdout.read1(4096):
            tail = (tail + chunk)[-OUTPUT_KEPT:]
        proc.stdout.close()
        code = proc.wait()
        out["duration_s"] = round((time.monotonic_ns() - t0) / 1e9, 6)
        out["exit_code"] = code
        out["output"] = tail.decode("utf-8", "replace")

    def finish(self, timeout_s: float) -> list[dict]:
        """Skips the hooks not started yet, waits up to timeout_s for the running ones, kills the
        rest, and returns what each did."""
        with self._lock:
            self._cancel.set()
        deadline = time.monotonic() + timeout_s
        for i, t in enumerate(self._threads):
            t.join(max(deadline - time.monotonic(), 0.0))
            proc = self._procs[i]
            if t.is_alive() and proc is not None:
                self.results[i]["killed"] = True
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                t.join(5.0)
        return self.results

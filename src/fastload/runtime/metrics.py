"""`fastload run --metrics-port PORT`: live Prometheus metrics (text exposition format 0.0.4)
for dashboards on long runs. Served by the parent process from the per-second ticks it
receives from the workers anyway; the workers are not touched.

LiveMetrics folds ticks into counters under a lock; report.prometheus.render() turns its
Snapshot into text; MetricsServer is a small threaded http.server on 127.0.0.1."""

from __future__ import annotations

import errno
import os
import threading
import weakref
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from fastload import __version__
from fastload.config.plan import Plan
from fastload.errors import ERROR_CLASSES, UsageError
from fastload.report.prometheus import CONTENT_TYPE, QUANTILES, Snapshot, WorkerView, render
from fastload.results.histogram import decode, percentiles_us


class LiveMetrics:
    """The run's state as far as the ticks tell it. on_tick/on_progress run in the collecting
    thread, snapshot() in the server's threads."""

    def __init__(self, plan: Plan) -> None:
        self._lock = threading.Lock()
        self._plan = plan
        self._workers: dict[int, dict] = {
            i: {"requests": 0, "errors": dict.fromkeys(ERROR_CLASSES, 0), "status_codes": {},
                "rps": 0.0, "latency_s": None, "elapsed_s": 0.0}
            for i in range(plan.workers)}
        self._elapsed_s = 0.0
        self._rps = 0.0
        self._latency_s: dict[str, float] | None = None
        self._up = True

    def set_plan(self, plan: Plan) -> None:
        """After preflight: the protocol of an https:// target is known only then."""
        with self._lock:
            self._plan = plan

    def on_tick(self, index: int, tick: dict, elapsed_s: float) -> None:
        latency = _quantiles_s(tick.get("histogram"))
        with self._lock:
            w = self._workers.setdefault(index, {"requests": 0, "errors": {}, "status_codes": {},
                                                 "rps": 0.0, "latency_s": None, "elapsed_s": 0.0})
            dt = elapsed_s - w["elapsed_s"]
            w["requests"] += tick["requests"]
            w["rps"] = tick["requests"] / dt if dt > 0 else 0.0
            w["elapsed_s"] = elapsed_s
            w["latency_s"] = latency
            if "error_counts" in tick:
                w["errors"] = dict(tick["error_counts"])
            if "status_codes" in tick:
                w["status_codes"] = dict(tick["status_codes"])
            self._elapsed_s = max(self._elapsed_s, elapsed_s)

    def on_progress(self, progress) -> None:
        """The runner's merged second (runner.Progress): exact totals across workers."""
        interval = progress.interval or {}
        latency = _quantiles_s(interval.get("histogram"))
        with self._lock:
            self._rps = float(progress.rps)
            self._latency_s = latency

    def snapshot(self) -> Snapshot:
        with self._lock:
            plan = self._plan
            info = {"version": __version__, "url": plan.target.url, "protocol": plan.protocol,
                    "connections": str(plan.connections), "workers": str(plan.workers)}
            workers = tuple(
                WorkerView(index=i, requests=w["requests"], errors=dict(w["errors"]),
                           status_codes=dict(w["status_codes"]), rps=w["rps"],
                           latency_s=None if w["latency_s"] is None else dict(w["latency_s"]))
                for i, w in sorted(self._workers.items()))
            return Snapshot(info=info, up=self._up, elapsed_s=self._elapsed_s, rps=self._rps,
                            latency_s=None if self._latency_s is None else dict(self._latency_s),
                            workers=workers)


def _quantiles_s(blob: bytes | str | None) -> dict[str, float] | None:
    if not blob:
        return None
    h = decode(blob)
    if not h.get_total_count():
        return None
    values = percentiles_us(h, [p for _, p in QUANTILES])
    return {q: v / 1e6 for (q, _), v in zip(QUANTILES, values, strict=True)}


# Forked workers must not keep the listening socket open (the port would stay bound after the
# parent closed it, until the last worker exits).
_OPEN: weakref.WeakSet[MetricsServer] = weakref.WeakSet()


def _close_in_child() -> None:
    for server in list(_OPEN):
        server.httpd.socket.close()


os.register_at_fork(after_in_child=_close_in_child)


class MetricsServer:
    """Binds 127.0.0.1:port at construction (UsageError when taken, before any traffic);
    serves GET /metrics from start() until close()."""

    def __init__(self, live: LiveMetrics, port: int) -> None:
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise UsageError(f"--metrics-port: {port!r} must be a port number 1-65535")
        handler = type("Handler", (_Handler,), {"live": live})
        try:
            self.httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
        except OSError as e:
            if e.errno in (errno.EADDRINUSE, errno.EACCES):
                raise UsageError(f"--metrics-port: cannot listen on 127.0.0.1:{port}: "
                                 f"{e.strerror}") from None
            raise
        self.httpd.daemon_threads = True
        self.port = port
        self._thread: threading.Thread | None = None
        _OPEN.add(self)

    def start(self) -> None:
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="fastload-metrics", daemon=True)
        self._thread.start()

    def close(self) -> None:
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join(timeout=2)
        self.httpd.server_close()
        _OPEN.discard(self)


class _Handler(BaseHTTPRequestHandler):
    live: LiveMetrics

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.path.split("?")[0] not in ("/metrics", "/"):
            self.send_error(404, "only /metrics is served")
            return
        body = render(self.live.snapshot()).encode()
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002
        pass  # the CLI owns stderr: no access log in the middle of the progress line

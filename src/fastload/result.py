"""Merges the workers' raw results into the result document (schema fastload.result/1).
Counters are summed, histograms merged exactly, mean/stdev computed from exact sums."""

from __future__ import annotations

import math

from . import __version__
from .errors import ERROR_CLASSES
from .histogram import encode, merge, summary_us
from .runner import RunOutput

SCHEMA = "fastload.result/1"


def build_result(out: RunOutput) -> dict:
    plan = out.plan
    ws = out.workers
    requests = sum(w["requests"] for w in ws)
    if ws:
        start_ns = min(w["start_ns"] for w in ws)
        stop_ns = max(w["stop_ns"] for w in ws)
        duration_s = max(stop_ns - start_ns, 1) / 1e9
    else:
        duration_s = 0.0
    hist = merge([w["histogram"] for w in ws])
    latency = summary_us(hist)
    if requests:
        # Exact mean/stdev/min/max from the workers' ns sums: no histogram rounding in these.
        sum_ns = sum(w["sum_ns"] for w in ws)
        sumsq_ns = sum(w["sumsq_ns"] for w in ws)
        mean_ns = sum_ns / requests
        var = max(sumsq_ns / requests - mean_ns * mean_ns, 0.0)
        latency["mean"] = mean_ns / 1e3
        latency["stdev"] = math.sqrt(var) / 1e3
        latency["min"] = min(w["min_ns"] for w in ws if w["min_ns"] >= 0) / 1e3
        latency["max"] = max(w["max_ns"] for w in ws) / 1e3
    errors = {k: sum(w["errors"][k] for w in ws) for k in ERROR_CLASSES}
    errors = {"total": sum(errors.values()), **errors}
    status: dict[str, int] = {}
    for w in ws:
        for code, n in w["status_codes"].items():
            status[code] = status.get(code, 0) + n
    cpu_s = sum(w["cpu_user_s"] + w["cpu_sys_s"] for w in ws)
    doc = {
        "schema": SCHEMA,
        "version": __version__,
        "target": {"url": plan.target.url, "protocol": plan.protocol},
        "config": plan.config(),
        "started_at": out.started_at,
        "duration_s": duration_s,
        "requests": requests,
        "rps": requests / duration_s if duration_s else 0.0,
        "bytes_in": sum(w["bytes_in"] for w in ws),
        "bytes_out": sum(w["bytes_out"] for w in ws),
        "status_codes": dict(sorted(status.items())),
        "errors": errors,
        "latency_us": latency,
        "histogram": encode(hist),
        "latency_overflow": sum(w["overflow"] for w in ws),
        "workers": [
            {
                "pid": w["pid"],
                "cpus": w["cpus"],
                "requests": w["requests"],
                "errors": sum(w["errors"].values()),
                "rps": w["requests"] / max((w["stop_ns"] - w["start_ns"]) / 1e9, 1e-9),
                "cpu_user_s": w["cpu_user_s"],
                "cpu_sys_s": w["cpu_sys_s"],
            }
            for w in ws
        ],
        "client_cpu_s": cpu_s,
        "client_cpu_us_per_request": cpu_s * 1e6 / requests if requests else None,
        "timeline": out.intervals,
        "interrupted": out.interrupted,
        "complete": not out.failed_workers and not out.interrupted,
        "worker_errors": out.failed_workers,
    }
    return doc

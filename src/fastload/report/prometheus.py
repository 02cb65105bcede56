"""The Prometheus text exposition (format 0.0.4) of a run's live state: pure formatting of a
Snapshot that runtime.metrics folds from the workers' ticks."""

from __future__ import annotations

import math
from dataclasses import dataclass

from fastload.errors import ERROR_CLASSES

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Quantile label -> percentile of the last interval's histogram; "1" is the maximum.
QUANTILES = (("0.5", 50.0), ("0.9", 90.0), ("0.99", 99.0), ("1", 100.0))


@dataclass(frozen=True)
class WorkerView:
    index: int
    requests: int
    errors: dict[str, int]  # by class, cumulative
    status_codes: dict[str, int]  # cumulative
    rps: float  # last interval
    latency_s: dict[str, float] | None  # quantile label -> seconds, last interval; None: no data


@dataclass(frozen=True)
class Snapshot:
    info: dict[str, str]
    up: bool
    elapsed_s: float
    rps: float  # last complete second, all workers
    latency_s: dict[str, float] | None  # last complete second, all workers merged exactly
    workers: tuple[WorkerView, ...]


def render(s: Snapshot) -> str:
    """The exposition text of a snapshot. Totals and per-worker values are separate metric
    families, so that sum() over a family never counts a request twice."""
    out: list[str] = []

    def family(name: str, kind: str, help_text: str, samples: list[tuple[dict[str, str], float]]) -> None:
        out.append(f"# HELP {name} {_escape_help(help_text)}")
        out.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            out.append(f"{name}{_labels(labels)} {_number(value)}")

    family("fastload_up", "gauge", "1 while a fastload run is in progress.", [({}, 1 if s.up else 0)])
    family("fastload_run_info", "gauge", "The run's target and set-up, as labels.", [(s.info, 1)])
    family("fastload_elapsed_seconds", "gauge", "Time since the start of the run (warm-up included).",
           [({}, s.elapsed_s)])
    family("fastload_requests_total", "counter", "Completed requests (responses) measured so far.",
           [({}, sum(w.requests for w in s.workers))])
    family("fastload_errors_total", "counter", "Failed requests by error class.",
           [({"class": c}, sum(w.errors.get(c, 0) for w in s.workers)) for c in _classes(s)])
    codes = sorted({c for w in s.workers for c in w.status_codes})
    family("fastload_responses_total", "counter", "Responses by HTTP status code.",
           [({"code": c}, sum(w.status_codes.get(c, 0) for w in s.workers)) for c in codes])
    family("fastload_requests_per_second", "gauge", "Requests completed in the last full second.",
           [({}, s.rps)])
    family("fastload_latency_seconds", "gauge",
           "Latency quantiles of the last full second, all workers (quantile 1 is the maximum).",
           [({"quantile": q}, math.nan if s.latency_s is None else s.latency_s[q])
            for q, _ in QUANTILES])
    family("fastload_worker_requests_total", "counter", "Completed requests per worker.",
           [({"worker": str(w.index)}, w.requests) for w in s.workers])
    family("fastload_worker_errors_total", "counter", "Failed requests per worker and error class.",
           [({"worker": str(w.index), "class": c}, w.errors.get(c, 0))
            for w in s.workers for c in _classes(s)])
    family("fastload_worker_requests_per_second", "gauge", "Requests per second of the worker's last interval.",
           [({"worker": str(w.index)}, w.rps) for w in s.workers])
    family("fastload_worker_latency_seconds", "gauge",
           "Latency quantiles of the worker's last interval (quantile 1 is the maximum).",
           [({"worker": str(w.index), "quantile": q}, math.nan if w.latency_s is None else w.latency_s[q])
            for w in s.workers for q, _ in QUANTILES])
    return "\n".join(out) + "\n"


def _classes(s: Snapshot) -> list[str]:
    extra = sorted({c for w in s.workers for c in w.errors} - set(ERROR_CLASSES))
    return list(ERROR_CLASSES) + extra


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    parts = []
    for k, v in labels.items():
        v = str(v).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
        parts.append(f'{k}="{v}"')
    return "{" + ",".join(parts) + "}"


def _number(v: float) -> str:
    if isinstance(v, bool):
        return str(int(v))
    if isinstance(v, int):
        return str(v)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(float(v))

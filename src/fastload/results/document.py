"""Merges the workers' raw results into the result document (schema fastload.result/1).
Counters are summed, histograms merged exactly, mean/stdev computed from exact sums."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastload import __version__
from fastload.errors import ERROR_CLASSES
from fastload.results import perf, phases, streaming
from fastload.results.histogram import encode, merge, summary_us
from fastload.results.sizes import size_summary

if TYPE_CHECKING:
    from fastload.config.plan import Plan

SCHEMA = "fastload.result/1"
# Share of the run the workers spent runnable but off-CPU above which the result says so.
CPU_WAIT_WARN = 0.10
# ... and that is more than scheduler noise: a few ms in a run of a tenth of a second is not.
CPU_WAIT_WARN_MIN_S = 0.05


@dataclass
class RunOutput:
    """What the runner collected: the raw material of the result document."""

    plan: Plan
    started_at: float
    workers: list[dict]
    failed_workers: list[dict] = field(default_factory=list)
    intervals: list[dict] = field(default_factory=list)
    interrupted: bool = False
    # Doubtful set-ups found before the run (already printed); they go into the JSON too.
    warnings: list[str] = field(default_factory=list)
    server_cpu: dict | None = None  # --server-pid: host.info.ServerCPU.report()
    start_ns: int | None = None  # the planned start on the monotonic clock (workers' start_ns)
    hooks: list[dict] = field(default_factory=list)  # --at: what each hook did (runtime.hooks)


def to_json(doc: dict) -> str:
    """The document as `fastload run --json` writes it."""
    return json.dumps(doc, indent=2, sort_keys=False) + "\n"


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
    sum_ns = sum(w["sum_ns"] for w in ws)
    sumsq_ns = sum(w["sumsq_ns"] for w in ws)
    if requests:
        # Exact mean/stdev/min/max from the workers' ns sums: no histogram rounding in these.
        mean_ns = sum_ns / requests
        var = max(sumsq_ns / requests - mean_ns * mean_ns, 0.0)
        latency["mean"] = mean_ns / 1e3
        latency["stdev"] = math.sqrt(var) / 1e3
        latency["min"] = min(w["min_ns"] for w in ws if w["min_ns"] >= 0) / 1e3
        latency["max"] = max(w["max_ns"] for w in ws) / 1e3
    errors = {k: sum(w["errors"][k] for w in ws) for k in ERROR_CLASSES}
    errors = {"total": sum(errors.values()), **errors}
    ports = sum(w.get("ephemeral_port_errors", 0) for w in ws)
    warnings: list[str] = list(out.warnings)
    if ports:
        # The client's own limit, kept out of "connect" so it is not read as a server failure.
        errors["ephemeral_ports"] = ports
        errors["total"] += ports
        warnings.append(f"{ports} connection attempts failed with EADDRNOTAVAIL: the client ran out of"
                        " ephemeral ports (widen net.ipv4.ip_local_port_range, use fewer connections)")
    for w in ws:
        # Read back from the kernel: a cpuset or another tool may have overridden the pinning.
        asked = list(plan.cpus[w["index"]]) if w["index"] < len(plan.cpus) else []
        if asked and w["cpus"] != asked:
            warnings.append(f"worker {w['index']} runs on CPU(s) {w['cpus']}, not {asked} as asked")
    status = sum_counts(w["status_codes"] for w in ws)
    cpu_s = sum(w["cpu_user_s"] + w["cpu_sys_s"] for w in ws)
    wait_s = sum(w.get("cpu_wait_s", 0.0) for w in ws)
    wait_share = wait_s / (duration_s * len(ws)) if duration_s and ws else 0.0
    if wait_share > CPU_WAIT_WARN and wait_s > CPU_WAIT_WARN_MIN_S:
        # The workers' own latency (and their send schedule) includes this wait: it is the
        # client being slow, not the server.
        warnings.append(f"workers waited for a CPU {wait_share:.0%} of the run: other processes are "
                        "busy on their CPUs, and latencies include that wait; use --cpus/--avoid-cpus")
    timeline = out.intervals
    doc = {
        "schema": SCHEMA,
        "version": __version__,
        "target": {"url": plan.target.url, "protocol": plan.protocol,
                   **({"h3_backend": plan.h3_backend} if plan.protocol == "h3" else {}),
                   **({"tls_path": plan.tls_path} if plan.tls_path is not None else {})},
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
        # Exact sums, so that `fastload merge` keeps mean and stdev exact across hosts.
        "latency_sum_ns": sum_ns,
        "latency_sumsq_ns": sumsq_ns,
        "workers": [
            {
                "pid": w["pid"],
                "cpus": w["cpus"],
                "numa_nodes": w["numa_nodes"],
                "mems_allowed": w["mems_allowed"],
                "mempolicy": w["mempolicy"],
                "pin_mode": w["pin_mode"],
                "requests": w["requests"],
                "errors": sum(w["errors"].values()),
                "rps": w["requests"] / max((w["stop_ns"] - w["start_ns"]) / 1e9, 1e-9),
                "cpu_user_s": w["cpu_user_s"],
                "cpu_sys_s": w["cpu_sys_s"],
                "cpu_wait_s": w.get("cpu_wait_s", 0.0),
                **({"perf": w["perf"]} if "perf" in w else {}),
            }
            for w in ws
        ],
        "client_cpu_s": cpu_s,
        "client_cpu_user_s": sum(w["cpu_user_s"] for w in ws),
        "client_cpu_sys_s": sum(w["cpu_sys_s"] for w in ws),
        "client_cpu_wait_s": wait_s,
        "client_cpu_us_per_request": cpu_s * 1e6 / requests if requests else None,
        "timeline": timeline,
        "interrupted": out.interrupted,
        "complete": not out.failed_workers and not out.interrupted,
        "worker_errors": out.failed_workers,
    }
    if plan.perf_stat is not None:
        doc["perf"] = perf.total([w["perf"] for w in ws if "perf" in w], plan.perf_stat.events,
                               plan.perf_stat.note)
        errors_perf = sorted({w["perf"]["error"] for w in ws if "error" in w.get("perf", {})})
        warnings += [f"--perf-stat: {e}" for e in errors_perf]
    if out.server_cpu is not None:
        doc["server_cpu"] = out.server_cpu
    if warnings:
        doc["warnings"] = warnings
    if plan.tags:
        doc["tags"] = dict(plan.tags)
    if plan.grpc:
        grpc = sum_counts(w.get("grpc_status") or {} for w in ws)
        # Numeric codes in order, then "missing" (calls that ended without grpc-status).
        doc["grpc_status"] = dict(sorted(grpc.items(), key=lambda kv: (not kv[0].isdigit(),
                                                                       int(kv[0]) if kv[0].isdigit() else 0)))
    doc.update(streaming.from_workers(ws))
    service = merge([w["service_histogram"] for w in ws])
    doc["service_time_us"] = summary_us(service)
    doc["service_time_histogram"] = encode(service)
    if plan.paced or plan.replay:
        _open_model(doc, plan, ws, duration_s, requests, cpu_s, wait_s)
    if plan.mix is not None:
        _by_request(doc, plan, ws, duration_s)
    if plan.phases:
        spans = [{"name": p.name, "kind": p.kind, "spec": p.spec, "start_s": p.start_ns / 1e9,
                  "end_s": None if p.end_ns is None else p.end_ns / 1e9} for p in plan.phases]
        doc["phases"], doc["fine_timeline"] = phases.build(spans, ws, duration_s, plan.recover)
    if out.hooks:
        doc["hooks"] = out.hooks
        doc.setdefault("warnings", []).extend(hook_warnings(out.hooks))
        if not doc["warnings"]:
            del doc["warnings"]
    return doc


def hook_warnings(hooks: list[dict]) -> list[str]:
    """One line per --at hook that failed, did not start, or had to be killed."""
    out = []
    for h in hooks:
        if h["exit_code"] != 0:
            what = "did not start" if h["start_s"] is None else (
                "was killed at the end of the run" if h["killed"] else f"exited with {h['exit_code']}")
            out.append(f"hook at {h['at_s']:g}s ({h['command']}) {what}")
    return out


def _by_request(doc: dict, plan, ws: list[dict], duration_s: float) -> None:
    """Per-variant results (by_request) and the response checks' totals (checks), merged
    exactly across workers: counters summed, histograms merged."""
    mix = plan.mix
    parts = [w["mix"] for w in ws if "mix" in w]
    total_weight = sum(v.weight for v in mix.variants) or 1.0
    sizes = mix.entry_sizes()
    entry_counts = [sum(p["entries"][e] for p in parts) for e in range(len(sizes))]
    by: dict[str, dict] = {}
    all_requests = sum(sum(p["variants"][i]["requests"] for p in parts) for i in range(len(mix.variants)))
    for i, v in enumerate(mix.variants):
        vs = [p["variants"][i] for p in parts]
        n = sum(x["requests"] for x in vs)
        hist = merge([x["histogram"] for x in vs])
        latency = summary_us(hist)
        if n:
            latency["mean"] = sum(x["sum_ns"] for x in vs) / n / 1e3
        errors = {k: sum(x["errors"].get(k, 0) for x in vs) for k in ERROR_CLASSES}
        status = sum_counts(x["status_codes"] for x in vs)
        mine = [e for e, (vi, _, _) in enumerate(mix.entries) if vi == i]
        entry = {
            "method": v.method,
            "path": v.path,
            "weight": v.weight,
            "share_expected": v.weight / total_weight,
            "share": n / all_requests if all_requests else 0.0,
            "requests": n,
            "rps": n / duration_s if duration_s else 0.0,
            "errors": {"total": sum(errors.values()), **errors},
            "status_codes": dict(sorted(status.items())),
            "latency_us": latency,
            "histogram": encode(hist),
            # Request body sizes actually sent (responses recorded), per the entries' counts.
            "body_bytes": size_summary([sizes[e] for e in mine], [entry_counts[e] for e in mine]),
        }
        if v.size is not None:
            entry["body_size_spec"] = v.size.describe()
            entry["body_pool"] = size_summary([sizes[e] for e in mine])
        if v.checks:
            checked = sum(p.get("checked", [0] * (i + 1))[i] for p in parts)
            failed = sum(p.get("failed", [0] * (i + 1))[i] for p in parts)
            names = sum_counts((p.get("by_check") or [{}] * (i + 1))[i] for p in parts)
            entry["checks"] = {"checked": checked, "failed": failed, "by_check": dict(sorted(names.items()))}
        by[v.name] = entry
    doc["by_request"] = by
    if mix.has_checks:
        doc["checks"] = {"sample": mix.sample, **checks_totals([e["checks"] for e in by.values() if "checks" in e])}
    raised = first_check_error(ws)
    if raised is not None:
        doc.setdefault("warnings", []).append(
            f"a response check raised {raised['type']}: {raised['message']} "
            f"({doc['errors']['check_error']} responses, counted as errors.check_error)")


def first_check_error(ws: list[dict]) -> dict | None:
    """The first exception a response check raised in any worker (type, message, traceback)."""
    return next((w["mix"]["check_error"] for w in ws if "check_error" in w.get("mix", {})), None)


def sum_counts(maps: Iterable[dict[str, int]]) -> dict[str, int]:
    """Counters by name (status codes, failed checks, ...) summed over workers, variants or hosts."""
    out: dict[str, int] = {}
    for m in maps:
        for k, v in m.items():
            out[k] = out.get(k, 0) + v
    return out


def checks_totals(parts: list[dict]) -> dict:
    """checked, failed, failure_rate and by_check of several checks sections (variants, hosts)."""
    checked = sum(c["checked"] for c in parts)
    failed = sum(c["failed"] for c in parts)
    return {"checked": checked, "failed": failed, "failure_rate": failed / checked if checked else 0.0,
            "by_check": dict(sorted(sum_counts(c.get("by_check", {}) for c in parts).items()))}


def _open_model(doc: dict, plan, ws: list[dict], duration_s: float, requests: int, cpu_s: float,
                wait_s: float) -> None:
    """Rate accounting and the generator's verdict on itself (is the client the bottleneck?)."""
    lag_hist = merge([w["lag_histogram"] for w in ws])
    lag = summary_us(lag_hist)
    doc["schedule_lag_us"] = lag
    doc["schedule_lag_histogram"] = encode(lag_hist)  # so that merged runs keep it exact
    measured = [(d, r0, r1) for d, r0, r1 in plan.stages]
    total_ns = sum(d for d, _, _ in measured)
    planned = sum(d / 1e9 * (r0 + r1) / 2 for d, r0, r1 in measured)
    target = planned / (total_ns / 1e9) if total_ns else 0.0
    if plan.replay:
        # The trace's own average rate over its span (as scaled by --replay-speed).
        span_s = plan.mix.offsets_ns[-1] / 1e9
        target = len(plan.mix.offsets_ns) / span_s if span_s > 0 else 0.0
    if plan.requests is not None and plan.rate is not None and len(plan.stages) == 1:
        target = plan.rate
    backlog = sum(w["backlog"] for w in ws)
    achieved = requests / duration_s if duration_s else 0.0
    doc["rate"] = {
        "target": target,
        "achieved": achieved,
        "scheduled": sum(w["scheduled"] for w in ws),
        "backlog": backlog,
        "max_queue_delay_us": max((w["max_queue_delay_ns"] for w in ws), default=0) / 1e3,
    }
    warnings = doc.setdefault("warnings", [])
    # Time waiting for a CPU held by another process counts as busy: a starved worker sends
    # late just like one that is short of CPU time.
    busy = (cpu_s + wait_s) / (duration_s * max(len(ws), 1)) if duration_s else 0.0
    doc["rate"]["worker_busy"] = busy
    # A worker busy nearly all the time sends late because of itself: the latency it reports
    # then includes the client's own delay. (Lag from waiting for a free connection is the
    # open model working as intended and is reported as queueing, below.)
    saturated = busy > 0.85
    doc["generator_saturated"] = saturated
    if saturated:
        warnings.append(f"generator saturated: workers busy {busy:.0%} of the time, schedule lag "
                        f"p99 {lag['p99'] / 1e3:.1f} ms; add workers or CPUs")
    # A replay's duration includes waiting for the last responses: its average is not a rate test.
    if backlog > 0.001 * max(doc["rate"]["scheduled"], 1) or (achieved < 0.98 * target and not plan.replay):
        warnings.append(f"target rate {target:.0f}/s not reached ({achieved:.0f}/s, {backlog} requests"
                        " never sent): not enough connections/streams, or the server is too slow")

"""`fastload merge`: several result documents (one per host, or per run) into one, exactly:
histograms merged bucket by bucket, counters summed, timelines aligned by wall time."""

from __future__ import annotations

import json
import math

from fastload import __version__
from fastload.errors import UsageError
from fastload.results import perf, phases, streaming
from fastload.results.document import SCHEMA, checks_totals, sum_counts
from fastload.results.histogram import decode, encode, merge, percentiles_us, summary_us


def load(path: str) -> dict:
    try:
        with open(path) as f:
            doc = json.load(f)
    except OSError as e:
        raise UsageError(f"{path}: cannot read: {e.strerror}") from None
    except ValueError as e:
        raise UsageError(f"{path}: not JSON: {e}") from None
    return check_document(doc, path)


def check_document(doc: object, path: str) -> dict:
    """doc itself when it is a result document with the fields merging and comparing need."""
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        found = doc.get("schema") if isinstance(doc, dict) else None
        raise UsageError(f"{path}: schema {found!r} is not {SCHEMA!r}")
    for key in ("requests", "histogram", "started_at", "duration_s", "target"):
        if key not in doc:
            raise UsageError(f"{path}: missing field {key!r}")
    return doc


def check_same_target(docs: list[dict], paths: list[str], force: bool) -> None:
    urls = {d["target"]["url"] for d in docs}
    if len(urls) > 1 and not force:
        raise UsageError("results are for different targets (" + ", ".join(sorted(urls)) +
                         "); use --force to combine them anyway")


# Client CPU adds up across hosts (unlike a shared server's CPU, kept per input).
CLIENT_CPU_KEYS = ("client_cpu_s", "client_cpu_user_s", "client_cpu_sys_s", "client_cpu_wait_s")


def merge_documents(docs: list[dict]) -> dict:
    start = min(d["started_at"] for d in docs)
    end = max(d["started_at"] + d["duration_s"] for d in docs)
    duration_s = max(end - start, 1e-9)
    requests = sum(d["requests"] for d in docs)
    hist = merge([d["histogram"] for d in docs])
    latency = summary_us(hist)
    if requests and all("latency_sum_ns" in d for d in docs):
        sum_ns = sum(d["latency_sum_ns"] for d in docs)
        sumsq = sum(d["latency_sumsq_ns"] for d in docs)
        mean = sum_ns / requests
        latency["mean"] = mean / 1e3
        latency["stdev"] = math.sqrt(max(sumsq / requests - mean * mean, 0.0)) / 1e3
    if requests:
        latency["min"] = min(d["latency_us"]["min"] for d in docs if d["requests"])
        latency["max"] = max(d["latency_us"]["max"] for d in docs if d["requests"])
    errors = sum_counts(d.get("errors", {}) for d in docs)
    status = sum_counts(d.get("status_codes", {}) for d in docs)
    out = {
        "schema": SCHEMA,
        "version": __version__,
        "target": docs[0]["target"],
        "config": docs[0].get("config", {}),
        # Each input's server CPU stays with it: hosts loading one server all measured that
        # server over the same interval, so a sum would count it several times.
        "merged_from": [{"target": d["target"], "started_at": d["started_at"],
                         "requests": d["requests"], "tags": d.get("tags", {}),
                         **({"server_cpu": d["server_cpu"]} if "server_cpu" in d else {})}
                        for d in docs],
        "started_at": start,
        "duration_s": duration_s,
        "requests": requests,
        "rps": requests / duration_s,
        "bytes_in": sum(d.get("bytes_in", 0) for d in docs),
        "bytes_out": sum(d.get("bytes_out", 0) for d in docs),
        "status_codes": dict(sorted(status.items())),
        "errors": errors,
        "latency_us": latency,
        "histogram": encode(hist),
        "latency_sum_ns": sum(d.get("latency_sum_ns", 0) for d in docs),
        "latency_sumsq_ns": sum(d.get("latency_sumsq_ns", 0) for d in docs),
        "workers": [w for d in docs for w in d.get("workers", [])],
        "timeline": _merge_timelines(docs, start),
        "interrupted": any(d.get("interrupted") for d in docs),
        "complete": all(d.get("complete", True) for d in docs),
    }
    for key in CLIENT_CPU_KEYS:
        if all(key in d for d in docs):
            out[key] = sum(d[key] for d in docs)
    if "client_cpu_s" in out:
        out["client_cpu_us_per_request"] = out["client_cpu_s"] * 1e6 / requests if requests else None
    if all("service_time_histogram" in d for d in docs):
        service = merge([d["service_time_histogram"] for d in docs])
        out["service_time_us"] = summary_us(service)
        out["service_time_histogram"] = encode(service)
    out.update(streaming.from_documents(docs))
    perf = _merge_perf(docs)
    if perf is not None:
        out["perf"] = perf
    tags: dict[str, str] = {}
    for d in docs:
        tags.update(d.get("tags", {}))
    if tags:
        out["tags"] = tags
    if any("by_request" in d for d in docs):
        out["by_request"] = _merge_by_request(docs, duration_s)
    if any("checks" in d for d in docs):
        out["checks"] = _merge_checks([d["checks"] for d in docs if "checks" in d])
    if any("grpc_status" in d for d in docs):
        out["grpc_status"] = sum_counts(d.get("grpc_status", {}) for d in docs)
    if any("rate" in d for d in docs):
        _merge_open_model(out, docs)
    if any(d.get("phases") for d in docs):
        out["phases"], out["fine_timeline"] = phases.merge_documents(docs)
    return out


def _merge_open_model(out: dict, docs: list[dict]) -> None:
    """The open-model accounting of inputs that ran at the same time (hosts sharing one run's
    rate): targets and counts add up, the worst queueing and busyness are kept."""
    rates = [d["rate"] for d in docs if "rate" in d]
    out["rate"] = {
        "target": sum(r["target"] for r in rates),
        "achieved": out["rps"],
        "scheduled": sum(r["scheduled"] for r in rates),
        "backlog": sum(r["backlog"] for r in rates),
        "max_queue_delay_us": max(r["max_queue_delay_us"] for r in rates),
        "worker_busy": max(r.get("worker_busy", 0.0) for r in rates),
    }
    out["generator_saturated"] = any(d.get("generator_saturated") for d in docs)
    lags = [d.get("schedule_lag_histogram") for d in docs if "rate" in d]
    if all(lags):
        lag = merge(lags)
        out["schedule_lag_us"] = summary_us(lag)
        out["schedule_lag_histogram"] = encode(lag)


def _merge_checks(parts: list[dict]) -> dict:
    out = checks_totals(parts)
    samples = {c.get("sample") for c in parts}
    if len(samples) == 1:
        out = {"sample": samples.pop(), **out}
    return out


def _merge_by_request(docs: list[dict], duration_s: float) -> dict:
    """Per-variant results of every input, by request name: counters summed, histograms merged
    exactly; the mean is recomputed from the inputs' means weighted by their counts."""
    names: list[str] = []
    for d in docs:
        names += [n for n in d.get("by_request", {}) if n not in names]
    total = sum(r["requests"] for d in docs for r in d.get("by_request", {}).values())
    out: dict[str, dict] = {}
    for name in names:
        parts = [d["by_request"][name] for d in docs if name in d.get("by_request", {})]
        n = sum(p["requests"] for p in parts)
        hist = merge([p["histogram"] for p in parts])
        latency = summary_us(hist)
        if n:
            latency["mean"] = sum(p["latency_us"].get("mean", 0.0) * p["requests"] for p in parts) / n
        entry = {k: parts[0][k] for k in ("method", "path", "weight", "share_expected") if k in parts[0]}
        entry.update({
            "share": n / total if total else 0.0,
            "requests": n,
            "rps": n / duration_s if duration_s else 0.0,
            "errors": sum_counts(p["errors"] for p in parts),
            "status_codes": dict(sorted(sum_counts(p["status_codes"] for p in parts).items())),
            "latency_us": latency,
            "histogram": encode(hist),
        })
        if any("checks" in p for p in parts):
            entry["checks"] = _merge_checks([p["checks"] for p in parts if "checks" in p])
            entry["checks"].pop("failure_rate", None)
        out[name] = entry
    return out


def _merge_perf(docs: list[dict]) -> dict | None:
    """The clients' perf counters summed over the inputs (each counted its own workers), when
    all inputs counted the same events; a counter missing anywhere is None, not a partial sum."""
    perfs = [d.get("perf") for d in docs]
    if not all(perfs) or len({tuple(p.get("events", ())) for p in perfs}) != 1:
        return None
    # The inputs' totals sum like a run's workers do.
    notes = sorted({p["note"] for p in perfs if p.get("note")})
    return perf.total(perfs, perfs[0]["events"], "; ".join(notes) or None)


def _merge_timelines(docs: list[dict], start: float) -> list[dict]:
    """Per-second intervals of every input placed on one wall-clock axis (second boundaries of
    the earliest start); intervals of different inputs in the same second are merged."""
    slots: dict[int, list[dict]] = {}
    for d in docs:
        for iv in d.get("timeline", []):
            t = round(d["started_at"] + iv["t"] - start)
            slots.setdefault(t, []).append(iv)
    out = []
    for t in sorted(slots):
        ivs = slots[t]
        requests = sum(iv["requests"] for iv in ivs)
        entry = {"t": t, "requests": requests, "errors": sum(iv["errors"] for iv in ivs),
                 "rps": float(requests), "p50_us": None, "p99_us": None}
        blobs = [iv.get("histogram") for iv in ivs if iv.get("histogram")]
        if blobs:
            h = merge(blobs)
            if h.get_total_count():
                entry["p50_us"], entry["p99_us"] = percentiles_us(h, (50.0, 99.0))
            entry["histogram"] = encode(h)
        out.append(entry)
    return out


__all__ = ["load", "check_document", "merge_documents", "check_same_target", "decode"]

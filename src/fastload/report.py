"""Formats a result document for people (wrk-like) and for tools (JSON). Only formats."""

from __future__ import annotations

import json

from .units import format_bytes, format_count, format_us


def to_json(doc: dict) -> str:
    return json.dumps(doc, indent=2, sort_keys=False) + "\n"


def summary(doc: dict) -> str:
    lat = doc["latency_us"]
    cfg = doc["config"]
    conc = f"{cfg['connections']} connections"
    if doc["target"]["protocol"] == "h2":
        conc += f" x {cfg['streams']} streams"
    elif cfg["pipeline"] > 1:
        conc += f", pipeline {cfg['pipeline']}"
    lines = [
        f"Running {doc['duration_s']:.2f}s test @ {doc['target']['url']} ({doc['target']['protocol']})",
        f"  {cfg['workers']} workers and {conc}",
        "  Latency      min        mean       stdev      max",
        "           " + "".join(f"{format_us(lat[k]):>11}" for k in ("min", "mean", "stdev", "max")),
        "  Latency distribution",
    ]
    for key in ("p50", "p90", "p99", "p99.9"):
        lines.append(f"    {key[1:] + '%':>6}  {format_us(lat[key])}")
    secs = doc["duration_s"] or 1.0
    lines.append(f"  {doc['requests']} requests in {doc['duration_s']:.2f}s, "
                 f"{format_bytes(doc['bytes_in'])} read")
    if doc["status_codes"]:
        lines.append("  Status codes: " + ", ".join(f"{k}: {v}" for k, v in doc["status_codes"].items()))
    err = doc["errors"]
    if err["total"]:
        lines.append("  Errors: " + ", ".join(f"{k} {v}" for k, v in err.items() if k != "total" and v)
                     + f" (total {err['total']})")
    lines.append(f"Requests/sec: {doc['rps']:>12.2f}")
    lines.append(f"Transfer/sec: {format_bytes(doc['bytes_in'] / secs):>12}")
    if doc.get("client_cpu_us_per_request"):
        lines.append(f"Client CPU:   {doc['client_cpu_us_per_request']:.2f}us/request")
    if doc.get("slo"):
        lines.append("SLO:")
        for row in doc["slo"]:
            value = "n/a" if row["value"] is None else f"{row['value']:.6g}"
            lines.append(f"  {'PASS' if row['passed'] else 'FAIL'}  {row['expr']:<24} value {value}")
        lines.append(f"SLO verdict: {'PASS' if doc['passed'] else 'FAIL'}")
    if doc.get("interrupted"):
        lines.append("Interrupted: partial results.")
    for w in doc.get("worker_errors", []):
        lines.append(f"Worker {w['index']} failed: {w['error']}")
    return "\n".join(lines) + "\n"


def progress_line(elapsed_s: float, rps: float, p99_us: float | None, errors: int) -> str:
    p99 = format_us(p99_us) if p99_us is not None else "-"
    return f"[{elapsed_s:5.0f}s] {format_count(rps):>8} req/s  p99 {p99:>9}  errors {errors}"

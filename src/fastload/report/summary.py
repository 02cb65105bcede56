"""Formats a result document for people (wrk-like) and for tools (JSON). Only formats."""

from __future__ import annotations

import datetime

from fastload.errors import error_rate
from fastload.results.histogram import decode
from fastload.units import format_bytes, format_count, format_us


def _on_hosts(doc: dict) -> str:
    hosts = doc.get("hosts")
    if not hosts:
        return ""
    lost = sum(1 for h in hosts if h["lost"])
    return f" on {len(hosts)} hosts" + (f" ({lost} lost)" if lost else "")


def _hosts_table(hosts: list[dict]) -> list[str]:
    lines = ["  Hosts        requests     errors   req/s    offset      start skew"]
    for h in hosts:
        skew = "-" if h["start_skew_ms"] is None else f"{h['start_skew_ms']:.2f}ms"
        lines.append(f"    {h['name'][:10]:<10}{h['requests']:>10}{h['errors']:>11}{h['rps']:>9.0f}"
                     f"{h['clock_offset_ms']:>+9.2f}ms{skew:>14}" + ("  LOST" if h["lost"] else ""))
    return lines


def summary(doc: dict) -> str:
    lat = doc["latency_us"]
    cfg = doc["config"]
    conc = f"{cfg['connections']} connections"
    if doc["target"]["protocol"] in ("h2", "h3"):
        conc += f" x {cfg['streams']} streams"
    elif cfg["pipeline"] > 1:
        conc += f", pipeline {cfg['pipeline']}"
    lines = [
        f"Running {doc['duration_s']:.2f}s test @ {doc['target']['url']} ({doc['target']['protocol']})",
        f"  {cfg['workers']} workers{_on_hosts(doc)} and {conc}",
        "  Latency      min        mean       stdev      max",
        "           " + "".join(f"{format_us(lat[k]):>11}" for k in ("min", "mean", "stdev", "max")),
        "  Latency distribution",
    ]
    for key in ("p50", "p90", "p99", "p99.9"):
        lines.append(f"    {key[1:] + '%':>6}  {format_us(lat[key])}")
    secs = doc["duration_s"] or 1.0
    lines.append(f"  {doc['requests']} requests in {doc['duration_s']:.2f}s, "
                 f"{format_bytes(doc['bytes_in'])} read")
    if doc.get("hosts"):
        lines += _hosts_table(doc["hosts"])
    if doc["status_codes"]:
        lines.append("  Status codes: " + ", ".join(f"{k}: {v}" for k, v in doc["status_codes"].items()))
    if doc.get("grpc_status"):
        lines.append("  gRPC status: " + ", ".join(f"{k}: {v}" for k, v in doc["grpc_status"].items()))
    lines += streaming_lines(doc)
    err = doc["errors"]
    if err["total"]:
        lines.append("  Errors: " + ", ".join(f"{k} {v}" for k, v in err.items() if k != "total" and v)
                     + f" (total {err['total']})")
    lines.append(f"Requests/sec: {doc['rps']:>12.2f}")
    lines.append(f"Transfer/sec: {format_bytes(doc['bytes_in'] / secs):>12}")
    if "rate" in doc:
        r = doc["rate"]
        lag = doc["schedule_lag_us"]
        lines.append(f"Rate:         target {r['target']:.1f}/s, achieved {r['achieved']:.1f}/s, "
                     f"max queue delay {format_us(r['max_queue_delay_us'])}, schedule lag p99 "
                     f"{format_us(lag['p99'])}")
        st = doc["service_time_us"]
        lines.append(f"Service time: p50 {format_us(st['p50'])}, p99 {format_us(st['p99'])}, "
                     f"max {format_us(st['max'])} (from actual send; latency above counts from the"
                     " intended send)")
    if doc.get("client_cpu_us_per_request"):
        line = f"Client CPU:   {doc['client_cpu_us_per_request']:.2f}us/request"
        if "client_cpu_user_s" in doc:
            line += f" ({doc['client_cpu_user_s']:.2f}s user, {doc['client_cpu_sys_s']:.2f}s sys)"
        lines.append(line)
    server = doc.get("server_cpu")
    if server and server["cpu_us_per_request"] is not None:
        lines.append(f"Server CPU:   {server['cpu_us_per_request']:.2f}us/request "
                     f"({server['cpu_s']:.2f}s, pid {server['pid']})")
    if doc.get("perf"):
        lines.append("Perf stat:    " + perf_line(doc["perf"]))
    if doc.get("by_request"):
        lines += by_request_lines(doc)
    if doc.get("checks"):
        c = doc["checks"]
        failing = ", ".join(f"{k} {v}" for k, v in c["by_check"].items())
        lines.append(f"Checks:       {c['checked']} checked (sample {c['sample']:g}), {c['failed']} failed"
                     f" ({c['failure_rate']:.3%})" + (f": {failing}" if failing else ""))
    if doc.get("phases"):
        lines += phase_lines(doc["phases"])
    for h in doc.get("hooks", []):
        ran = "not started" if h["start_s"] is None else (
            f"at {h['start_s']:.3f}s, {h['duration_s']:.3f}s, " + ("killed" if h["killed"] else f"exit {h['exit_code']}"))
        lines.append(f"Hook {h['at_s']:g}s: {h['command']} ({ran})")
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


def streaming_lines(doc: dict) -> list[str]:
    """Time to first byte/event, gaps and events per response, when some responses streamed."""
    ev = doc.get("events")
    if not ev:
        return []
    lines = [f"  Streams: {ev['streams']} responses, {ev['total']} events "
             f"(per response mean {ev['mean']:.1f}, p50 {ev['p50']}, max {ev['max']})"]
    for key, label in (("ttfb_us", "first byte"), ("ttfe_us", "first event"),
                       ("event_gap_us", "event gap")):
        t = doc.get(key)
        if t:
            lines.append(f"    {label:<12} " + ", ".join(f"{k} {format_us(t[k])}"
                                                       for k in ("p50", "p90", "p99", "max")))
    return lines


def phase_lines(phases: list[dict]) -> list[str]:
    """One line per phase (by intended send time), with each window's impact and recovery."""
    width = min(max(len(p["name"]) for p in phases), 32)
    out = [f"  {'Phase':<{width}} {'from':>7} {'to':>7} {'req/s':>9} {'p50':>10} {'p99':>10} "
           f"{'errors':>8}  {'p99 x':>6} {'degrade':>8} {'recover':>8}"]
    for p in phases:
        lat = p["latency_us"]
        err = error_rate(p)
        line = (f"  {p['name'][:width]:<{width}} {p['start_s']:>6.1f}s {p['end_s']:>6.1f}s "
                f"{format_count(p['rps']):>9} {format_us(lat['p50']) if p['requests'] else '-':>10} "
                f"{format_us(lat['p99']) if p['requests'] else '-':>10} {err:>8.3%}")
        if "time_to_recover_s" in p:
            ratio = (p.get("impact") or {}).get("p99")
            line += (f"  {'-' if ratio is None else f'{ratio:.1f}':>6} {_secs(p['time_to_degrade_s'], '-'):>8} "
                     f"{_secs(p['time_to_recover_s'], 'never'):>8}")
        out.append(line)
    return out


def _secs(v: float | None, none: str) -> str:
    return none if v is None else f"{v:.1f}s"


MAX_REQUEST_LINES = 20


def by_request_lines(doc: dict) -> list[str]:
    """One line per scenario variant: share of requests, rate, latency, errors."""
    rows = doc["by_request"]
    width = min(max(len(n) for n in rows), 40)
    out = [f"  {'Request':<{width}}  {'share':>6} {'req/s':>9} {'p50':>10} {'p99':>10} {'errors':>7}"]
    shown = list(rows.items())
    if len(shown) > MAX_REQUEST_LINES:
        # A trace may have hundreds of paths: the busiest here, all of them in the JSON.
        shown = sorted(shown, key=lambda kv: -kv[1]["requests"])[:MAX_REQUEST_LINES]
    for name, r in shown:
        lat = r["latency_us"]
        out.append(f"  {name[:width]:<{width}}  {r['share']:>6.1%} {format_count(r['rps']):>9} "
                   f"{format_us(lat['p50']) if r['requests'] else '-':>10} "
                   f"{format_us(lat['p99']) if r['requests'] else '-':>10} {r['errors']['total']:>7}")
    if len(rows) > len(shown):
        out.append(f"  ... and {len(rows) - len(shown)} more requests (by_request in the JSON)")
    return out


def perf_line(perf: dict) -> str:
    """The summed counters, one line: 'task-clock 812.30 msec, context-switches 41, ..., IPC 1.52'."""
    parts = []
    units = perf.get("units", {})
    for name, value in perf["counters"].items():
        if value is None:
            parts.append(f"{name} n/a")
        elif isinstance(value, float):
            parts.append(f"{name} {value:.2f}" + (f" {units[name]}" if name in units else ""))
        else:
            parts.append(f"{name} {value}" + (f" {units[name]}" if name in units else ""))
    if perf.get("ipc") is not None:
        parts.append(f"IPC {perf['ipc']:.2f}")
    return ", ".join(parts)


def hlog(intervals: list[dict], started_at: float, tags: dict[str, str]) -> str:
    """HdrHistogram interval log (format 1.2) of the per-second latency histograms, values in
    µs; readable by HdrHistogram's log readers and HistogramLogAnalyzer."""
    when = datetime.datetime.fromtimestamp(started_at, datetime.timezone.utc).isoformat()
    lines = ["#[Histogram log format version 1.2]",
             f"#[StartTime: {started_at:.3f} (seconds since epoch), {when}]",
             "#[Latency in microseconds, as recorded by fastload]"]
    if tags:
        lines.append("#[Tags: " + ", ".join(f"{k}={v}" for k, v in tags.items()) + "]")
    lines.append('"StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"')
    prev_t = None
    for iv in intervals:
        blob = iv.get("histogram")
        if not blob:
            continue
        start = float(iv["t"] - 1 if iv["t"] > 0 else 0)
        if prev_t is not None and start < prev_t:
            start = prev_t
        length = max(float(iv["t"]) - start, 0.001)
        prev_t = start + length
        # Interval_Max in milliseconds, the convention for µs-recorded logs.
        lines.append(f"{start:.3f},{length:.3f},{decode(blob).get_max_value() / 1000:.3f},{blob}")
    return "\n".join(lines) + "\n"


def progress_line(elapsed_s: float, rps: float, p99_us: float | None, errors: int) -> str:
    p99 = format_us(p99_us) if p99_us is not None else "-"
    return f"[{elapsed_s:5.0f}s] {format_count(rps):>8} req/s  p99 {p99:>9}  errors {errors}"

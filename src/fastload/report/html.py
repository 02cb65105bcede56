"""`fastload report --html`: one self-contained HTML page for a result document, optionally
against a baseline. Inline CSS and SVG only: no script, no font, no image, no network, so the
file opens anywhere and can be attached to a CI run. Only formats; every string taken from a
result document is HTML-escaped (tags, URLs and headers can contain anything)."""

from __future__ import annotations

import datetime
import json
import math
from html import escape

from fastload import __version__
from fastload.errors import error_rate
from fastload.report import plots as report_plots
from fastload.report.svg import Chart, Marker, Series, render

# Not `from . import compare`: the package attribute `compare` is the API function.
from fastload.results.compare import compare as compare_results
from fastload.results.compare import format_row
from fastload.results.slo import is_time_metric
from fastload.units import format_bytes, format_count, format_us

# The allowed regression of the comparison table, as `fastload compare` uses by default.
MAX_REGRESSION = 0.05

CSS = """
:root { --current: #1f77b4; --baseline: #ff7f0e; --fail: #c62828; --pass: #2e7d32; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222;
       margin: 0 auto; padding: 16px 24px 40px; max-width: 1200px; background: #fff; }
h1 { font-size: 22px; margin: 8px 0 2px; } h2 { font-size: 17px; margin: 28px 0 8px; }
.sub { color: #555; margin: 0 0 12px; word-break: break-all; }
.badge { display: inline-block; padding: 2px 10px; border-radius: 4px; color: #fff;
         font-weight: 600; margin-right: 8px; }
.pass { background: var(--pass); } .fail { background: var(--fail); }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 10px; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 8px 12px; }
.card .label { color: #666; font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.card .value { font-size: 20px; font-weight: 600; font-variant-numeric: tabular-nums; }
.card .base { color: #666; font-size: 12px; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 12px; }
svg.chart { width: 100%; height: auto; border: 1px solid #eee; border-radius: 6px; }
svg .chart-title { font-size: 15px; font-weight: 600; fill: #222; }
svg .tick { font-size: 11px; fill: #555; } svg .axis-label { font-size: 12px; fill: #333; }
svg .grid { stroke: #e6e6e6; stroke-width: 1; } svg .frame { fill: none; stroke: #999; }
svg .series { fill: none; stroke-width: 2; stroke-linejoin: round; }
svg .series.current { stroke: var(--current); }
svg .series.baseline { stroke: var(--baseline); stroke-dasharray: 6 4; }
svg .bar.current { fill: var(--current); } svg .bar.baseline { fill: var(--baseline); }
svg .legend text { font-size: 12px; fill: #333; }
svg .marker circle { fill: var(--current); } svg .marker text { font-size: 11px; fill: #333; }
table { border-collapse: collapse; margin: 4px 0 8px; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid #e3e3e3; padding: 4px 12px 4px 0; text-align: left;
         vertical-align: top; }
td.num, th.num { text-align: right; padding-left: 12px; }
td.PASS, td.ok { color: var(--pass); font-weight: 600; }
td.FAIL, td.REGRESSION { color: var(--fail); font-weight: 600; }
code { font-size: 13px; word-break: break-all; }
ul.warnings li { color: #8a4b00; } td.diff { background: #fff3cd; }
footer { color: #888; margin-top: 32px; font-size: 12px; }
svg.chart rect.window { fill: #f5a623; fill-opacity: 0.15; stroke: none; }
svg.chart text.window-label { font-size: 11px; fill: #a06000; }
"""


def render_page(doc: dict, baseline: dict | None = None, names: tuple[str, str] = ("current", "baseline"),
                max_regression: float = MAX_REGRESSION) -> str:
    """The whole page. names: legend texts of the result and the baseline (e.g. file names);
    max_regression: the allowed relative worsening the comparison judges by."""
    title = f"fastload report: {doc['target'].get('url', '')}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>",
        _header(doc, baseline),
        _headline(doc, baseline),
        _charts(doc, baseline, names),
    ]
    if baseline is not None:
        parts.append(_comparison(doc, baseline, max_regression))
    parts += [
        _latency_table(doc, baseline),
        _status_and_errors(doc, baseline),
        _by_request(doc),
        _phases(doc),
        _slo(doc),
        _warnings(doc),
        _config(doc, baseline),
        f"<footer>fastload {escape(__version__)} report of a {escape(str(doc.get('schema', '')))} "
        "document; latency in µs from the run's HdrHistogram.</footer>",
        "</body></html>",
    ]
    return "\n".join(p for p in parts if p) + "\n"


def _when(doc: dict) -> str:
    t = doc.get("started_at")
    if not isinstance(t, int | float):
        return ""
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _header(doc: dict, baseline: dict | None) -> str:
    target = doc.get("target", {})
    out = ["<header><h1>fastload report</h1>",
           f'<p class="sub"><code>{escape(str(target.get("url", "")))}</code> '
           f"({escape(str(target.get('protocol', '')))}), started {escape(_when(doc))}, "
           f"{doc['duration_s']:.2f}s</p>"]
    if baseline is not None:
        bt = baseline.get("target", {})
        out.append(f'<p class="sub">baseline: <code>{escape(str(bt.get("url", "")))}</code> '
                   f"({escape(str(bt.get('protocol', '')))}), started {escape(_when(baseline))}, "
                   f"{baseline['duration_s']:.2f}s</p>")
    badges = []
    if "passed" in doc:
        ok = bool(doc["passed"])
        badges.append(f'<span class="badge slo-verdict {"pass" if ok else "fail"}">SLO '
                      f"{'PASS' if ok else 'FAIL'}</span>")
    if doc.get("interrupted"):
        badges.append('<span class="badge fail">interrupted: partial results</span>')
    if badges:
        out.append("<p>" + "".join(badges) + "</p>")
    out.append("</header>")
    return "\n".join(out)


def _card(label: str, value: str, key: str, raw: float, base: str | None = None,
          change: float | None = None) -> str:
    # data-value carries the JSON's own number, so a reader (or a test) can match it exactly.
    extra = ""
    if base is not None:
        ch = f" ({change * 100:+.1f}%)" if change is not None and math.isfinite(change) else ""
        extra = f'<div class="base">baseline {escape(base)}{ch}</div>'
    return (f'<div class="card" data-key="{escape(key)}"><div class="label">{escape(label)}</div>'
            f'<div class="value" data-value="{escape(json.dumps(raw))}">{escape(value)}</div>'
            f"{extra}</div>")


def _change(cur: float, base: float) -> float | None:
    return (cur - base) / base if base else None


def _headline(doc: dict, baseline: dict | None) -> str:
    lat = doc["latency_us"]
    blat = baseline["latency_us"] if baseline else {}
    cards = [("requests", "Requests", doc["requests"], str(doc["requests"]),
              baseline["requests"] if baseline else None, str),
             ("rps", "Requests/s", doc["rps"], format_count(doc["rps"]),
              baseline["rps"] if baseline else None, format_count)]
    for key in ("p50", "p90", "p99", "p99.9", "max"):
        cards.append((key, key, lat[key], format_us(lat[key]),
                      blat.get(key) if baseline else None, format_us))
    errors = doc.get("errors", {}).get("total", 0)
    out = ['<section id="headline"><div class="cards">']
    for key, label, raw, text, braw, fmt in cards:
        base = fmt(braw) if braw is not None else None
        out.append(_card(label, text, key, raw, base, _change(raw, braw) if braw is not None else None))
    err_text = f"{errors} ({error_rate(doc) * 100:.3g}%)"
    out.append(_card("Errors", err_text, "errors", errors,
                     f"{baseline.get('errors', {}).get('total', 0)} "
                     f"({error_rate(baseline) * 100:.3g}%)" if baseline else None))
    secs = doc["duration_s"] or 1.0
    out.append(_card("Transfer/s", format_bytes(doc.get("bytes_in", 0) / secs), "transfer",
                     doc.get("bytes_in", 0) / secs))
    out.append("</div></section>")
    return "\n".join(out)


def _charts(doc: dict, baseline: dict | None, names: tuple[str, str]) -> str:
    docs = [(doc, names[0], "current")] + ([(baseline, names[1], "baseline")] if baseline else [])
    dists = [(report_plots.distribution(d), n, r) for d, n, r in docs]
    top = report_plots.x_limit(*[c for c, _, _ in dists])
    lat_unit = report_plots.latency_unit(*[y for c, _, _ in dists for _, y in c])
    ticks = [(10.0 ** k, report_plots.percentile_label(10.0 ** k))
             for k in range(round(math.log10(top)) + 1)]
    lat = doc["latency_us"]
    markers = [Marker(report_plots.percentile_x(p), float(lat[key]), f"{label} {format_us(lat[key])}")
               for label, key, p in report_plots.MARKERS
               if isinstance(lat.get(key), int | float) and doc["requests"]]  # none without data
    charts = [Chart(
        chart_id="latency-distribution", title="Latency by percentile",
        x_label="percentile", y_label=f"latency ({lat_unit[1]})",
        series=[Series(n, r, c, "data-values-us") for c, n, r in dists],
        x_range=(1.0, top), x_log=True, x_ticks=ticks, y_divisor=lat_unit[0], markers=markers)]
    tl = {key: [(report_plots.timeline(d, key), n, r) for d, n, r in docs]
          for key in ("rps", "p99_us", "errors")}
    t_end = max((p[-1][0] for key in tl for p, _, _ in tl[key] if p), default=1.0)
    p99_unit = report_plots.latency_unit(*[y for p, _, _ in tl["p99_us"] for _, y in p])
    for chart_id, key, title, y_label, divisor, bars in (
            ("rps-over-time", "rps", "Requests/s over time", "requests/s", 1.0, False),
            ("p99-over-time", "p99_us", "p99 latency over time", f"p99 ({p99_unit[1]})",
             p99_unit[0], False),
            ("errors-over-time", "errors", "Errors over time", "errors per second", 1.0, True)):
        charts.append(Chart(chart_id=chart_id, title=title, x_label="seconds since start",
                            y_label=y_label, series=[Series(n, r, p) for p, n, r in tl[key]],
                            x_range=(0.0, max(t_end, 1.0)), y_divisor=divisor, bars=bars,
                            shades=_window_shades(doc)))
    fine = [(report_plots.fine_timeline(d), n, r) for d, n, r in docs if d.get("fine_timeline")]
    if fine:
        # By intended send time, on run time (the windows' axis, after the warm-up).
        unit = report_plots.latency_unit(*[y for p, _, _ in fine for _, y in p])
        end = max((p[-1][0] + 0.1 for p, _, _ in fine if p), default=1.0)
        charts.append(Chart(chart_id="p99-per-100ms", title="p99 per 100 ms by intended send time",
                            x_label="seconds of run time (after the warm-up)", y_label=f"p99 ({unit[1]})",
                            series=[Series(n, r, p) for p, n, r in fine], x_range=(0.0, end),
                            y_divisor=unit[0], shades=_window_shades(doc, warmup=False)))
    return ('<section id="charts"><h2>Charts</h2><div class="charts">\n'
            + "\n".join(render(c) for c in charts) + "\n</div></section>")


def _window_shades(doc: dict, warmup: bool = True) -> list[tuple[float, float, str]]:
    """The windows on a chart's axis: the per-second timeline's starts before the warm-up
    (windows after it), the 100 ms timeline's at run time 0."""
    shift = float(doc.get("config", {}).get("warmup_s") or 0.0) if warmup else 0.0
    return [(p["start_s"] + shift, p["end_s"] + shift, p["name"])
            for p in doc.get("phases") or () if p["kind"] in ("phase", "fault")]


def _phases(doc: dict) -> str:
    phases = doc.get("phases")
    if not phases:
        return ""
    out = ['<section id="phases"><h2>Phases</h2><p>By intended send time; impact is the ratio to '
           'the baseline, recovery the time from the window\'s end to 3 intervals of 100 ms '
           'meeting the criterion' + (f" ({escape(', '.join(doc['config']['recover']))})"
                                       if doc.get("config", {}).get("recover") else "") + '.</p>',
           '<table class="phases"><tr><th>phase</th><th>kind</th><th class="num">from</th>'
           '<th class="num">to</th><th class="num">requests</th><th class="num">req/s</th>'
           '<th class="num">p50</th><th class="num">p99</th><th class="num">errors</th>'
           '<th class="num">p50 x</th><th class="num">p99 x</th><th class="num">p99.9 x</th>'
           '<th class="num">errors x</th><th class="num">degrade</th><th class="num">recover</th></tr>']
    for p in phases:
        lat = p["latency_us"]
        cells = [escape(p["name"]), escape(p["kind"] + (f" {p['spec']}" if p["spec"] else "")),
                 f"{p['start_s']:.1f}s", f"{p['end_s']:.1f}s", str(p["requests"]), f"{p['rps']:.1f}",
                 format_us(lat["p50"]) if p["requests"] else "-",
                 format_us(lat["p99"]) if p["requests"] else "-", f"{error_rate(p):.3%}"]
        if "time_to_recover_s" in p:
            impact = p.get("impact") or {}
            cells += ["-" if impact.get(k) is None else f"{impact[k]:.2f}"
                      for k in ("p50", "p99", "p99.9", "error_rate")]
            cells += ["-" if p["time_to_degrade_s"] is None else f"{p['time_to_degrade_s']:.1f}s",
                      "never" if p["time_to_recover_s"] is None else f"{p['time_to_recover_s']:.1f}s"]
        else:
            cells += [""] * 6
        out.append('<tr id="phase-' + escape(p["name"]) + '"><td>' + cells[0] + "</td><td>" + cells[1]
                   + "</td>" + "".join(f'<td class="num">{c}</td>' for c in cells[2:]) + "</tr>")
    out.append("</table></section>")
    return "\n".join(out)


def _comparison(doc: dict, baseline: dict, max_regression: float) -> str:
    verdict = compare_results(baseline, doc, max_regression)
    out = ['<section id="comparison"><h2>Against the baseline</h2>',
           '<table class="comparison"><tr><th>metric</th><th class="num">baseline</th>'
           '<th class="num">current</th><th class="num">change</th><th class="num">p-value</th>'
           '<th class="num">median change 95% CI</th><th>verdict</th></tr>']
    for row in verdict["rows"]:
        t = format_row(row)
        out.append(f"<tr><td>{escape(t['metric'])}</td><td class=\"num\">{escape(t['baseline'])}</td>"
                   f"<td class=\"num\">{escape(t['current'])}</td><td class=\"num\">"
                   f"{escape(t['change'])}</td><td class=\"num\">{escape(t['p_value'])}</td>"
                   f"<td class=\"num\">{escape(t['ci'])}</td><td class=\"{escape(t['verdict'].split()[0])}\">"
                   f"{escape(t['verdict'])}</td></tr>")
    out.append("</table>")
    note = f"allowed regression {max_regression * 100:g}%, significance {verdict['significance']}"
    if verdict["note"]:
        note += f"; {verdict['note']}"
    if doc.get("target", {}).get("url") != baseline.get("target", {}).get("url"):
        note += "; the two results are for different targets"
    out.append(f"<p>{escape(note)}. Verdict: <strong class=\"compare-verdict\">"
               f"{'REGRESSION' if verdict['regression'] else 'no significant regression'}"
               "</strong> (as <code>fastload compare</code> decides).</p></section>")
    return "\n".join(out)


def _latency_table(doc: dict, baseline: dict | None) -> str:
    cols = [("latency", doc["latency_us"])]
    if isinstance(doc.get("service_time_us"), dict) and "rate" in doc:
        # Only differs from latency in the open model (latency counts from the intended send).
        cols.append(("service time", doc["service_time_us"]))
    if baseline is not None:
        cols.append(("baseline latency", baseline["latency_us"]))
    out = ['<section id="latency"><h2>Latency</h2><table class="latency"><tr><th></th>'
           + "".join(f'<th class="num">{escape(n)}</th>' for n, _ in cols) + "</tr>"]
    for key in report_plots.LATENCY_KEYS:
        cells = []
        for _, lat in cols:
            v = lat.get(key)
            cells.append(f'<td class="num" data-value="{escape(json.dumps(v))}">'
                         f"{escape(format_us(v)) if isinstance(v, int | float) else '-'}</td>")
        out.append(f"<tr><th>{escape(key)}</th>{''.join(cells)}</tr>")
    out.append("</table>")
    if "rate" in doc and isinstance(doc["rate"], dict):
        r = doc["rate"]
        rows = [("target rate", f"{r.get('target', 0):.1f}/s"),
                ("achieved rate", f"{r.get('achieved', 0):.1f}/s"),
                ("never sent (backlog)", str(r.get("backlog", 0))),
                ("max queue delay", format_us(r.get("max_queue_delay_us", 0)))]
        out.append("<h2>Open model</h2><table>" + "".join(
            f"<tr><th>{escape(k)}</th><td class=\"num\">{escape(v)}</td></tr>" for k, v in rows)
            + "</table>")
    out.append("</section>")
    return "\n".join(out)


def _counts_table(table_id: str, title: str, cur: dict, base: dict | None) -> str:
    keys = list(cur) + [k for k in (base or {}) if k not in cur]
    total_c = sum(v for v in cur.values() if isinstance(v, int | float)) or 1
    head = f'<tr><th>{escape(title)}</th><th class="num">count</th><th class="num">share</th>'
    if base is not None:
        head += '<th class="num">baseline</th>'
    out = [f'<table id="{escape(table_id)}">{head}</tr>']
    for k in keys:
        v = cur.get(k, 0)
        row = (f"<tr><td>{escape(str(k))}</td><td class=\"num\">{escape(str(v))}</td>"
               f"<td class=\"num\">{v / total_c * 100:.2f}%</td>")
        if base is not None:
            row += f"<td class=\"num\">{escape(str(base.get(k, 0)))}</td>"
        out.append(row + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _status_and_errors(doc: dict, baseline: dict | None) -> str:
    out = ['<section id="responses"><h2>Responses</h2>']
    status = doc.get("status_codes", {})
    if status or (baseline and baseline.get("status_codes")):
        out.append(_counts_table("status-codes", "status", status,
                                 baseline.get("status_codes", {}) if baseline else None))
    else:
        out.append("<p>No responses.</p>")
    errors = {k: v for k, v in doc.get("errors", {}).items() if k != "total"}
    berrors = {k: v for k, v in baseline.get("errors", {}).items() if k != "total"} if baseline else None
    if any(errors.values()) or (berrors and any(berrors.values())):
        out.append(_counts_table("errors", "error", errors, berrors))
    else:
        out.append('<p id="errors">No errors.</p>')
    out.append("</section>")
    return "\n".join(out)


def _by_request(doc: dict) -> str:
    """Scenario/replay variants: share, rate, latency, errors, checks, body sizes sent."""
    rows = doc.get("by_request")
    if not rows:
        return ""
    out = ['<section id="by-request"><h2>Requests</h2><table class="by-request"><tr><th>request</th>'
           '<th class="num">share</th><th class="num">expected</th><th class="num">req/s</th>'
           '<th class="num">p50</th><th class="num">p99</th><th class="num">errors</th>'
           '<th class="num">checks failed</th><th class="num">body bytes p50 / max</th></tr>']
    for name, r in rows.items():
        lat = r.get("latency_us", {})
        n = r.get("requests", 0)
        checks = r.get("checks")
        body = r.get("body_bytes") or {}
        cells = [
            f"{r.get('share', 0.0):.1%}", f"{r.get('share_expected', 0.0):.1%}",
            f"{r.get('rps', 0.0):,.1f}",
            format_us(lat["p50"]) if n and "p50" in lat else "-",
            format_us(lat["p99"]) if n and "p99" in lat else "-",
            str(r.get("errors", {}).get("total", 0)),
            f"{checks['failed']} / {checks['checked']}" if checks else "-",
            f"{body['p50']} / {body['max']}" if body.get("count") else "-",
        ]
        out.append(f"<tr><td><code>{escape(str(name))}</code></td>"
                   + "".join(f'<td class="num">{escape(c)}</td>' for c in cells) + "</tr>")
    out.append("</table></section>")
    checks = doc.get("checks")
    if checks:
        failing = ", ".join(f"{k}: {v}" for k, v in checks.get("by_check", {}).items()) or "none"
        out.insert(-1, f'<p id="checks">Checks: {checks["checked"]} checked (sample {checks.get("sample", 1):g}), '
                       f'{checks["failed"]} failed; by check: {escape(failing)}</p>')
    return "\n".join(out)


def _slo(doc: dict) -> str:
    rows = doc.get("slo")
    if not rows:
        return ""
    out = ['<section id="slo"><h2>SLOs</h2><table class="slo"><tr><th>result</th><th>SLO</th>'
           '<th class="num">value</th><th class="num">threshold</th></tr>']
    for r in rows:
        verdict = "PASS" if r.get("passed") else "FAIL"
        value, thr = r.get("value"), r.get("threshold")
        # Time SLOs (latency, ttfb_, ttfe_, ...) hold µs; show them as the summary does (3859 -> 3.86ms).
        fmt = format_us if is_time_metric(str(r.get("metric", ""))) else (lambda v: f"{v:.6g}")
        value_s = fmt(value) if isinstance(value, int | float) else "n/a"
        thr_s = f"{r.get('op', '')} {fmt(thr)}" if isinstance(thr, int | float) else ""
        out.append(f'<tr><td class="{verdict}">{verdict}</td><td><code>{escape(str(r.get("expr", "")))}'
                   f'</code></td><td class="num">{escape(value_s)}</td><td class="num">'
                   f"{escape(thr_s)}</td></tr>")
    out.append("</table></section>")
    return "\n".join(out)


def _warnings(doc: dict) -> str:
    items = [str(w) for w in doc.get("warnings", [])]
    items += [f"worker {w.get('index')} failed: {w.get('error')}" for w in doc.get("worker_errors", [])
              if isinstance(w, dict)]
    if not items:
        return ""
    return ('<section id="warnings"><h2>Warnings</h2><ul class="warnings">'
            + "".join(f"<li>{escape(w)}</li>" for w in items) + "</ul></section>")


def _value(v: object) -> str:
    return v if isinstance(v, str) else json.dumps(v)


def _config(doc: dict, baseline: dict | None) -> str:
    out = ['<section id="config"><h2>Configuration</h2>']
    tags = doc.get("tags") or {}
    if tags:
        out.append('<table id="tags"><tr><th>tag</th><th>value</th></tr>' + "".join(
            f"<tr><td>{escape(str(k))}</td><td><code>{escape(_value(v))}</code></td></tr>"
            for k, v in tags.items()) + "</table>")
    cfg = doc.get("config") or {}
    bcfg = (baseline.get("config") or {}) if baseline else None
    keys = [k for k in cfg if k != "tags"] + [k for k in (bcfg or {}) if k not in cfg and k != "tags"]
    head = "<tr><th>setting</th><th>value</th>" + ("<th>baseline</th>" if bcfg is not None else "")
    rows = []
    for k in keys:
        row = f"<tr><td>{escape(str(k))}</td><td><code>{escape(_value(cfg.get(k)))}</code></td>"
        if bcfg is not None:
            differs = ' class="diff"' if bcfg.get(k) != cfg.get(k) else ""
            row += f"<td{differs}><code>{escape(_value(bcfg.get(k)))}</code></td>"
        rows.append(row + "</tr>")
    out.append(f'<table id="settings">{head}</tr>{"".join(rows)}</table>')
    extra = [("fastload version", doc.get("version")), ("client CPU per request (µs)",
             doc.get("client_cpu_us_per_request")), ("workers", len(doc.get("workers", [])) or None)]
    out.append("<table>" + "".join(f"<tr><td>{escape(k)}</td><td>{escape(_value(v))}</td></tr>"
                                   for k, v in extra if v is not None) + "</table>")
    out.append("</section>")
    return "\n".join(out)

"""Per-phase results and recovery figures (--phase and --fault windows).

The workers count every outcome in the phase and in the 100 ms interval of its request's
intended send time (the scheduled time in the open model, the send time in the closed one).
Here those counts are merged across workers into the document's `phases` and `fine_timeline`,
and each window gets its impact against the baseline and the times to degrade and recover.
Pure functions of plain data: the recovery rules are tested on synthetic timelines too."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

from hdrh.histogram import HdrHistogram

from fastload.errors import ERROR_CLASSES, attempts, error_rate
from fastload.results import slo
from fastload.results.histogram import encode, merge, percentiles_us, summary_us

FINE_S = 0.1
# The 100 ms histograms' layout (the workers' fine_layout): 2 significant digits keep an
# interval's memory small; p99 to 1% is plenty to judge a 1.5x criterion.
FINE_SIGFIGS = 2
# Consecutive intervals that must meet the criterion for the service to count as recovered.
RECOVERED_AFTER = 3
WINDOW_KINDS = ("phase", "fault")

Criterion = Callable[[dict], bool]


def is_window(phase: dict) -> bool:
    return phase["kind"] in WINDOW_KINDS


def build(spans: Sequence[dict], workers: Sequence[dict], duration_s: float,
          recover: Sequence[str] = ()) -> tuple[list[dict], list[dict]]:
    """(phases, fine_timeline) of a run. spans: the phases as planned, in order, each
    {name, kind, spec, start_s, end_s} (end_s None: until the end of the run); workers: their
    raw results, each with "phases" (per span, same order) and "fine" (100 ms intervals)."""
    phases = []
    for i, span in enumerate(spans):
        parts = [w["phases"][i] for w in workers if "phases" in w]
        end_s = span["end_s"] if span["end_s"] is not None else max(duration_s, span["start_s"])
        phases.append(_phase(span, end_s, parts))
    timeline = fine_timeline(workers, max(duration_s, phases[-1]["end_s"] if phases else 0.0))
    figures(phases, timeline, recover)
    return phases, timeline


def _phase(span: dict, end_s: float, parts: list[dict]) -> dict:
    requests = sum(p["requests"] for p in parts)
    hist = merge(p["histogram"] for p in parts)
    latency = summary_us(hist)
    if requests:
        latency["mean"] = sum(p["sum_ns"] for p in parts) / requests / 1e3
    errors = {k: sum(p["errors"].get(k, 0) for p in parts) for k in ERROR_CLASSES}
    status: dict[str, int] = {}
    for p in parts:
        for code, n in p["status_codes"].items():
            status[code] = status.get(code, 0) + n
    length = end_s - span["start_s"]
    return {
        "name": span["name"],
        "kind": span["kind"],
        "spec": span["spec"],
        "start_s": span["start_s"],
        "end_s": end_s,
        "requests": requests,
        "rps": requests / length if length > 0 else 0.0,
        "errors": {"total": sum(errors.values()), **errors},
        "status_codes": dict(sorted(status.items())),
        "latency_us": latency,
        "histogram": encode(hist),
    }


def fine_timeline(workers: Iterable[dict], duration_s: float) -> list[dict]:
    """Every 100 ms interval from 0 to the end of the run, by intended send time, merged
    across workers: requests, errors by class, p50/p99/p99.9 and the interval's histogram."""
    by_index: dict[int, list[tuple[int, dict, str | bytes]]] = {}
    for w in workers:
        for index, requests, errors, blob in w.get("fine", ()):
            by_index.setdefault(index, []).append((requests, errors, blob))
    n = max(math.ceil(duration_s / FINE_S - 1e-9), max(by_index, default=-1) + 1)
    out = []
    for i in range(n):
        parts = by_index.get(i, [])
        requests = sum(p[0] for p in parts)
        errors = {k: sum(p[1].get(k, 0) for p in parts) for k in ERROR_CLASSES}
        entry: dict = {"t": round(i * FINE_S, 1), "requests": requests, "rps": requests / FINE_S,
                       "errors": {"total": sum(errors.values()), **{k: v for k, v in errors.items() if v}}}
        if requests:
            h = HdrHistogram(1, 60_000_000, FINE_SIGFIGS)
            for p in parts:
                h.add(HdrHistogram.decode(p[2]))
            p50, p99, p999 = percentiles_us(h, (50.0, 99.0, 99.9))
            entry["latency_us"] = {"p50": p50, "p99": p99, "p99.9": p999}
            entry["histogram"] = encode(h)
        out.append(entry)
    return out


def default_criterion(baseline: dict) -> Criterion:
    """p99 <= max(1.5 x the baseline's p99, the baseline's p99 + 1 ms), and an error rate
    <= the baseline's + 0.1 percentage points. An interval with nothing in it does not meet it:
    nothing answered is no sign of health."""
    b99 = baseline["latency_us"]["p99"]
    limit_us = max(1.5 * b99, b99 + 1000.0)
    limit_rate = error_rate(baseline) + 0.001

    def meets(entry: dict) -> bool:
        if attempts(entry) <= 0:
            return False
        if error_rate(entry) > limit_rate:
            return False
        return not entry["requests"] or entry["latency_us"]["p99"] <= limit_us

    return meets


def slo_criterion(exprs: Sequence[str]) -> Criterion:
    """--recover EXPR...: every expression holds for the interval (SLO syntax, per interval)."""
    gates = [slo.parse(e, what="--recover") for e in exprs]

    def meets(entry: dict) -> bool:
        return attempts(entry) > 0 and all(g.check(entry)["passed"] for g in gates)

    return meets


def time_to_degrade(timeline: Sequence[dict], start_s: float, until_s: float, meets: Criterion) -> float | None:
    """From start_s to the first interval (starting at or after it, ending by until_s: the
    window's end) that breaks the criterion; None if none does."""
    for i in range(_first_at(start_s), _end_before(until_s, len(timeline))):
        if not meets(timeline[i]):
            return max(round(i * FINE_S - start_s, 6), 0.0)
    return None


def time_to_recover(timeline: Sequence[dict], end_s: float, until_s: float, meets: Criterion) -> float | None:
    """From end_s to the start of the first RECOVERED_AFTER consecutive intervals, all starting
    at or after end_s and ending by until_s, that meet the criterion; None if none do."""
    stop = _end_before(until_s, len(timeline))
    run = 0
    for i in range(_first_at(end_s), stop):
        run = run + 1 if meets(timeline[i]) else 0
        if run == RECOVERED_AFTER:
            return max(round((i - RECOVERED_AFTER + 1) * FINE_S - end_s, 6), 0.0)
    return None


def _first_at(t_s: float) -> int:
    """The first interval that starts at or after t_s."""
    return math.ceil(t_s / FINE_S - 1e-9)


def _end_before(t_s: float, n: int) -> int:
    """One past the last interval that ends by t_s."""
    return min(math.floor(t_s / FINE_S + 1e-9), n)


def impact(window: dict, baseline: dict) -> dict:
    """The window's p50, p99, p99.9 and error rate as ratios to the baseline's (None when the
    baseline's is 0 and the window's is not: no finite ratio)."""
    out = {}
    for key in ("p50", "p99", "p99.9"):
        out[key] = _ratio(window["latency_us"][key], baseline["latency_us"][key])
    out["error_rate"] = _ratio(error_rate(window), error_rate(baseline))
    return out


def _ratio(a: float, b: float) -> float | None:
    if b:
        return a / b
    return 1.0 if not a else None


def figures(phases: list[dict], timeline: Sequence[dict], recover: Sequence[str] = ()) -> None:
    """Adds impact, time_to_degrade_s and time_to_recover_s to each window of phases (in place).
    Without a baseline (a window from 0) and without --recover there is nothing to compare with:
    the figures are None."""
    baseline = next((p for p in phases if p["kind"] == "baseline"), None)
    meets: Criterion | None = None
    if recover:
        meets = slo_criterion(recover)
    elif baseline is not None and baseline["requests"]:
        meets = default_criterion(baseline)
    windows = [i for i, p in enumerate(phases) if is_window(p)]
    end_of_run = phases[-1]["end_s"] if phases else 0.0
    for k, i in enumerate(windows):
        w = phases[i]
        # A window's own figures stop where the next window begins.
        until = phases[windows[k + 1]]["start_s"] if k + 1 < len(windows) else end_of_run
        has_base = baseline is not None and baseline["requests"] > 0
        w["impact"] = impact(w, baseline) if has_base else None
        # Degrading is judged inside the window; recovering, up to the next window.
        w["time_to_degrade_s"] = None if meets is None else time_to_degrade(timeline, w["start_s"], w["end_s"], meets)
        w["time_to_recover_s"] = None if meets is None else time_to_recover(timeline, w["end_s"], until, meets)


def merge_documents(docs: Sequence[dict]) -> tuple[list[dict], list[dict]]:
    """phases and fine_timeline of several documents (hosts loading one service on a shared
    clock, or repeated runs): per phase name, counts summed and histograms merged exactly; the
    100 ms intervals by their run time; then the windows' figures computed again."""
    names: list[str] = []
    for d in docs:
        names += [p["name"] for p in d.get("phases") or () if p["name"] not in names]
    phases = []
    for name in names:
        parts = [p for d in docs for p in d.get("phases") or () if p["name"] == name]
        first = parts[0]
        requests = sum(p["requests"] for p in parts)
        hist = merge(p["histogram"] for p in parts)
        latency = summary_us(hist)
        if requests:
            latency["mean"] = sum(p["latency_us"].get("mean", 0.0) * p["requests"] for p in parts) / requests
        errors: dict[str, int] = {}
        status: dict[str, int] = {}
        for p in parts:
            for k, v in p["errors"].items():
                errors[k] = errors.get(k, 0) + v
            for k, v in p["status_codes"].items():
                status[k] = status.get(k, 0) + v
        end_s = max(p["end_s"] for p in parts)
        length = end_s - first["start_s"]
        phases.append({"name": name, "kind": first["kind"], "spec": first["spec"],
                       "start_s": first["start_s"], "end_s": end_s, "requests": requests,
                       "rps": requests / length if length > 0 else 0.0, "errors": errors,
                       "status_codes": dict(sorted(status.items())), "latency_us": latency,
                       "histogram": encode(hist)})
    timeline = _merge_fine([d.get("fine_timeline") or [] for d in docs])
    recover = next((d["config"]["recover"] for d in docs if d.get("config", {}).get("recover")), ())
    figures(phases, timeline, recover)
    return phases, timeline


def _merge_fine(timelines: Sequence[Sequence[dict]]) -> list[dict]:
    n = max((len(t) for t in timelines), default=0)
    out = []
    for i in range(n):
        parts = [t[i] for t in timelines if i < len(t)]
        requests = sum(p["requests"] for p in parts)
        errors: dict[str, int] = {}
        for p in parts:
            for k, v in p["errors"].items():
                errors[k] = errors.get(k, 0) + v
        entry: dict = {"t": round(i * FINE_S, 1), "requests": requests, "rps": requests / FINE_S,
                       "errors": errors}
        blobs = [p["histogram"] for p in parts if p.get("histogram")]
        if blobs:
            h = HdrHistogram(1, 60_000_000, FINE_SIGFIGS)
            for b in blobs:
                h.add(HdrHistogram.decode(b))
            p50, p99, p999 = percentiles_us(h, (50.0, 99.0, 99.9))
            entry["latency_us"] = {"p50": p50, "p99": p99, "p99.9": p999}
            entry["histogram"] = encode(h)
        out.append(entry)
    return out

"""The data behind the report's plots, shared by the HTML (SVG) and PNG (matplotlib) renderers
so that both draw exactly the same points. Only reads a result document."""

from __future__ import annotations

import math

from fastload.errors import UsageError
from fastload.results.histogram import decode, percentile_points

LATENCY_KEYS = ("min", "mean", "stdev", "p50", "p90", "p95", "p99", "p99.9", "p99.99", "max")
# Markers on the distribution plot: (label, key in latency_us, percentile).
MARKERS = (("p50", "p50", 50.0), ("p90", "p90", 90.0), ("p99", "p99", 99.0),
           ("p99.9", "p99.9", 99.9), ("p99.99", "p99.99", 99.99))


def check(doc: dict, path: str) -> None:
    """The fields the report needs beyond what combine.load checks, as one clear usage error
    instead of a KeyError deep inside a renderer."""
    lat = doc.get("latency_us")
    if not isinstance(lat, dict):
        raise UsageError(f"{path}: missing field 'latency_us'")
    for key in ("min", "p50", "p90", "p99", "p99.9", "max"):
        if not isinstance(lat.get(key), int | float):
            raise UsageError(f"{path}: latency_us.{key} missing or not a number")
    for key in ("rps", "duration_s", "requests"):
        if not isinstance(doc.get(key), int | float):
            raise UsageError(f"{path}: {key} missing or not a number")
    if not isinstance(doc.get("timeline", []), list):
        raise UsageError(f"{path}: timeline is not a list")
    try:
        decode(doc["histogram"])
    except Exception as e:  # the hdrh decoder raises assorted types on corrupt input
        raise UsageError(f"{path}: histogram cannot be decoded ({type(e).__name__})") from None


def percentile_x(percentile: float) -> float:
    """Position on the distribution plot's axis: 1/(1-q), so 90% -> 10, 99% -> 100."""
    return 100.0 / (100.0 - percentile)


def distribution(doc: dict) -> list[tuple[float, float]]:
    """(1/(1-q), latency µs) along the whole distribution, from the document's histogram.

    The histogram reports each percentile as the highest value of its bucket (up to 0.1% above
    the recorded value), while latency_us.max is exact; values are capped at that max so the
    curve ends exactly on it and never rises above it. The 100% point cannot sit at 1/(1-1) =
    infinity: it is drawn at x = N, where the last of N samples stands (q = 1 - 1/N)."""
    h = decode(doc["histogram"])
    points = percentile_points(h)
    if not points:
        return []
    top = float(doc["latency_us"].get("max", points[-1][1]))
    total = h.get_total_count()
    out = [(percentile_x(p), min(float(v), top)) for p, v in points[:-1]]
    out.append((float(max(total, 1)), top))
    return out


def x_limit(*curves: list[tuple[float, float]]) -> float:
    """Right end of the distribution axis: the next power of ten past the last point, and at
    least 100 (the 99% tick)."""
    last = max((c[-1][0] for c in curves if c), default=1.0)
    return 10.0 ** max(2, math.ceil(math.log10(last) - 1e-9))


def percentile_label(x: float) -> str:
    """Tick label of a power of ten on the 1/(1-q) axis: 1 -> 0%, 10 -> 90%, 1000 -> 99.9%."""
    k = round(math.log10(x))
    if k <= 0:
        return "0%"
    return f"{100 - 100 / 10 ** k:.{max(k - 2, 0)}f}%"


def timeline(doc: dict, key: str) -> list[tuple[float, float]]:
    """(seconds since start, value) of one per-second timeline field; seconds without a value
    (no completed request, so no p99) are left out rather than drawn as zero."""
    out = []
    for iv in doc.get("timeline", []):
        v = iv.get(key)
        if isinstance(v, int | float) and isinstance(iv.get("t"), int | float):
            out.append((float(iv["t"]), float(v)))
    return out


def fine_timeline(doc: dict, key: str = "p99") -> list[tuple[float, float]]:
    """(run time in s, latency in µs) of the 100 ms intervals (--phase windows), by intended
    send time; intervals without a response are left out."""
    return [(float(e["t"]), float(e["latency_us"][key])) for e in doc.get("fine_timeline") or ()
            if "latency_us" in e]


def latency_unit(*values: float) -> tuple[float, str]:
    """(divisor, unit) that keeps latency tick labels short: µs below 1 ms, ms below 10 s."""
    top = max(values, default=0.0)
    if top >= 10_000_000:
        return 1_000_000.0, "s"
    if top >= 1_000:
        return 1_000.0, "ms"
    return 1.0, "µs"

"""Streaming metrics of a result document: time to first byte, time to first event, gaps
between events and events per streamed response (SSE events, gRPC messages, HTTP/1.1 chunks).
Each is an HDR histogram; workers' and hosts' histograms are merged exactly."""

from __future__ import annotations

from fastload.results.histogram import encode, merge, percentiles_us, summary_us

# (JSON section, JSON field of its encoded histogram, worker result field)
TIMINGS = (("ttfb_us", "ttfb_histogram", "ttfb_histogram"),
           ("ttfe_us", "ttfe_histogram", "ttfe_histogram"),
           ("event_gap_us", "event_gap_histogram", "gap_histogram"))


def _timings(blobs_of: dict[str, list]) -> dict:
    out: dict = {}
    for section, field, _ in TIMINGS:
        h = merge(blobs_of[field])
        out[section] = summary_us(h) if h.get_total_count() else None
        out[field] = encode(h)
    return out


def _events(blobs: list, streams: int, total: int) -> dict:
    """The events section and the merged events-per-response histogram."""
    h = merge(blobs)
    out: dict = {"events": None, "events_histogram": encode(h)}
    if streams:
        p50, mx = percentiles_us(h, (50.0, 100.0))
        out["events"] = {"streams": streams, "total": total, "mean": total / streams, "p50": p50,
                         "max": mx}
    return out


def from_workers(ws: list[dict]) -> dict:
    """The streaming sections of a run's document from its workers' raw results."""
    out = _timings({field: [w.get(wfield) for w in ws] for _, field, wfield in TIMINGS})
    out.update(_events([w.get("events_histogram") for w in ws], sum(w.get("streams", 0) for w in ws),
                       sum(w.get("stream_events", 0) for w in ws)))
    return out


def from_documents(docs: list[dict]) -> dict:
    """The same sections for `fastload merge`; {} when an input predates them."""
    if not all("ttfb_histogram" in d for d in docs):
        return {}
    out = _timings({field: [d[field] for d in docs] for _, field, _ in TIMINGS})
    streams = sum((d.get("events") or {}).get("streams", 0) for d in docs)
    total = sum((d.get("events") or {}).get("total", 0) for d in docs)
    out.update(_events([d.get("events_histogram") for d in docs], streams, total))
    return out

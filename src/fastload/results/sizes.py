"""Summaries of size distributions (request bodies sent, generated body pools)."""

from __future__ import annotations


def size_summary(sizes: list[int], counts: list[int] | None = None) -> dict:
    """mean/min/p50/p90/p99/max of sizes, each weighted by its count (1 each without counts)."""
    pairs = sorted(zip(sizes, counts if counts is not None else [1] * len(sizes), strict=True))
    pairs = [(s, c) for s, c in pairs if c > 0]
    total = sum(c for _, c in pairs)
    if not total:
        return {"count": 0}
    out: dict = {"count": total, "mean": sum(s * c for s, c in pairs) / total,
                 "min": pairs[0][0], "max": pairs[-1][0]}
    for q in (50, 90, 99):
        need = q / 100 * total
        acc = 0
        for s, c in pairs:
            acc += c
            if acc >= need:
                out[f"p{q}"] = s
                break
    return out

"""perf stat counters summed: over a run's workers, and over the hosts `fastload merge` combines."""

from __future__ import annotations


def ipc(counters: dict) -> float | None:
    cycles, instructions = counters.get("cycles"), counters.get("instructions")
    if not cycles or instructions is None:
        return None
    return instructions / cycles


def total(workers: list[dict], events: tuple[str, ...] | list[str], note: str | None = None) -> dict:
    """The top-level `perf` object: every counter summed over the workers (None when any worker
    has no count for it: a partial sum would read as the whole), IPC of the sums."""
    counters: dict = {}
    for e in events:
        values = [w["counters"].get(e) for w in workers]
        counters[e] = None if not values or any(v is None for v in values) else sum(values)
    doc: dict = {"events": list(events), "counters": counters, "ipc": ipc(counters)}
    units = {e: u for w in workers for e, u in w.get("units", {}).items()}
    if units:
        doc["units"] = units
    if note:
        doc["note"] = note
    return doc

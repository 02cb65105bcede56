"""--replay FILE: a recorded trace sent at its own offsets (open loop).

JSON lines, one request per line:
    {"offset": 0.25, "method": "POST", "path": "/v1/chat", "size": 1800, "headers": {"X-A": "1"}}
or CSV with a header row naming the columns (offset and path required; method, body, size,
headers optional; headers as a JSON object):
    offset,method,path,size
    0.25,POST,/v1/chat,1800

offset: seconds from the start (offset_ms: milliseconds). body: the body text; size: a body of
that many filler bytes instead. Requests are grouped into variants by (method, path) for the
per-variant results; identical requests share one pre-encoded entry.
"""

from __future__ import annotations

import csv
import json
import math
from typing import Any

from fastload.errors import UsageError, read_input_text
from fastload.workload.checks import CheckSpec
from fastload.workload.mix import Entry, Mix, Variant, checked_mix
from fastload.workload.scenario import (
    MAX_VARIANTS,
    check_method,
    check_path,
    merge_headers,
    parse_headers,
)

MAX_TRACE = 10_000_000
_COLUMNS = {"offset", "offset_ms", "method", "path", "body", "size", "headers"}


def _records(path: str) -> list[tuple[int, dict[str, Any]]]:
    """(line number, fields) of every request line."""
    text = read_input_text(path, "--replay")
    first = text.lstrip()[:1]
    if path.endswith((".jsonl", ".ndjson", ".json")) or first == "{":
        out = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError as e:
                raise UsageError(f"--replay {path!r} line {n}: invalid JSON: {e}") from None
            if not isinstance(rec, dict):
                raise UsageError(f"--replay {path!r} line {n}: expected a JSON object per line")
            out.append((n, rec))
        return out
    rows = csv.DictReader(text.splitlines())
    cols = set(rows.fieldnames or ())
    unknown = cols - _COLUMNS
    if unknown:
        raise UsageError(f"--replay {path!r}: unknown CSV column(s) {', '.join(sorted(unknown))} "
                         f"(known: {', '.join(sorted(_COLUMNS))})")
    out = []
    for n, row in enumerate(rows, 2):
        rec: dict[str, Any] = {k: v for k, v in row.items() if v not in (None, "")}
        if None in row:
            raise UsageError(f"--replay {path!r} line {n}: more fields than columns")
        for key in ("offset", "offset_ms", "size"):
            if key in rec:
                try:
                    rec[key] = float(rec[key])
                except ValueError:
                    raise UsageError(f"--replay {path!r} line {n}: {key} {rec[key]!r} is not a number") from None
        if "headers" in rec:
            try:
                rec["headers"] = json.loads(rec["headers"])
            except ValueError:
                raise UsageError(f"--replay {path!r} line {n}: headers must be a JSON object") from None
        out.append((n, rec))
    return out


def parse_replay(path: str, speed: float, default_method: str, cli_headers: tuple[tuple[str, str], ...],
                 checks: CheckSpec, sample: float) -> Mix:
    if not (isinstance(speed, (int, float)) and math.isfinite(speed) and speed > 0):
        raise UsageError(f"--replay-speed: {speed!r} must be a number above 0")
    records = _records(path)
    if not records:
        raise UsageError(f"--replay {path!r}: no requests in the trace")
    if len(records) > MAX_TRACE:
        raise UsageError(f"--replay {path!r}: {len(records)} requests; at most {MAX_TRACE}")
    variant_of: dict[tuple[str, str], int] = {}
    entry_of: dict[tuple[int, tuple, bytes | int], int] = {}
    raw_entries: list[Entry] = []
    timed: list[tuple[int, int]] = []
    for n, rec in records:
        where = f"--replay {path!r} line {n}"
        unknown = set(rec) - _COLUMNS
        if unknown:
            raise UsageError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        if ("offset" in rec) == ("offset_ms" in rec):
            raise UsageError(f"{where}: give offset (seconds) or offset_ms")
        off = rec.get("offset", rec.get("offset_ms"))
        if isinstance(off, bool) or not isinstance(off, (int, float)) or not math.isfinite(off) or off < 0:
            raise UsageError(f"{where}: offset {off!r} must be a number >= 0")
        off_ns = int(round(off * (1e9 if "offset" in rec else 1e6) / speed))
        method = check_method(rec.get("method", default_method), where)
        p = check_path(rec.get("path"), where)
        headers = merge_headers(cli_headers, parse_headers(rec.get("headers"), where))
        if "body" in rec and "size" in rec:
            raise UsageError(f"{where}: body and size are exclusive")
        body: bytes | int = b""
        if "body" in rec:
            if not isinstance(rec["body"], str):
                raise UsageError(f"{where}: body must be a string")
            body = rec["body"].encode("utf-8")
        elif "size" in rec:
            size = rec["size"]
            if isinstance(size, bool) or not isinstance(size, (int, float)) or size != int(size) \
                    or not 0 <= size <= 1 << 30:
                raise UsageError(f"{where}: size {size!r} must be a whole number of bytes (0..1 GiB)")
            body = int(size)
        v = variant_of.setdefault((method, p), len(variant_of))
        if len(variant_of) > MAX_VARIANTS:
            raise UsageError(f"{where}: more than {MAX_VARIANTS} distinct (method, path) pairs; "
                             "per-request results are kept for at most that many")
        key = (v, headers, body)
        e = entry_of.get(key)
        if e is None:
            e = entry_of[key] = len(raw_entries)
            raw_entries.append((v, headers, body))
        timed.append((off_ns, e))
    # Entries grouped by variant (the native picker needs each variant's entries contiguous).
    order = sorted(range(len(raw_entries)), key=lambda i: raw_entries[i][0])
    new_index = {old: new for new, old in enumerate(order)}
    entries = tuple(raw_entries[i] for i in order)
    timed.sort(key=lambda t: t[0])  # stable: equal offsets keep the file's order
    counts = [0] * len(variant_of)
    for _, e in timed:
        counts[entries[new_index[e]][0]] += 1
    variants = [
        Variant(name=f"{m} {p}", method=m, path=p, weight=float(counts[v]),
                headers=cli_headers, checks=checks, body_kind="trace")
        for (m, p), v in sorted(variant_of.items(), key=lambda kv: kv[1])]
    return checked_mix(variants, sample, source="replay", path=path, entries=entries,
                       offsets_ns=tuple(t for t, _ in timed),
                       schedule=tuple(new_index[e] for _, e in timed), speed=float(speed))

"""--scenario FILE: weighted request variants, validated before any traffic.

A scenario is a YAML or JSON list of requests (or a mapping with `requests:` plus defaults for
`headers:` and `checks:`). Each request has method, path or url, headers, a body (inline `body`,
`body_file`, or generated `body_size`), a weight and optional checks. The result is a Mix: every
variant and the flat list of request entries the native picker chooses from (a generated body
contributes a seeded pool of sizes, each one entry).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any

from fastload.config.syntax import TOKEN_RE, parse_header, parse_target
from fastload.errors import UsageError, read_input, read_input_text
from fastload.workload import bodies
from fastload.workload.checks import CheckSpec, parse_mapping
from fastload.workload.mix import Entry, Mix, Variant, checked_mix

MAX_VARIANTS = 256  # each has its own latency histogram (~140 kB) in every worker
MAX_POOL_BYTES = 256 << 20  # generated bodies, pre-encoded in every worker
_REQUEST_KEYS = {"name", "method", "path", "url", "headers", "body", "body_file", "body_size",
                 "pool", "weight", "checks"}


def load_file(path: str, flag: str) -> Any:
    """A YAML or JSON document (JSON first: YAML would accept most JSON but report it worse)."""
    text = read_input_text(path, flag)
    try:
        return json.loads(text)
    except ValueError as je:
        if path.endswith(".json"):
            raise UsageError(f"{flag} {path!r}: invalid JSON: {je}") from None
    import yaml  # loaded on use: most scenario files are JSON, and most runs have none

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        what = getattr(e, "problem", None) or (str(e).splitlines() or ["syntax error"])[0]
        raise UsageError(f"{flag} {path!r}: invalid YAML{where}: {what}") from None


def parse_headers(spec: Any, where: str) -> tuple[tuple[str, str], ...]:
    """{Name: value} or ["Name: value", ...]."""
    if spec is None:
        return ()
    if isinstance(spec, dict):
        items = []
        for k, v in spec.items():
            if not isinstance(k, str) or isinstance(v, (dict, list)) or v is None:
                raise UsageError(f"{where}: header {k!r} must map a name to a value")
            items.append(f"{k}: {v}")
    elif isinstance(spec, list) and all(isinstance(h, str) for h in spec):
        items = spec
    else:
        raise UsageError(f"{where}: headers must be a mapping or a list of 'Name: value'")
    try:
        return tuple(parse_header(h) for h in items)
    except UsageError as e:
        raise UsageError(f"{where}: {e}") from None


def merge_headers(base: tuple[tuple[str, str], ...], over: tuple[tuple[str, str], ...]
                  ) -> tuple[tuple[str, str], ...]:
    """base with over's fields replacing those of the same name (case-insensitive)."""
    names = {k.lower() for k, _ in over}
    return tuple(h for h in base if h[0].lower() not in names) + over


def resolve_path(spec: dict, target, where: str) -> str:
    """The request target of a variant: `path` (absolute) or a `url` on the run's origin."""
    if "url" in spec and "path" in spec:
        raise UsageError(f"{where}: give path or url, not both")
    if "url" in spec:
        if not isinstance(spec["url"], str):
            raise UsageError(f"{where}: url must be a string")
        try:
            t = parse_target(spec["url"])
        except UsageError as e:
            raise UsageError(f"{where}: {e}") from None
        if (t.scheme, t.host.lower(), t.port) != (target.scheme, target.host.lower(), target.port):
            raise UsageError(f"{where}: url {spec['url']!r} is not on the target's origin "
                             f"{target.scheme}://{target.authority} (one run, one server)")
        return t.path
    return check_path(spec.get("path", "/"), where)


def check_path(path: Any, where: str) -> str:
    if not isinstance(path, str) or not path.startswith("/") or any(c.isspace() for c in path):
        raise UsageError(f"{where}: path {path!r} must start with '/' and contain no spaces")
    return path


def check_method(method: Any, where: str) -> str:
    if not isinstance(method, str) or not TOKEN_RE.match(method):
        raise UsageError(f"{where}: method {method!r} is not a valid HTTP method")
    return method.upper()


def unique_names(names: list[str]) -> list[str]:
    """Default names (METHOD path) repeated across variants get ' #2', ' #3'..."""
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n} #{seen[n]}")
    return out


def parse_scenario(path: str, target, default_method: str, cli_headers: tuple[tuple[str, str], ...],
                   seed: int, cli_checks: CheckSpec, sample: float) -> Mix:
    doc = load_file(path, "--scenario")
    flag = f"--scenario {path!r}"
    base_headers = cli_headers
    base_checks = cli_checks
    if isinstance(doc, dict):
        unknown = set(doc) - {"requests", "headers", "checks"}
        if unknown:
            raise UsageError(f"{flag}: unknown top-level key(s) {', '.join(sorted(map(str, unknown)))}"
                             " (expected requests, headers, checks)")
        base_headers = merge_headers(cli_headers, parse_headers(doc.get("headers"), f"{flag} headers"))
        base_checks = cli_checks.merged(parse_mapping(doc.get("checks"), f"{flag} checks"))
        doc = doc.get("requests")
    if not isinstance(doc, list) or not doc:
        raise UsageError(f"{flag}: expected a non-empty list of requests (or a mapping with 'requests:')")
    if len(doc) > MAX_VARIANTS:
        raise UsageError(f"{flag}: {len(doc)} requests; at most {MAX_VARIANTS}")
    variants: list[Variant] = []
    entries: list[Entry] = []
    explicit: set[str] = set()
    pool_bytes = 0
    for i, spec in enumerate(doc):
        where = f"{flag} request {i + 1}"
        if not isinstance(spec, dict):
            raise UsageError(f"{where}: expected a mapping (method, path, weight, ...)")
        unknown = set(spec) - _REQUEST_KEYS
        if unknown:
            raise UsageError(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
        method = check_method(spec.get("method", default_method), where)
        rpath = resolve_path(spec, target, where)
        weight = spec.get("weight", 1)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) \
                or weight < 0:
            raise UsageError(f"{where}: weight {weight!r} must be a number >= 0")
        headers = merge_headers(base_headers, parse_headers(spec.get("headers"), where))
        checks = base_checks.merged(parse_mapping(spec.get("checks"), where))
        given = [k for k in ("body", "body_file", "body_size") if k in spec]
        if len(given) > 1:
            raise UsageError(f"{where}: {' and '.join(given)} are exclusive: give one")
        if "pool" in spec and "body_size" not in spec:
            raise UsageError(f"{where}: pool applies to a generated body (body_size)")
        name = spec.get("name")
        if name is not None:
            if not isinstance(name, str) or not name.strip():
                raise UsageError(f"{where}: name must be a non-empty string")
            if name in explicit:
                raise UsageError(f"{where}: name {name!r} is used twice")
            explicit.add(name)
        v = len(variants)
        size = None
        kind = "none"
        if "body" in spec:
            b = spec["body"]
            if isinstance(b, (dict, list)):
                b = json.dumps(b, separators=(",", ":"))  # a structured body is sent as JSON
            if not isinstance(b, str):
                raise UsageError(f"{where}: body must be a string (or a mapping/list sent as JSON)")
            entries.append((v, headers, b.encode("utf-8")))
            kind = "inline"
        elif "body_file" in spec:
            bf = spec["body_file"]
            if not isinstance(bf, str):
                raise UsageError(f"{where}: body_file must be a path")
            full = bf if os.path.isabs(bf) else os.path.join(os.path.dirname(os.path.abspath(path)), bf)
            entries.append((v, headers, read_input(full, where, shown=f"body_file {bf!r}")))
            kind = "file"
        elif "body_size" in spec:
            size = bodies.parse_dist(spec["body_size"], f"{where} body_size")
            pool = spec.get("pool", bodies.DEFAULT_POOL)
            if isinstance(pool, bool) or not isinstance(pool, int) or not 1 <= pool <= bodies.MAX_POOL:
                raise UsageError(f"{where}: pool {pool!r} must be a whole number from 1 to {bodies.MAX_POOL}")
            if size.kind == "fixed":
                pool = 1
            sizes = bodies.sample(size, pool, f"{seed}:{i}")
            pool_bytes += sum(sizes)
            entries.extend((v, headers, n) for n in sizes)
            kind = "generated"
        else:
            entries.append((v, headers, b""))
        variants.append(Variant(name=name or "", method=method, path=rpath, weight=float(weight),
                                headers=headers, checks=checks, size=size, body_kind=kind))
    if pool_bytes > MAX_POOL_BYTES:
        raise UsageError(f"{flag}: generated bodies total {pool_bytes >> 20} MiB over their pools (limit "
                         f"{MAX_POOL_BYTES >> 20} MiB per worker); lower `pool` or the sizes")
    if not sum(v.weight for v in variants) > 0:
        raise UsageError(f"{flag}: every request has weight 0")
    names = unique_names([v.name or f"{v.method} {v.path}" for v in variants])
    clash = explicit & {n for n, v in zip(names, variants, strict=True) if not v.name}
    if clash:
        raise UsageError(f"{flag}: name {sorted(clash)[0]!r} is both given and the default of another request")
    variants = [dataclasses.replace(v, name=n) for v, n in zip(variants, names, strict=True)]
    return checked_mix(variants, sample, source="scenario", path=path, entries=tuple(entries))

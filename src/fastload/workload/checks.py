"""Response checks: expected status set, body contains / regex, JSON field equals, max body size.

The native sessions decide per request (one RNG draw) whether its response is checked; only
sampled responses are captured (status + raw bytes, bounded) and handed to Checker.run here,
so unsampled responses cost nothing in Python. A response that fails any check counts once in
errors.check_failed; each failing check is counted by name in checks.by_check.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from fastload.errors import UsageError
from fastload.units import fraction, parse_count

# Bytes captured per sampled response (HTTP/1.1: headers + raw body; HTTP/2: the body); body
# checks see at most this much.
CAPTURE_DEFAULT = 1 << 20
_CHECK_KEYS = {"status", "body_contains", "body_regex", "json", "max_body"}


@dataclass(frozen=True)
class CheckSpec:
    status: tuple[int, ...] | None = None  # allowed codes; a class NXX is expanded to N00..N99
    contains: tuple[str, ...] = ()
    regex: tuple[str, ...] = ()
    json_eq: tuple[tuple[str, object], ...] = ()  # (dotted path, expected value)
    max_body: int | None = None

    def __bool__(self) -> bool:
        return bool(self.status is not None or self.contains or self.regex or self.json_eq
                    or self.max_body is not None)

    def merged(self, other: CheckSpec) -> CheckSpec:
        """self (global) with other's (per-request) checks added; other's status/max win."""
        return CheckSpec(
            status=other.status if other.status is not None else self.status,
            contains=self.contains + other.contains,
            regex=self.regex + other.regex,
            json_eq=self.json_eq + other.json_eq,
            max_body=other.max_body if other.max_body is not None else self.max_body,
        )

    def names(self) -> list[str]:
        out = []
        if self.status is not None:
            out.append("status")
        out += [f"body_contains:{s}" for s in self.contains]
        out += [f"body_regex:{r}" for r in self.regex]
        out += [f"json:{p}" for p, _ in self.json_eq]
        if self.max_body is not None:
            out.append("max_body")
        return out

    def describe(self) -> dict:
        out: dict = {}
        if self.status is not None:
            out["status"] = _compact_status(self.status)
        if self.contains:
            out["body_contains"] = list(self.contains)
        if self.regex:
            out["body_regex"] = list(self.regex)
        if self.json_eq:
            out["json"] = {p: v for p, v in self.json_eq}
        if self.max_body is not None:
            out["max_body"] = self.max_body
        return out


def _compact_status(codes: tuple[int, ...]) -> list[str]:
    out = []
    s = set(codes)
    for c in range(1, 6):
        block = set(range(c * 100, c * 100 + 100))
        if block <= s:
            out.append(f"{c}xx")
            s -= block
    return out + [str(c) for c in sorted(s)]


def parse_status(text: object, where: str) -> tuple[int, ...]:
    """'200,204' / '2xx,304' / [200, 204] -> allowed codes."""
    items = text if isinstance(text, list) else str(text).split(",")
    codes: set[int] = set()
    for item in items:
        t = str(item).strip().lower()
        if re.fullmatch(r"[1-5]xx", t):
            codes.update(range(int(t[0]) * 100, int(t[0]) * 100 + 100))
        elif re.fullmatch(r"[1-5][0-9][0-9]", t):
            codes.add(int(t))
        else:
            raise UsageError(f"{where}: {item!r} is not a status code (200) or class (2xx)")
    return tuple(sorted(codes))


def parse_json_check(text: str, where: str) -> tuple[str, object]:
    """'data.items.0.id=5' -> ('data.items.0.id', 5); the value is JSON if it parses, else text."""
    path, sep, value = text.partition("=")
    path = path.strip()
    if not sep or not path or any(not p for p in path.split(".")):
        raise UsageError(f"{where}: {text!r} is not PATH=VALUE (example: data.status=\"ok\")")
    try:
        parsed: object = json.loads(value)
    except ValueError:
        parsed = value
    return path, parsed


def _compile(pattern: str, where: str) -> re.Pattern[bytes]:
    try:
        return re.compile(pattern.encode("utf-8"))
    except re.error as e:
        raise UsageError(f"{where}: invalid regular expression {pattern!r}: {e}") from None


def parse_mapping(spec: object, where: str) -> CheckSpec:
    """The `checks:` mapping of a scenario file (top level or per request)."""
    if spec is None:
        return CheckSpec()
    if not isinstance(spec, dict):
        raise UsageError(f"{where}: checks must be a mapping (status, body_contains, body_regex, json, max_body)")
    unknown = set(spec) - _CHECK_KEYS
    if unknown:
        raise UsageError(f"{where}: unknown check(s) {', '.join(sorted(map(str, unknown)))} "
                         f"(known: {', '.join(sorted(_CHECK_KEYS))})")

    def strings(key: str) -> tuple[str, ...]:
        v = spec.get(key, [])
        v = [v] if isinstance(v, str) else v
        if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
            raise UsageError(f"{where}: {key} must be a non-empty string or a list of them")
        return tuple(v)

    json_eq: tuple[tuple[str, object], ...] = ()
    if "json" in spec:
        j = spec["json"]
        if not isinstance(j, dict) or not j:
            raise UsageError(f"{where}: json must be a mapping of dotted path -> expected value")
        for p in j:
            if not isinstance(p, str) or not p or any(not s for s in p.split(".")):
                raise UsageError(f"{where}: json path {p!r} is not a dotted path like data.items.0.id")
        json_eq = tuple(j.items())
    max_body = None
    if "max_body" in spec:
        max_body = spec["max_body"]
        if isinstance(max_body, bool) or not isinstance(max_body, int) or max_body < 0:
            raise UsageError(f"{where}: max_body must be a number of bytes, not {max_body!r}")
    out = CheckSpec(
        status=parse_status(spec["status"], f"{where}: status") if "status" in spec else None,
        contains=strings("body_contains"), regex=strings("body_regex"), json_eq=json_eq,
        max_body=max_body)
    for r in out.regex:
        _compile(r, f"{where}: body_regex")
    return out


def from_flags(status: str | None, contains: tuple[str, ...] | list[str], regex: tuple[str, ...] | list[str],
               json_eq: tuple[str, ...] | list[str], max_body: int | str | None) -> CheckSpec:
    if isinstance(contains, str):
        contains = [contains]
    if isinstance(regex, str):
        regex = [regex]
    if isinstance(json_eq, str):
        json_eq = [json_eq]
    for c in contains:
        if not c:
            raise UsageError("--check-body-contains: the text is empty")
    for r in regex:
        _compile(r, "--check-body-regex")
    mb = None
    if max_body is not None:
        mb = parse_count(max_body, "--check-max-body", minimum=0)
    return CheckSpec(
        status=parse_status(status, "--check-status") if status is not None else None,
        contains=tuple(contains), regex=tuple(regex),
        json_eq=tuple(parse_json_check(j, "--check-json") for j in json_eq), max_body=mb)


def parse_sample(value: str | float | None) -> float:
    """'0.01', '1%', 1 -> fraction of responses checked."""
    if value is None:
        return 1.0
    try:
        p = fraction(str(value))
    except ValueError:
        raise UsageError(f"--check-sample: {value!r} is not a fraction (0.01) or a percentage (1%)") from None
    if not 0 < p <= 1:
        raise UsageError(f"--check-sample: {value!r} must be above 0 and at most 1 (100%)")
    return p


def capture_limit(specs: list[CheckSpec]) -> int:
    mb = max((s.max_body or 0 for s in specs), default=0)
    return max(CAPTURE_DEFAULT, mb + 65536)


# --- running checks (per sampled response, in the worker)

def split_response(raw: bytes) -> tuple[dict[bytes, bytes], bytes]:
    """Headers (lower-case names) and the decoded body of one raw HTTP/1.1 response."""
    head, _, rest = raw.partition(b"\r\n\r\n")
    headers: dict[bytes, bytes] = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
        return headers, _dechunk(rest)
    return headers, rest


def _dechunk(data: bytes) -> bytes:
    out = []
    pos = 0
    while True:
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            break
        try:
            size = int(data[pos:eol].split(b";")[0], 16)
        except ValueError:
            break
        if size == 0:
            break
        out.append(data[eol + 2:eol + 2 + size])
        pos = eol + 2 + size + 2
    return b"".join(out)


_MISSING = object()


def json_get(doc: object, path: str) -> object:
    cur = doc
    for part in path.split("."):
        if isinstance(cur, dict):
            cur = cur.get(part, _MISSING)
        elif isinstance(cur, list) and re.fullmatch(r"-?[0-9]+", part):
            i = int(part)
            cur = cur[i] if -len(cur) <= i < len(cur) else _MISSING
        else:
            return _MISSING
        if cur is _MISSING:
            return _MISSING
    return cur


class Checker:
    """Runs one request variant's checks on a raw HTTP/1.1 response, or with body_only (HTTP/2,
    where the session captures DATA payloads) on the body itself."""

    def __init__(self, spec: CheckSpec, body_only: bool = False) -> None:
        self.spec = spec
        self.body_only = body_only
        self.status = frozenset(spec.status) if spec.status is not None else None
        self.contains = [(f"body_contains:{s}", s.encode("utf-8")) for s in spec.contains]
        self.regex = [(f"body_regex:{r}", _compile(r, "body_regex")) for r in spec.regex]
        self.json_eq = [(f"json:{p}", p, v) for p, v in spec.json_eq]
        self.needs_body = bool(self.contains or self.regex or self.json_eq)

    def failures(self, status: int, raw: bytes, body_len: int) -> list[str]:
        """Names of the checks this response fails (empty: it passed)."""
        failed = []
        if self.status is not None and status not in self.status:
            failed.append("status")
        if self.spec.max_body is not None and body_len > self.spec.max_body:
            failed.append("max_body")
        if not self.needs_body:
            return failed
        body = raw if self.body_only else split_response(raw)[1]
        for name, needle in self.contains:
            if needle not in body:
                failed.append(name)
        for name, rx in self.regex:
            if rx.search(body) is None:
                failed.append(name)
        if self.json_eq:
            try:
                doc = json.loads(body)
            except ValueError:
                doc = _MISSING
            for name, path, want in self.json_eq:
                got = json_get(doc, path) if doc is not _MISSING else _MISSING
                if got is _MISSING or got != want or isinstance(got, bool) != isinstance(want, bool):
                    failed.append(name)
        return failed


class CheckRunner:
    """The worker's callback for sampled responses: variant index -> Checker, with counts."""

    def __init__(self, specs: list[CheckSpec], body_only: bool = False) -> None:
        self.checkers = [Checker(s, body_only) if s else None for s in specs]
        self.checked = [0] * len(specs)
        self.failed = [0] * len(specs)
        self.by_check: list[dict[str, int]] = [{} for _ in specs]

    def __call__(self, variant: int, status: int, raw: bytes, body_len: int) -> bool:
        """True when the response passed (or the variant has no checks)."""
        checker = self.checkers[variant]
        if checker is None:
            return True
        self.checked[variant] += 1
        failed = checker.failures(status, raw, body_len)
        if failed:
            self.failed[variant] += 1
            counts = self.by_check[variant]
            for name in failed:
                counts[name] = counts.get(name, 0) + 1
        return not failed

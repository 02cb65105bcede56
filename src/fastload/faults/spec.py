"""What users type about faults: `--fault` windows and `--fault-proxy` proxies, parsed into frozen
values and validated, each mistake one line (UsageError) before any traffic.

    --fault 'START-END[@TARGET]:KIND[=VALUE][,PARAM=VALUE...]'
    --fault-proxy NAME=LISTEN=UPSTREAM

Times are integer nanoseconds of run time (from the start of the measured interval); rates are
bytes per second. The kinds follow toxiproxy where it has them (latency, bandwidth, reset_peer as
`reset`, timeout 0 as `blackhole`, a disabled proxy as `down`); `loss` is netem's.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from fastload.errors import UsageError
from fastload.units import fraction, parse_duration_ns, parse_size_bytes

KINDS = ("latency", "bandwidth", "reset", "blackhole", "down", "http_status", "loss")
# Kinds that take a value after '=', and the ones that must not.
_VALUED = {"latency", "bandwidth", "http_status", "loss"}
# The parameters each kind accepts after the first comma (`name` is accepted by all).
_PARAMS: dict[str, frozenset[str]] = {
    "latency": frozenset({"jitter", "dir", "p"}),
    "bandwidth": frozenset({"dir", "p"}),
    "reset": frozenset({"p"}),
    "blackhole": frozenset({"p"}),
    "down": frozenset({"p"}),
    "http_status": frozenset({"p"}),
    "loss": frozenset(),
}
MECHANISMS = ("proxy", "netem")
# What tc can do; everything else needs a proxy that sees connections (or requests).
NETEM_KINDS = frozenset({"latency", "bandwidth", "loss"})
PROXY_KINDS = frozenset(KINDS) - {"loss"}
DIRECTIONS = ("down", "up", "both")
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
# Phase names the measurement side gives to the time around windows.
_RESERVED = re.compile(r"^(baseline|recovery(-.*)?)$")


@dataclass(frozen=True)
class FaultSpec:
    """One `--fault` window. Only the fields of its kind are set; the rest keep their defaults."""

    name: str  # `fault1`, `fault2`, ... by position, or `,name=NAME`
    start_ns: int  # run time, from the start of the measured interval
    end_ns: int
    target: str | None  # None: fastload's own connections to the URL; else a --fault-proxy name
    kind: str  # one of KINDS
    spec: str  # as the user wrote it, for the result document and messages
    latency_ns: int = 0
    jitter_ns: int = 0
    direction: str = "down"  # latency, bandwidth: down = server -> client, up, both
    bytes_per_s: int = 0  # bandwidth
    status: int = 0  # http_status
    loss: float = 0.0  # loss: the probability that a packet is dropped
    p: float = 1.0  # per connection (connection kinds) or per request (http_status)
    explicit: frozenset[str] = frozenset()  # the parameters the user wrote (checks by mechanism)

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns

    def active(self, t_ns: int) -> bool:
        """Whether run time t_ns falls in [start, end)."""
        return self.start_ns <= t_ns < self.end_ns


@dataclass(frozen=True)
class ProxySpec:
    """One `--fault-proxy NAME=LISTEN=UPSTREAM`: hosts without brackets, ports as numbers."""

    name: str
    listen_host: str
    listen_port: int  # 0 (API only) picks a free port, which the proxy reports when ready
    upstream_host: str
    upstream_port: int

    @property
    def listen(self) -> str:
        return _join(self.listen_host, self.listen_port)

    @property
    def upstream(self) -> str:
        return _join(self.upstream_host, self.upstream_port)


def _join(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _probability(text: str, what: str) -> float:
    """'0.2' or '20%' -> 0.2, in (0, 1]."""
    try:
        value = fraction(text)
    except ValueError:
        raise UsageError(f"{what}: {text!r} is not a probability (examples: 0.2, 20%)") from None
    if not 0 < value <= 1:
        raise UsageError(f"{what}: {text!r} must be in (0, 1] (examples: 0.2, 20%)")
    return value


def parse_fault(text: str, position: int = 1) -> FaultSpec:
    """One --fault value; position (1-based) gives the default name `fault<position>`."""
    where = f"--fault {text!r}"
    window, colon, rest = text.partition(":")
    if not colon or not rest.strip():
        raise UsageError(f"{where}: expected START-END[@TARGET]:KIND[=VALUE][,PARAM=VALUE...]"
                         " (example: 10s-20s:latency=200ms)")
    window, at, target = window.partition("@")
    target = target.strip()
    if at and not _NAME_RE.match(target):
        raise UsageError(f"{where}: {'@' + target!r} is not a proxy name")
    start_text, dash, end_text = window.partition("-")
    if not dash:
        raise UsageError(f"{where}: the window {window!r} is not START-END (example: 10s-20s)")
    start_ns = parse_duration_ns(start_text, f"{where}: start", allow_zero=True)
    end_ns = parse_duration_ns(end_text, f"{where}: end")
    if end_ns <= start_ns:
        raise UsageError(f"{where}: the window ends ({end_text.strip()}) before it starts"
                         f" ({start_text.strip()})")

    first, *params = [p.strip() for p in rest.split(",")]
    kind, eq, value = (s.strip() for s in first.partition("="))
    if kind not in KINDS:
        raise UsageError(f"{where}: unknown kind {kind!r} (kinds: {', '.join(KINDS)})")
    if kind in _VALUED and not value:
        raise UsageError(f"{where}: {kind} needs a value ({_EXAMPLES[kind]})")
    if kind not in _VALUED and eq:
        raise UsageError(f"{where}: {kind} takes no value (write {kind}, not {first!r})")

    latency_ns = jitter_ns = bytes_per_s = status = 0
    loss, p, direction = 0.0, 1.0, "down"
    if kind == "latency":
        latency_ns = parse_duration_ns(value, f"{where}: latency")
    elif kind == "bandwidth":
        bytes_per_s = parse_size_bytes(value.removesuffix("/s"), f"{where}: bandwidth")
    elif kind == "http_status":
        if not re.fullmatch(r"[2-5]\d\d", value):
            raise UsageError(f"{where}: http_status {value!r} is not a final status code 200-599")
        status = int(value)
    elif kind == "loss":
        loss = _probability(value, f"{where}: loss")

    name = f"fault{position}"
    seen: set[str] = set()
    for param in params:
        key, eq, val = (s.strip() for s in param.partition("="))
        if not eq or not key or not val:
            raise UsageError(f"{where}: {param!r} is not PARAM=VALUE")
        if key != "name" and key not in _PARAMS[kind]:
            allowed = ", ".join(sorted(_PARAMS[kind] | {"name"}))
            raise UsageError(f"{where}: unknown parameter {key!r} for {kind} (parameters: {allowed})")
        if key in seen:
            raise UsageError(f"{where}: {key} is given twice")
        seen.add(key)
        if key == "name":
            if not _NAME_RE.match(val) or _RESERVED.match(val):
                raise UsageError(f"{where}: name {val!r} must be letters, digits, '_', '.', '-'"
                                 " and not baseline or recovery-*")
            name = val
        elif key == "jitter":
            jitter_ns = parse_duration_ns(val, f"{where}: jitter", allow_zero=True)
        elif key == "dir":
            if val not in DIRECTIONS:
                raise UsageError(f"{where}: dir {val!r} must be down, up or both")
            direction = val
        elif key == "p":
            p = _probability(val, f"{where}: p")
    if jitter_ns > latency_ns:
        raise UsageError(f"{where}: jitter is larger than the latency (a delay cannot be negative)")
    return FaultSpec(name=name, start_ns=start_ns, end_ns=end_ns, target=target if at else None,
                     kind=kind, spec=text, latency_ns=latency_ns, jitter_ns=jitter_ns,
                     direction=direction, bytes_per_s=bytes_per_s, status=status, loss=loss, p=p,
                     explicit=frozenset(seen))


_EXAMPLES = {"latency": "latency=200ms", "bandwidth": "bandwidth=100KB",
             "http_status": "http_status=503", "loss": "loss=0.05"}


def parse_faults(texts: Iterable[str]) -> tuple[FaultSpec, ...]:
    """Every --fault in order; names default by position and must be unique."""
    faults = tuple(parse_fault(t, i) for i, t in enumerate(texts, 1))
    seen: dict[str, str] = {}
    for f in faults:
        if f.name in seen:
            raise UsageError(f"--fault {f.spec!r}: the name {f.name!r} is taken by"
                             f" {seen[f.name]!r}")
        seen[f.name] = f.spec
    return faults


def _address(text: str, where: str, what: str) -> tuple[str, int]:
    """'127.0.0.1:6379', '[::1]:6379' or 'db.local:6379' -> (host without brackets, port)."""
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d+)|([^\s:\[\]]+):(\d+)", text.strip())
    if not m:
        raise UsageError(f"{where}: {what} {text!r} is not HOST:PORT (IPv6 as [::1]:PORT)")
    host, port = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
    if m.group(1):
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise UsageError(f"{where}: {what} {text!r}: {host!r} is not an IPv6 address") from None
    if not 1 <= int(port) <= 65535:
        raise UsageError(f"{where}: {what} {text!r}: the port must be 1-65535")
    return host, int(port)


def parse_fault_proxy(text: str) -> ProxySpec:
    """One --fault-proxy NAME=LISTEN=UPSTREAM."""
    where = f"--fault-proxy {text!r}"
    parts = text.split("=")
    if len(parts) != 3:
        raise UsageError(f"{where}: expected NAME=LISTEN=UPSTREAM"
                         " (example: redis=127.0.0.1:16379=127.0.0.1:6379)")
    name = parts[0].strip()
    if not _NAME_RE.match(name):
        raise UsageError(f"{where}: {name!r} is not a name (letters, digits, '_', '.', '-')")
    listen = _address(parts[1], where, "LISTEN")
    upstream = _address(parts[2], where, "UPSTREAM")
    if listen == upstream:
        raise UsageError(f"{where}: LISTEN and UPSTREAM are the same address")
    return ProxySpec(name, *listen, *upstream)


def parse_fault_proxies(texts: Iterable[str]) -> tuple[ProxySpec, ...]:
    proxies = tuple(parse_fault_proxy(t) for t in texts)
    names: set[str] = set()
    listens: set[tuple[str, int]] = set()
    for p in proxies:
        if p.name in names:
            raise UsageError(f"--fault-proxy: the name {p.name!r} is given twice")
        if (p.listen_host, p.listen_port) in listens:
            raise UsageError(f"--fault-proxy: {p.listen} is the LISTEN of two proxies")
        names.add(p.name)
        listens.add((p.listen_host, p.listen_port))
    return proxies


# --------------------------------------------------------------------------- validation
# Each check is its own function, because they need different facts (the proxies, the
# mechanism, the protocol, the run's end) that become known at different places of a run's setup.


def _show_ns(ns: int) -> str:
    return f"{ns / 1e9:g}s"


def check_overlaps(faults: Sequence[FaultSpec]) -> None:
    """Two windows on one target must not overlap (touching is fine: one ends as the next
    starts); which of two overlapping faults holds would otherwise be a guess."""
    by_target: dict[str | None, list[FaultSpec]] = {}
    for f in faults:
        by_target.setdefault(f.target, []).append(f)
    for target, group in by_target.items():
        group = sorted(group, key=lambda f: (f.start_ns, f.end_ns))
        for a, b in zip(group, group[1:], strict=False):
            if b.start_ns < a.end_ns:
                on = f"@{target}" if target else "the URL"
                raise UsageError(f"--fault: {a.name} ({a.spec!r}) and {b.name} ({b.spec!r})"
                                 f" overlap on {on}")


def check_targets(faults: Sequence[FaultSpec], proxies: Sequence[ProxySpec]) -> None:
    names = {p.name for p in proxies}
    for f in faults:
        if f.target is not None and f.target not in names:
            known = ", ".join(sorted(names)) or "none given"
            raise UsageError(f"--fault {f.spec!r}: no --fault-proxy named {f.target!r}"
                             f" (proxies: {known})")


def check_mechanism(faults: Sequence[FaultSpec], via: str) -> None:
    """--fault-via: netem shapes packets to an address (latency, jitter, loss, bandwidth); the
    proxy sees connections and requests (everything else, but not packet loss)."""
    if via not in MECHANISMS:
        raise UsageError(f"--fault-via {via!r}: must be proxy or netem")
    for f in faults:
        if via == "netem":
            if f.kind not in NETEM_KINDS:
                raise UsageError(f"--fault {f.spec!r}: {f.kind} needs --fault-via proxy"
                                 " (netem does latency, jitter, loss and bandwidth)")
            if f.target is not None:
                raise UsageError(f"--fault {f.spec!r}: @{f.target} is a --fault-proxy, which"
                                 " --fault-via netem does not use")
            for param in ("p", "dir"):
                if param in f.explicit:
                    raise UsageError(f"--fault {f.spec!r}: {param} needs --fault-via proxy"
                                     " (netem shapes every packet sent to the target)")
        elif f.kind not in PROXY_KINDS:
            raise UsageError(f"--fault {f.spec!r}: {f.kind} needs --fault-via netem"
                             " (a proxy sees a byte stream, not packets)")


def check_protocol(faults: Sequence[FaultSpec], protocol: str) -> None:
    """http_status needs requests the proxy can parse: HTTP/1.1 only (h2 and h3 are refused)."""
    for f in faults:
        if f.kind == "http_status" and f.target is None and protocol != "h1":
            raise UsageError(f"--fault {f.spec!r}: http_status needs HTTP/1.1 (the proxy parses"
                             f" HTTP/1.1 requests), not {protocol}")


def check_run_end(faults: Sequence[FaultSpec], run_end_ns: int) -> None:
    """A window must end by the end of the measured interval (its end would never come)."""
    for f in faults:
        if f.end_ns > run_end_ns:
            raise UsageError(f"--fault {f.spec!r}: the window ends at {_show_ns(f.end_ns)},"
                             f" after the run's end at {_show_ns(run_end_ns)}")


def validate(faults: Sequence[FaultSpec], proxies: Sequence[ProxySpec] = (), *,
             via: str = "proxy", protocol: str | None = None,
             run_end_ns: int | None = None) -> None:
    """All the checks whose facts are given (protocol and run end may be unknown yet: None)."""
    check_mechanism(faults, via)
    check_targets(faults, proxies)
    check_overlaps(faults)
    if protocol is not None:
        check_protocol(faults, protocol)
    if run_end_ns is not None:
        check_run_end(faults, run_end_ns)

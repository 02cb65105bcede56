"""The validated, picklable description of a run. Everything the user typed is checked here,
before any traffic; workers receive a Plan and never see click or raw strings."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .errors import UsageError
from .units import parse_count, parse_cpu_list, parse_duration_ns

_TOKEN_RE = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_HOST_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9\-\.]*[A-Za-z0-9])?$")
MAX_PIPELINE = 1024
MAX_STREAMS = 1 << 16


@dataclass(frozen=True)
class Target:
    url: str
    scheme: str  # "http" | "https"
    host: str  # as written, without brackets
    port: int
    path: str  # path + query, never empty
    authority: str  # host[:port] as sent in Host / :authority

    @property
    def tls(self) -> bool:
        return self.scheme == "https"


@dataclass(frozen=True)
class Plan:
    target: Target
    protocol: str  # "h1" | "h2"; for https without --protocol: the ALPN result, set by preflight
    protocol_forced: bool
    h2c: bool
    connections: int
    streams: int
    streams_given: bool
    pipeline: int
    duration_ns: int | None
    requests: int | None
    warmup_ns: int
    timeout_ns: int
    workers: int
    cpus: tuple[tuple[int, ...], ...]  # per worker; empty tuple = not pinned
    method: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    insecure: bool
    ca: str | None
    quiet: bool
    json_path: str | None
    extra: dict = field(default_factory=dict)

    def with_protocol(self, protocol: str) -> Plan:
        streams = self.streams if self.streams_given else (10 if protocol == "h2" else 1)
        return dataclasses.replace(self, protocol=protocol, streams=streams)

    def worker_connections(self, index: int) -> int:
        return self.connections // self.workers + (1 if index < self.connections % self.workers else 0)

    def worker_requests(self, index: int) -> int | None:
        if self.requests is None:
            return None
        return self.requests // self.workers + (1 if index < self.requests % self.workers else 0)

    def config(self) -> dict:
        """Every option as used, for the result document."""
        return {
            "url": self.target.url,
            "protocol": self.protocol,
            "h2c": self.h2c,
            "connections": self.connections,
            "streams": self.streams,
            "pipeline": self.pipeline,
            "duration_s": None if self.duration_ns is None else self.duration_ns / 1e9,
            "requests": self.requests,
            "warmup_s": self.warmup_ns / 1e9,
            "timeout_s": self.timeout_ns / 1e9,
            "workers": self.workers,
            "cpus": [list(c) for c in self.cpus],
            "method": self.method,
            "headers": [f"{k}: {v}" for k, v in self.headers],
            "body_bytes": len(self.body),
            "insecure": self.insecure,
            "ca": self.ca,
        }


def parse_target(url: str) -> Target:
    if not url or any(c.isspace() for c in url):
        raise UsageError(f"URL {url!r}: must be a non-empty URL without spaces")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise UsageError(f"URL {url!r}: {e}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UsageError(f"URL {url!r}: scheme must be http:// or https://, not {parts.scheme!r}://"
                         if scheme else f"URL {url!r}: missing scheme (http:// or https://)")
    host = parts.hostname or ""
    if not host:
        raise UsageError(f"URL {url!r}: missing host")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
        if not _HOST_RE.match(host) or len(host) > 253:
            raise UsageError(f"URL {url!r}: invalid host {host!r}") from None
    if port == 0:
        raise UsageError(f"URL {url!r}: port must be 1-65535")
    default_port = 443 if scheme == "https" else 80
    port = port or default_port
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    shown = f"[{host}]" if ip is not None and ip.version == 6 else host
    authority = shown if port == default_port else f"{shown}:{port}"
    return Target(url=url, scheme=scheme, host=host, port=port, path=path, authority=authority)


def parse_header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    name = name.strip()
    if not sep or not name:
        raise UsageError(f"header {text!r}: expected 'Name: value'")
    if not _TOKEN_RE.match(name):
        raise UsageError(f"header {text!r}: invalid header name {name!r}")
    value = value.strip()
    if any(c in value for c in "\r\n\0"):
        raise UsageError(f"header {text!r}: value contains CR, LF or NUL")
    return name, value


def assign_cpus(workers: int | None, cpus: list[int] | None) -> tuple[int, tuple[tuple[int, ...], ...]]:
    """One worker per allowed CPU by default. With fewer workers than CPUs the CPUs are split in
    contiguous groups; with more, workers share CPUs round-robin (allowed, warned about by the CLI)."""
    allowed = sorted(os.sched_getaffinity(0))
    if cpus is not None:
        bad = [c for c in cpus if c not in allowed]
        if bad:
            raise UsageError(f"--cpus: CPU(s) {','.join(map(str, bad))} not available "
                             f"(allowed: {','.join(map(str, allowed))})")
        pool = cpus
    else:
        pool = allowed
    n = workers if workers is not None else len(pool)
    if n <= len(pool):
        groups = []
        for i in range(n):
            lo, hi = i * len(pool) // n, (i + 1) * len(pool) // n
            groups.append(tuple(pool[lo:hi]))
        return n, tuple(groups)
    return n, tuple((pool[i % len(pool)],) for i in range(n))


def build_plan(
    url: str,
    *,
    connections: str | int = 10,
    streams: str | int | None = None,
    pipeline: str | int = 1,
    duration: str | None = None,
    requests: str | int | None = None,
    warmup: str | None = None,
    timeout: str = "10s",
    workers: str | int | None = None,
    cpus: str | None = None,
    protocol: str | None = None,
    h2c: bool = False,
    method: str = "GET",
    headers: tuple[str, ...] | list[str] = (),
    body: str | None = None,
    body_file: str | None = None,
    insecure: bool = False,
    ca: str | None = None,
    quiet: bool = False,
    json_path: str | None = None,
) -> Plan:
    target = parse_target(url)
    if protocol is not None and protocol not in ("h1", "h2"):
        raise UsageError(f"--protocol: {protocol!r} must be h1 or h2")
    if h2c:
        if target.tls:
            raise UsageError("--h2c is HTTP/2 over cleartext: use an http:// URL (https:// negotiates h2 by ALPN)")
        if protocol == "h1":
            raise UsageError("--h2c conflicts with --protocol h1")
        protocol = "h2"
    if protocol == "h2" and not target.tls:
        h2c = True  # HTTP/2 on http:// can only be prior knowledge
    resolved_protocol = protocol or ("h1" if not target.tls else "h1")
    n_conn = parse_count(connections, "--connections")
    n_pipe = parse_count(pipeline, "--pipeline")
    if n_pipe > MAX_PIPELINE:
        raise UsageError(f"--pipeline: {n_pipe} is above the maximum of {MAX_PIPELINE}")
    if n_pipe > 1 and protocol == "h2":
        raise UsageError("--pipeline applies to HTTP/1.1; use --streams for HTTP/2")
    n_streams = parse_count(streams, "--streams") if streams is not None else None
    if n_streams is not None and n_streams > MAX_STREAMS:
        raise UsageError(f"--streams: {n_streams} is above the maximum of {MAX_STREAMS}")
    if duration is not None and requests is not None:
        raise UsageError("--duration and --requests are exclusive: give one")
    duration_ns = parse_duration_ns(duration, "--duration") if duration is not None else None
    n_requests = parse_count(requests, "--requests") if requests is not None else None
    if duration_ns is None and n_requests is None:
        duration_ns = 10_000_000_000  # wrk's default
    warmup_ns = parse_duration_ns(warmup, "--warmup", allow_zero=True) if warmup else 0
    timeout_ns = parse_duration_ns(timeout, "--timeout")
    n_workers = parse_count(workers, "--workers") if workers is not None else None
    cpu_list = parse_cpu_list(cpus) if cpus is not None else None
    n_workers, cpu_groups = assign_cpus(n_workers, cpu_list)
    if n_conn < n_workers:
        n_workers, cpu_groups = n_conn, cpu_groups[:n_conn]
    if n_requests is not None and n_requests < n_workers:
        n_workers, cpu_groups = n_requests, cpu_groups[:n_requests]
    method = method.upper()
    if not _TOKEN_RE.match(method):
        raise UsageError(f"--method: {method!r} is not a valid HTTP method")
    parsed_headers = tuple(parse_header(h) for h in headers)
    if body is not None and body_file is not None:
        raise UsageError("--body and --body-file are exclusive: give one")
    body_bytes = b""
    if body is not None:
        body_bytes = body.encode()
    elif body_file is not None:
        try:
            with open(body_file, "rb") as f:
                body_bytes = f.read()
        except OSError as e:
            raise UsageError(f"--body-file: cannot read {body_file!r}: {e.strerror}") from None
    if ca is not None:
        if not target.tls:
            raise UsageError("--ca applies to https:// URLs")
        if not os.path.isfile(ca):
            raise UsageError(f"--ca: file {ca!r} does not exist")
    return Plan(
        target=target,
        protocol=resolved_protocol,
        protocol_forced=protocol is not None,
        h2c=h2c,
        connections=n_conn,
        streams=n_streams if n_streams is not None else (10 if resolved_protocol == "h2" else 1),
        streams_given=n_streams is not None,
        pipeline=n_pipe,
        duration_ns=duration_ns,
        requests=n_requests,
        warmup_ns=warmup_ns,
        timeout_ns=timeout_ns,
        workers=n_workers,
        cpus=cpu_groups,
        method=method,
        headers=parsed_headers,
        body=body_bytes,
        insecure=insecure,
        ca=ca,
        quiet=quiet,
        json_path=json_path,
    )

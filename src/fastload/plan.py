"""The validated, picklable description of a run. Everything the user typed is checked here,
before any traffic; workers receive a Plan and never see click or raw strings."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from . import placement
from .errors import UsageError, read_input
from .perfstat import PerfSpec, parse_spec
from .units import parse_count, parse_cpu_list, parse_duration_ns

if TYPE_CHECKING:
    from .scenario import Mix

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
    protocol: str  # "h1" | "h2" | "h3"; for https without --protocol: the ALPN result (h1/h2)
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
    rate: float | None = None  # total requests/s across workers (open model)
    stages: tuple[tuple[int, float, float], ...] = ()  # (duration_ns, rate_from, rate_to)
    arrival: str = "constant"  # "constant" | "poisson"
    seed: int = 1
    start_at: float | None = None  # unix time
    tags: tuple[tuple[str, str], ...] = ()
    hdr_log: str | None = None
    grpc: bool = False  # unary gRPC calls: success is judged by the grpc-status trailer
    perf_stat: PerfSpec | None = None  # --perf-stat; events settled by perfstat.check()
    pin_mode: str = "affinity"  # "affinity" | "taskset" | "numactl"
    numa_node: int | None = None
    avoid_cpus: tuple[int, ...] = ()
    server_pid: int | None = None
    extra: dict = field(default_factory=dict)
    mix: Mix | None = None  # --scenario / --replay / --check-*: variants picked per request

    @property
    def paced(self) -> bool:
        return bool(self.stages)

    @property
    def replay(self) -> bool:
        return self.mix is not None and self.mix.replay

    def worker_trace(self, index: int) -> tuple[list[int], list[int]]:
        """This worker's share of a replayed trace (offsets, entries): every w-th request, so
        the workers' shares interleave in time."""
        assert self.mix is not None
        return (list(self.mix.offsets_ns[index::self.workers]),
                list(self.mix.schedule[index::self.workers]))

    def worker_stages(self, index: int) -> list[tuple[int, float, float]]:
        """This worker's share of the schedule: every worker runs the same shape at 1/w the rate."""
        return [(d, r0 / self.workers, r1 / self.workers) for d, r0, r1 in self.stages]

    def with_protocol(self, protocol: str) -> Plan:
        streams = self.streams if self.streams_given else default_streams(protocol)
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
            "rate": self.rate,
            "stages": [{"duration_s": d / 1e9, "from": r0, "to": r1} for d, r0, r1 in self.stages],
            "arrival": self.arrival,
            "seed": self.seed,
            "start_at": self.start_at,
            "tags": dict(self.tags),
            "grpc": self.grpc,
            "grpc_method": self.target.path[1:] if self.grpc else None,
            "perf_stat": None if self.perf_stat is None else list(self.perf_stat.events),
            "pin_mode": self.pin_mode,
            "numa_node": self.numa_node,
            "avoid_cpus": list(self.avoid_cpus),
            "server_pid": self.server_pid,
            **({"scenario": self.mix.config()} if self.mix is not None else {}),
        }


def default_streams(protocol: str) -> int:
    """Concurrent requests per connection without --streams: HTTP/1.1 has one at a time."""
    return 1 if protocol == "h1" else 10


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


def assign_cpus(workers: int | None, pool: list[int]) -> tuple[int, tuple[tuple[int, ...], ...]]:
    """One worker per CPU of the pool by default. With fewer workers than CPUs the CPUs are split
    in contiguous groups; with more, workers share CPUs round-robin (allowed, warned about)."""
    n = workers if workers is not None else len(pool)
    if n <= len(pool):
        groups = []
        for i in range(n):
            lo, hi = i * len(pool) // n, (i + 1) * len(pool) // n
            groups.append(tuple(pool[lo:hi]))
        return n, tuple(groups)
    return n, tuple((pool[i % len(pool)],) for i in range(n))


def parse_rate(text: str | float, what: str = "--rate") -> float:
    """'2000', '10k', '2.5k' -> requests per second (0 allowed inside --stages)."""
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([kKmM]?)\s*(?:/s)?\s*", text)
        if not m:
            raise UsageError(f"{what}: {text!r} is not a rate (examples: 2000, 10k, 2.5k)")
        value = float(m.group(1)) * {"": 1, "k": 1e3, "m": 1e6}[m.group(2).lower()]
    return value


def parse_stages(text: str, start_rate: float) -> tuple[tuple[int, float, float], ...]:
    """'30s:1000,1m:5000,30s:0': each stage ramps linearly from the previous target (or the
    start rate) to its own target over its duration, as k6 stages do."""
    stages = []
    prev = start_rate
    for part in text.split(","):
        dur, sep, target = part.strip().partition(":")
        if not sep:
            raise UsageError(f"--stages: {part.strip()!r} is not DURATION:RATE (example: 30s:1000)")
        d = parse_duration_ns(dur, f"--stages {part.strip()!r}")
        r = parse_rate(target, f"--stages {part.strip()!r}")
        stages.append((d, prev, r))
        prev = r
    if len(stages) > 64:
        raise UsageError("--stages: at most 64 stages")
    if all(r0 == 0 and r1 == 0 for _, r0, r1 in stages):
        raise UsageError("--stages: every stage has a rate of 0")
    return tuple(stages)


def parse_tags(tags: tuple[str, ...] | list[str]) -> tuple[tuple[str, str], ...]:
    out = []
    for t in tags:
        k, sep, v = t.partition("=")
        if not sep or not k.strip():
            raise UsageError(f"--tag {t!r}: expected KEY=VALUE")
        out.append((k.strip(), v.strip()))
    return tuple(out)


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
    body: str | bytes | None = None,
    body_file: str | None = None,
    insecure: bool = False,
    ca: str | None = None,
    quiet: bool = False,
    json_path: str | None = None,
    rate: str | None = None,
    stages: str | None = None,
    arrival: str = "constant",
    seed: int = 1,
    start_at: float | None = None,
    tags: tuple[str, ...] | list[str] = (),
    hdr_log: str | None = None,
    grpc_method: str | None = None,
    grpc_data_file: str | None = None,
    grpc_data_b64: str | None = None,
    grpc_proto: str | None = None,
    grpc_message: str | None = None,
    perf_stat: str | None = None,
    numa_node: int | None = None,
    pin_mode: str = "affinity",
    avoid_cpus: str | None = None,
    server_pid: int | None = None,
    scenario: str | None = None,
    replay: str | None = None,
    replay_speed: float | str = 1.0,
    check_status: str | None = None,
    check_body_contains: tuple[str, ...] | list[str] = (),
    check_body_regex: tuple[str, ...] | list[str] = (),
    check_json: tuple[str, ...] | list[str] = (),
    check_max_body: str | int | None = None,
    check_sample: str | float | None = None,
) -> Plan:
    target = parse_target(url)
    mixed = scenario is not None or replay is not None
    if scenario is not None and replay is not None:
        raise UsageError("--scenario and --replay are exclusive: give one")
    if replay is not None:
        for flag, given in (("--rate", rate), ("--stages", stages), ("--requests", requests),
                            ("--duration", duration), ("--warmup", warmup)):
            if given is not None:
                raise UsageError(f"--replay sends the trace at its own offsets: {flag} does not apply")
        if arrival != "constant":
            raise UsageError("--replay sends the trace at its own offsets: --arrival does not apply")
    elif replay_speed not in (1, 1.0, "1"):
        raise UsageError("--replay-speed applies to --replay")
    if mixed and (body is not None or body_file is not None):
        raise UsageError("--body/--body-file do not apply with " + ("--scenario: give bodies in the file"
                         if scenario is not None else "--replay: give bodies in the trace"))
    from .checks import from_flags, parse_sample

    flag_checks = from_flags(check_status, check_body_contains, check_body_regex, check_json, check_max_body)
    sample = parse_sample(check_sample)
    if check_sample is not None and not flag_checks and scenario is None:
        raise UsageError("--check-sample: no checks to sample (add --check-status, --check-body-contains, ...)")
    if (mixed or flag_checks) and grpc_method is not None:
        raise UsageError("--scenario, --replay and --check-* do not apply to fastload grpc")
    grpc = grpc_method is not None
    if grpc:
        from .grpc_call import grpc_request

        if protocol in ("h1", "h3"):
            raise UsageError(f"gRPC runs over HTTP/2: --protocol {protocol} cannot be used")
        protocol = "h2"
        target, method, headers, body = grpc_request(target, grpc_method, grpc_data_file,
                                                     grpc_data_b64, tuple(headers), grpc_proto,
                                                     grpc_message)
        body_file = None
    if protocol is not None and protocol not in ("h1", "h2", "h3"):
        raise UsageError(f"--protocol: {protocol!r} must be h1, h2 or h3")
    if protocol == "h3":
        # HTTP/3 is QUIC, which always carries TLS: no cleartext form, no pipelining.
        if not target.tls:
            raise UsageError("--protocol h3 needs an https:// URL (HTTP/3 runs over QUIC, always TLS)")
        if h2c:
            raise UsageError("--h2c conflicts with --protocol h3")
        if mixed or flag_checks:
            # The HTTP/3 session (aioquic, in Python) sends the run's one request.
            raise UsageError("--scenario, --replay and --check-* are not supported with --protocol h3 "
                             "yet (use h1 or h2)")
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
    if n_pipe > 1 and protocol in ("h2", "h3"):
        raise UsageError(f"--pipeline applies to HTTP/1.1; use --streams for HTTP/{protocol[1]}")
    n_streams = parse_count(streams, "--streams") if streams is not None else None
    if n_streams is not None and n_streams > MAX_STREAMS:
        raise UsageError(f"--streams: {n_streams} is above the maximum of {MAX_STREAMS}")
    if duration is not None and requests is not None:
        raise UsageError("--duration and --requests are exclusive: give one")
    duration_ns = parse_duration_ns(duration, "--duration") if duration is not None else None
    n_requests = parse_count(requests, "--requests") if requests is not None else None
    rate_value = parse_rate(rate) if rate is not None else None
    if rate_value is not None and rate_value <= 0:
        raise UsageError(f"--rate: {rate!r} must be greater than zero")
    stage_list: tuple[tuple[int, float, float], ...] = ()
    if stages is not None:
        if duration is not None:
            raise UsageError("--stages sets the duration: do not give --duration too")
        stage_list = parse_stages(stages, rate_value or 0.0)
        duration_ns = sum(d for d, _, _ in stage_list)
    if arrival not in ("constant", "poisson"):
        raise UsageError(f"--arrival: {arrival!r} must be constant or poisson")
    if arrival == "poisson" and rate_value is None and not stage_list:
        raise UsageError("--arrival poisson needs --rate or --stages")
    if duration_ns is None and n_requests is None:
        duration_ns = 10_000_000_000  # wrk's default
    if rate_value is not None and not stage_list:
        # A constant rate is one stage lasting the whole run (or until -n is reached: the
        # schedule then runs long enough for N requests with a generous margin).
        length = duration_ns if duration_ns is not None else int(n_requests / rate_value * 1e9 * 10 + 60e9)
        stage_list = ((length, rate_value, rate_value),)
    if start_at is not None:
        import time as _time

        now = _time.time()
        if start_at < now - 1:
            raise UsageError(f"--start-at: {start_at} is in the past (now is {now:.0f})")
        if start_at > now + 86400:
            raise UsageError(f"--start-at: {start_at} is more than a day away")
    tag_list = parse_tags(tags)
    if hdr_log is not None:
        d = os.path.dirname(os.path.abspath(hdr_log))
        if not os.path.isdir(d) or not os.access(d, os.W_OK):
            raise UsageError(f"--hdr-log: cannot write {hdr_log!r} (directory missing or not writable)")
    warmup_ns = parse_duration_ns(warmup, "--warmup", allow_zero=True) if warmup else 0
    timeout_ns = parse_duration_ns(timeout, "--timeout")
    n_workers = parse_count(workers, "--workers") if workers is not None else None
    cpu_list = parse_cpu_list(cpus) if cpus is not None else None
    avoid = parse_cpu_list(avoid_cpus, "--avoid-cpus") if avoid_cpus is not None else None
    if numa_node is not None and numa_node < 0:
        raise UsageError(f"--numa-node: {numa_node} must be a node number (0, 1, ...)")
    placement.check_pin_mode(pin_mode)
    placement.check_server_pid(server_pid)
    pool = placement.choose_pool(cpu_list, numa_node, avoid)
    n_workers, cpu_groups = assign_cpus(n_workers, pool)
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
        body_bytes = body if isinstance(body, bytes) else body.encode()
    elif body_file is not None:
        body_bytes = read_input(body_file, "--body-file")
    mix = None
    if scenario is not None:
        from .scenario import parse_scenario

        mix = parse_scenario(scenario, target, method, parsed_headers, seed, flag_checks, sample)
    elif replay is not None:
        from .replay import parse_replay

        try:
            speed = float(replay_speed)
        except ValueError:
            raise UsageError(f"--replay-speed: {replay_speed!r} is not a number") from None
        mix = parse_replay(replay, speed, method, parsed_headers, flag_checks, sample)
        # The run lasts as long as the trace, plus the time the last request may take.
        duration_ns = mix.offsets_ns[-1] + timeout_ns + 1_000_000_000
        n_workers = min(n_workers, len(mix.offsets_ns))
        cpu_groups = cpu_groups[:n_workers]
    elif flag_checks:
        from .scenario import single

        mix = single(method, target.path, parsed_headers, body_bytes, flag_checks, sample)
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
        streams=n_streams if n_streams is not None else default_streams(resolved_protocol),
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
        rate=rate_value,
        stages=stage_list,
        arrival=arrival,
        seed=seed,
        start_at=start_at,
        tags=tag_list,
        hdr_log=hdr_log,
        grpc=grpc,
        perf_stat=parse_spec(perf_stat),
        pin_mode=pin_mode,
        numa_node=numa_node,
        avoid_cpus=tuple(avoid or ()),
        server_pid=server_pid,
        mix=mix,
    )

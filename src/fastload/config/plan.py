"""The validated, picklable description of a run. Everything the user typed is checked here,
before any traffic; workers receive a Plan and never see click or raw strings."""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from typing import Any

from fastload.config.options import RunOptions
from fastload.config.rates import parse_rate, parse_stages
from fastload.config.syntax import TOKEN_RE, Target, parse_header, parse_tags, parse_target
from fastload.config.windows import (
    Hook,
    Window,
    check_hooks,
    check_windows,
    parse_hook,
    parse_phase,
    partition,
)
from fastload.errors import UsageError, check_writable, read_input
from fastload.faults.spec import (
    FaultSpec,
    ProxySpec,
    parse_fault_proxies,
    parse_faults,
    validate,
)
from fastload.grpc.call import grpc_request
from fastload.host import placement
from fastload.host.info import native_tls_built
from fastload.host.perfstat import PerfSpec, parse_spec
from fastload.units import parse_count, parse_cpu_list, parse_duration_ns
from fastload.workload.checks import CheckSpec, from_flags, parse_sample
from fastload.workload.mix import Mix, single

# The QUIC libraries HTTP/3 can run on (fastload.h3.backends); the first is the default.
H3_BACKENDS = ("aioquic", "qh3")
TLS_PATHS = ("native", "python")  # --tls-path
MAX_PIPELINE = 1024
MAX_STREAMS = 1 << 16


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
    mix: Mix | None = None  # --scenario / --replay / --check-*: variants picked per request
    h3_backend: str = H3_BACKENDS[0]  # --h3-backend: the QUIC library of --protocol h3
    # --tls-path of an https:// run over TCP: "native" (OpenSSL in the native core) or "python"
    # (uvloop's TLS); None for http:// and HTTP/3 (QUIC does its own TLS).
    tls_path: str | None = None
    windows: tuple[Window, ...] = ()  # --phase (and later --fault) windows, in time order
    phases: tuple[Window, ...] = ()  # the run cut at the windows: baseline, windows, recovery-*
    hooks: tuple[Hook, ...] = ()  # --at, in time order
    recover: tuple[str, ...] = ()  # --recover expressions (SLO syntax); () = the default criterion
    faults: tuple[FaultSpec, ...] = ()  # --fault windows (also in windows, kind "fault")
    fault_proxies: tuple[ProxySpec, ...] = ()  # --fault-proxy
    fault_via: str = "proxy"  # "proxy" | "netem"
    fault_dev: str | None = None  # --fault-dev (netem); None: the route's device
    # Where the workers connect instead of the URL's host and port (the fault proxy in front
    # of the URL); the URL still gives Host, SNI and certificate checks.
    connect_to: tuple[str, int] | None = None
    # --coalesce: the event loop polls at most once per this while responses flow (0: off).
    coalesce_ns: int = 0

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
            "coalesce_us": self.coalesce_ns / 1e3,
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
            **({"h3_backend": self.h3_backend} if self.protocol == "h3" else {}),
            **({"tls_path": self.tls_path} if self.tls_path is not None else {}),
            **({"scenario": self.mix.config()} if self.mix is not None else {}),
            **({"windows": [{"name": w.name, "kind": w.kind, "spec": w.spec, "start_s": w.start_ns / 1e9,
                             "end_s": None if w.end_ns is None else w.end_ns / 1e9}
                            for w in self.windows]} if self.windows else {}),
            **({"hooks": [{"at_s": h.offset_ns / 1e9, "command": h.command} for h in self.hooks]}
               if self.hooks else {}),
            **({"recover": list(self.recover)} if self.recover else {}),
        }


def default_streams(protocol: str) -> int:
    """Concurrent requests per connection without --streams: HTTP/1.1 has one at a time."""
    return 1 if protocol == "h1" else 10


def build_plan(url: str, **options: Any) -> Plan:
    """plan_from() of keyword options: `build_plan(url, connections=8, h2c=True)`."""
    return plan_from(RunOptions.build(url, **options))


def plan_from(o: RunOptions, *, place_here: bool = True) -> Plan:
    """Every option checked, one concern at a time, before any traffic. With place_here False
    (a --cluster run) the placement options are checked for syntax only: each load host places
    its own workers (place()), and the Plan's one worker is a placeholder."""
    target = check_target(o)
    shape = check_load_shape(o, target)
    work = check_workload(o, target, shape)
    place = check_placement(o, shape, work) if place_here else check_placement_syntax(o)
    out = check_outputs(o)
    timing = check_timing(o, work.duration_ns, shape.warmup_ns, target)
    protocol = target.protocol or "h1"  # https:// without --protocol: preflight asks ALPN
    return Plan(
        target=target.target, protocol=protocol, protocol_forced=target.protocol is not None,
        h2c=target.h2c, connections=shape.connections,
        streams=shape.streams if shape.streams is not None else default_streams(protocol),
        streams_given=shape.streams is not None, pipeline=shape.pipeline,
        duration_ns=work.duration_ns, requests=shape.requests, warmup_ns=shape.warmup_ns,
        timeout_ns=shape.timeout_ns, workers=place.workers, cpus=place.cpus, method=work.method,
        headers=work.headers, body=work.body, insecure=o.insecure, ca=o.ca, quiet=o.quiet,
        json_path=o.json_path, rate=shape.rate, stages=shape.stages, arrival=o.arrival, seed=o.seed,
        start_at=o.start_at, tags=out.tags, hdr_log=o.hdr_log, grpc=target.grpc,
        perf_stat=out.perf_stat, pin_mode=o.pin_mode, numa_node=o.numa_node,
        avoid_cpus=place.avoid_cpus, server_pid=o.server_pid, mix=work.mix,
        h3_backend=target.h3_backend, tls_path=target.tls_path,
        windows=timing.windows, phases=timing.phases, hooks=timing.hooks, recover=timing.recover,
        faults=timing.faults, fault_proxies=timing.fault_proxies, fault_via=o.fault_via,
        fault_dev=o.fault_dev, coalesce_ns=check_coalesce(o, shape, work),
    )


@dataclass(frozen=True)
class Timing:
    windows: tuple[Window, ...]
    phases: tuple[Window, ...]
    hooks: tuple[Hook, ...]
    recover: tuple[str, ...]
    faults: tuple[FaultSpec, ...] = ()
    fault_proxies: tuple[ProxySpec, ...] = ()


def check_timing(o: RunOptions, duration_ns: int | None, warmup_ns: int,
                 t: TargetSpec | None = None) -> Timing:
    """What happens when in run time: --phase and --fault windows (no overlap, within the run),
    the phases they cut the run into, and --at hooks."""
    faults = parse_faults(o.fault)
    proxies = parse_fault_proxies(o.fault_proxy)
    if o.fault_via not in ("proxy", "netem"):
        raise UsageError(f"--fault-via: {o.fault_via!r} must be proxy or netem")
    if proxies and not faults:
        raise UsageError("--fault-proxy: no --fault window names it (@NAME)")
    if o.fault_dev is not None and o.fault_via != "netem":
        raise UsageError("--fault-dev applies to --fault-via netem")
    if faults:
        protocol = t.protocol if t is not None else None
        validate(faults, proxies, via=o.fault_via,
                 protocol=protocol or ("h1" if t is not None and not t.target.tls else None),
                 run_end_ns=duration_ns)
        if o.fault_via == "netem":
            from fastload.faults.netem import require_root

            require_root()
        if t is not None and t.protocol == "h3" and any(f.target is None for f in faults):
            raise UsageError("--fault on fastload's own connections needs TCP (h1, h2): HTTP/3 is UDP")
    fault_windows = [Window(name=f.name, kind="fault", spec=f.spec, start_ns=f.start_ns,
                            end_ns=f.end_ns) for f in faults]
    windows = check_windows([parse_phase(p) for p in o.phase] + fault_windows, duration_ns,
                            warmup_ns)
    hooks = check_hooks([parse_hook(a) for a in o.at], duration_ns)
    if o.recover and not windows:
        raise UsageError("--recover needs a window to recover from (--phase, --fault)")
    return Timing(windows=windows, phases=partition(windows, duration_ns) if windows else (),
                  hooks=hooks, recover=tuple(o.recover), faults=faults, fault_proxies=proxies)


@dataclass(frozen=True)
class TargetSpec:
    target: Target
    protocol: str | None  # forced protocol; None: h1, or ALPN's choice for https://
    h2c: bool
    grpc: bool
    method: str  # gRPC fixes these three
    headers: tuple[str, ...]
    body: bytes | str | None
    body_file: str | None
    checks: CheckSpec  # --check-* flags
    sample: float
    h3_backend: str
    tls_path: str | None


def check_target(o: RunOptions) -> TargetSpec:
    """URL, protocol (h1/h2/h3, h2c), gRPC framing, --ca; and which of the workload kinds the
    protocol can carry."""
    target = parse_target(o.url)
    mixed = o.scenario is not None or o.replay is not None
    if o.scenario is not None and o.replay is not None:
        raise UsageError("--scenario and --replay are exclusive: give one")
    if o.replay is not None:
        for flag, given in (("--rate", o.rate), ("--stages", o.stages), ("--requests", o.requests),
                            ("--duration", o.duration), ("--warmup", o.warmup)):
            if given is not None:
                raise UsageError(f"--replay sends the trace at its own offsets: {flag} does not apply")
        if o.arrival != "constant":
            raise UsageError("--replay sends the trace at its own offsets: --arrival does not apply")
    elif o.replay_speed not in (1, 1.0, "1"):
        raise UsageError("--replay-speed applies to --replay")
    if mixed and (o.body is not None or o.body_file is not None):
        raise UsageError("--body/--body-file do not apply with " + ("--scenario: give bodies in the file"
                         if o.scenario is not None else "--replay: give bodies in the trace"))
    checks = from_flags(o.check_status, o.check_body_contains, o.check_body_regex, o.check_json,
                        o.check_max_body)
    sample = parse_sample(o.check_sample)
    if o.check_sample is not None and not checks and o.scenario is None:
        raise UsageError("--check-sample: no checks to sample (add --check-status, --check-body-contains, ...)")
    if (mixed or checks) and o.grpc_method is not None:
        raise UsageError("--scenario, --replay and --check-* do not apply to fastload grpc")
    protocol, h2c = o.protocol, o.h2c
    method, headers, body, body_file = o.method, tuple(o.headers), o.body, o.body_file
    grpc = o.grpc_method is not None
    if o.grpc_method is not None:
        if protocol in ("h1", "h3"):
            raise UsageError(f"gRPC runs over HTTP/2: --protocol {protocol} cannot be used")
        protocol = "h2"
        target, method, headers, body = grpc_request(target, o.grpc_method, o.grpc_data_file,
                                                     o.grpc_data_b64, headers, o.grpc_proto,
                                                     o.grpc_message)
        body_file = None
    if protocol is not None and protocol not in ("h1", "h2", "h3"):
        raise UsageError(f"--protocol: {protocol!r} must be h1, h2 or h3")
    if protocol == "h3":
        # HTTP/3 is QUIC, which always carries TLS: no cleartext form, no pipelining.
        if not target.tls:
            raise UsageError("--protocol h3 needs an https:// URL (HTTP/3 runs over QUIC, always TLS)")
        if h2c:
            raise UsageError("--h2c conflicts with --protocol h3")
        if mixed or checks:
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
    if o.ca is not None:
        if not target.tls:
            raise UsageError("--ca applies to https:// URLs")
        if not os.path.isfile(o.ca):
            raise UsageError(f"--ca: file {o.ca!r} does not exist")
    h3_backend = H3_BACKENDS[0]
    if o.h3_backend is not None:
        if protocol != "h3":
            raise UsageError("--h3-backend applies to --protocol h3")
        if o.h3_backend not in H3_BACKENDS:
            raise UsageError(f"--h3-backend: {o.h3_backend!r} must be one of {', '.join(H3_BACKENDS)}")
        h3_backend = o.h3_backend
    return TargetSpec(target=target, protocol=protocol, h2c=h2c, grpc=grpc, method=method,
                      headers=headers, body=body, body_file=body_file, checks=checks, sample=sample,
                      h3_backend=h3_backend, tls_path=check_tls_path(o.tls_path, target.tls, protocol))


def check_tls_path(given: str | None, tls: bool, protocol: str | None) -> str | None:
    """--tls-path: native where this build has the native TLS unit, unless asked otherwise."""
    if given is not None:
        if given not in TLS_PATHS:
            raise UsageError(f"--tls-path: {given!r} must be one of {', '.join(TLS_PATHS)}")
        if not tls or protocol == "h3":
            raise UsageError("--tls-path applies to https:// URLs over TCP (HTTP/1.1, HTTP/2); "
                             "HTTP/3's TLS is QUIC's")
        if given == "native" and not native_tls_built():
            raise UsageError("--tls-path native: this build has no native TLS (it was built without "
                             "OpenSSL's headers: apt install libssl-dev, then reinstall fastload)")
        return given
    if not tls or protocol == "h3":
        return None
    return "native" if native_tls_built() else "python"


MAX_COALESCE_NS = 1_000_000


def check_coalesce(o: RunOptions, shape: LoadShape, work: Workload) -> int:
    """--coalesce: a bounded poll interval, for the closed model. An open model sends on its
    schedule, which a loop that waits between polls would delay."""
    if o.coalesce is None:
        return 0
    ns = parse_duration_ns(o.coalesce, "--coalesce", allow_zero=True)
    if ns > MAX_COALESCE_NS:
        raise UsageError(f"--coalesce: {o.coalesce!r} is above the maximum of 1ms (each latency "
                         "may be recorded up to this late)")
    if ns and (shape.stages or (work.mix is not None and work.mix.replay)):
        raise UsageError("--coalesce applies to the closed model: with --rate, --stages or "
                         "--replay requests leave on their schedule")
    return ns


@dataclass(frozen=True)
class LoadShape:
    connections: int
    streams: int | None  # None: the protocol's default
    pipeline: int
    duration_ns: int | None
    requests: int | None
    rate: float | None
    stages: tuple[tuple[int, float, float], ...]
    warmup_ns: int
    timeout_ns: int


def check_load_shape(o: RunOptions, t: TargetSpec) -> LoadShape:
    """How much load and when: connections, streams, pipelining, duration or request count,
    the open-model rate and stages, warm-up, timeout, the shared start instant."""
    n_conn = parse_count(o.connections, "--connections")
    n_pipe = parse_count(o.pipeline, "--pipeline")
    if n_pipe > MAX_PIPELINE:
        raise UsageError(f"--pipeline: {n_pipe} is above the maximum of {MAX_PIPELINE}")
    if n_pipe > 1 and t.protocol in ("h2", "h3"):
        raise UsageError(f"--pipeline applies to HTTP/1.1; use --streams for HTTP/{t.protocol[1]}")
    n_streams = parse_count(o.streams, "--streams") if o.streams is not None else None
    if n_streams is not None and n_streams > MAX_STREAMS:
        raise UsageError(f"--streams: {n_streams} is above the maximum of {MAX_STREAMS}")
    if o.duration is not None and o.requests is not None:
        raise UsageError("--duration and --requests are exclusive: give one")
    duration_ns = parse_duration_ns(o.duration, "--duration") if o.duration is not None else None
    n_requests = parse_count(o.requests, "--requests") if o.requests is not None else None
    rate = parse_rate(o.rate) if o.rate is not None else None
    if rate is not None and rate <= 0:
        raise UsageError(f"--rate: {o.rate!r} must be greater than zero")
    stages: tuple[tuple[int, float, float], ...] = ()
    if o.stages is not None:
        if o.duration is not None:
            raise UsageError("--stages sets the duration: do not give --duration too")
        stages = parse_stages(o.stages, rate or 0.0)
        duration_ns = sum(d for d, _, _ in stages)
    if o.arrival not in ("constant", "poisson"):
        raise UsageError(f"--arrival: {o.arrival!r} must be constant or poisson")
    if o.arrival == "poisson" and rate is None and not stages:
        raise UsageError("--arrival poisson needs --rate or --stages")
    if duration_ns is None and n_requests is None:
        duration_ns = 10_000_000_000  # wrk's default
    if rate is not None and not stages:
        # A constant rate is one stage lasting the whole run (or until -n is reached: the
        # schedule then runs long enough for N requests with a generous margin).
        length = duration_ns if duration_ns is not None else int(n_requests / rate * 1e9 * 10 + 60e9)
        stages = ((length, rate, rate),)
    if o.start_at is not None:
        now = time.time()
        if o.start_at < now - 1:
            raise UsageError(f"--start-at: {o.start_at} is in the past (now is {now:.0f})")
        if o.start_at > now + 86400:
            raise UsageError(f"--start-at: {o.start_at} is more than a day away")
    warmup_ns = parse_duration_ns(o.warmup, "--warmup", allow_zero=True) if o.warmup else 0
    timeout_ns = parse_duration_ns(o.timeout, "--timeout")
    return LoadShape(connections=n_conn, streams=n_streams, pipeline=n_pipe, duration_ns=duration_ns,
                     requests=n_requests, rate=rate, stages=stages, warmup_ns=warmup_ns,
                     timeout_ns=timeout_ns)


@dataclass(frozen=True)
class Workload:
    method: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    mix: Mix | None  # --scenario / --replay / --check-*
    duration_ns: int | None  # a replay lasts as long as its trace


def check_workload(o: RunOptions, t: TargetSpec, shape: LoadShape) -> Workload:
    """What each request is: method, headers, body, or the variants of a scenario, a trace or
    checked responses."""
    method = t.method.upper()
    if not TOKEN_RE.match(method):
        raise UsageError(f"--method: {method!r} is not a valid HTTP method")
    headers = tuple(parse_header(h) for h in t.headers)
    if t.body is not None and t.body_file is not None:
        raise UsageError("--body and --body-file are exclusive: give one")
    body = b""
    if t.body is not None:
        body = t.body if isinstance(t.body, bytes) else t.body.encode()
    elif t.body_file is not None:
        body = read_input(t.body_file, "--body-file")
    mix = None
    duration_ns = shape.duration_ns
    if o.scenario is not None:
        from fastload.workload.scenario import parse_scenario

        mix = parse_scenario(o.scenario, t.target, method, headers, o.seed, t.checks, t.sample)
    elif o.replay is not None:
        try:
            speed = float(o.replay_speed)
        except ValueError:
            raise UsageError(f"--replay-speed: {o.replay_speed!r} is not a number") from None
        from fastload.workload.replay import parse_replay

        mix = parse_replay(o.replay, speed, method, headers, t.checks, t.sample)
        # The run lasts as long as the trace, plus the time the last request may take.
        duration_ns = mix.offsets_ns[-1] + shape.timeout_ns + 1_000_000_000
    elif t.checks:
        mix = single(method, t.target.path, headers, body, t.checks, t.sample)
    return Workload(method=method, headers=headers, body=body, mix=mix, duration_ns=duration_ns)


@dataclass(frozen=True)
class Placement:
    workers: int
    cpus: tuple[tuple[int, ...], ...]  # per worker
    avoid_cpus: tuple[int, ...]


def check_placement(o: RunOptions, shape: LoadShape, work: Workload) -> Placement:
    """Where the workers run: the CPU pool this host allows (--cpus, --numa-node, --avoid-cpus),
    one worker per CPU by default, never more workers than connections or requests."""
    placement.check_server_pid(o.server_pid)
    limit = min(shape.connections, shape.requests or shape.connections)
    if work.mix is not None and work.mix.replay:
        limit = min(limit, len(work.mix.offsets_ns))
    return place(o, limit)


def place(o: RunOptions, limit: int | None = None) -> Placement:
    """This host's workers and their CPUs from the placement options: no more than limit
    workers (the connections or requests they share). Also what a --cluster agent runs."""
    n_workers, cpu_list, avoid = _placement_options(o)
    pool = placement.choose_pool(cpu_list, o.numa_node, avoid)
    n_workers, cpu_groups = placement.assign_cpus(n_workers, pool)
    if limit is not None:
        n_workers, cpu_groups = min(n_workers, limit), cpu_groups[:limit]
    return Placement(workers=n_workers, cpus=cpu_groups, avoid_cpus=tuple(avoid or ()))


def check_placement_syntax(o: RunOptions) -> Placement:
    """The placement options checked without this host's CPUs: the hosts that run the
    workers are elsewhere."""
    _placement_options(o)
    if o.server_pid is not None:
        raise UsageError("--server-pid applies to one host: it does not apply with --cluster")
    return Placement(workers=1, cpus=((),), avoid_cpus=())


def _placement_options(o: RunOptions) -> tuple[int | None, list[int] | None, list[int] | None]:
    n_workers = parse_count(o.workers, "--workers") if o.workers is not None else None
    cpu_list = parse_cpu_list(o.cpus) if o.cpus is not None else None
    avoid = parse_cpu_list(o.avoid_cpus, "--avoid-cpus") if o.avoid_cpus is not None else None
    if o.numa_node is not None and o.numa_node < 0:
        raise UsageError(f"--numa-node: {o.numa_node} must be a node number (0, 1, ...)")
    placement.check_pin_mode(o.pin_mode)
    return n_workers, cpu_list, avoid


@dataclass(frozen=True)
class Outputs:
    tags: tuple[tuple[str, str], ...]
    perf_stat: PerfSpec | None


def check_outputs(o: RunOptions) -> Outputs:
    """What the run writes and labels: tags, the HdrHistogram log, the JSON path, perf events."""
    tags = parse_tags(o.tags)
    if o.hdr_log is not None:
        check_writable(o.hdr_log, "--hdr-log")
    if o.json_path not in (None, "-"):
        check_writable(o.json_path, "--json")
    return Outputs(tags=tags, perf_stat=parse_spec(o.perf_stat))

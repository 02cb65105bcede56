"""RunOptions: every option of `fastload run`, `fastload grpc` and `fastload.run()`, as the user
gave it. The CLI and the API fill one of these; config.plan validates it into a Plan."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fastload.errors import UsageError

Duration = str | float | int


@dataclass
class RunOptions:
    url: str
    # Load shape
    connections: str | int = 10
    streams: str | int | None = None
    pipeline: str | int = 1
    duration: Duration | None = None
    requests: str | int | None = None
    warmup: Duration | None = None
    timeout: Duration = "10s"
    coalesce: Duration | None = None  # --coalesce: poll at most once per this while responses flow
    rate: str | float | None = None
    stages: str | None = None
    arrival: str = "constant"
    seed: int = 1
    start_at: float | None = None
    # Target and protocol
    protocol: str | None = None
    h2c: bool = False
    insecure: bool = False
    ca: str | None = None
    h3_backend: str | None = None  # --h3-backend: aioquic (default) or qh3
    tls_path: str | None = None  # --tls-path: native (OpenSSL in the core) or python (uvloop's)
    # Workload
    method: str = "GET"
    headers: Sequence[str] = ()
    body: str | bytes | None = None
    body_file: str | None = None
    scenario: str | None = None
    replay: str | None = None
    replay_speed: float | str = 1.0
    check_status: str | None = None
    check_body_contains: Sequence[str] | str = ()
    check_body_regex: Sequence[str] | str = ()
    check_json: Sequence[str] | str = ()
    check_max_body: str | int | None = None
    check_sample: str | float | None = None
    grpc_method: str | None = None
    grpc_data_file: str | None = None
    grpc_data_b64: str | None = None
    grpc_proto: str | None = None
    grpc_message: str | None = None
    # Host placement
    workers: str | int | None = None
    cpus: str | None = None
    numa_node: int | None = None
    pin_mode: str = "affinity"
    avoid_cpus: str | None = None
    server_pid: int | None = None
    perf_stat: str | None = None
    # Outputs and gates
    quiet: bool = False
    json_path: str | None = None
    tags: Sequence[str] = ()
    hdr_log: str | None = None
    metrics_port: int | None = None
    slo: Sequence[str] = ()  # build() also takes one expression as a string
    slo_file: str | None = None
    # Several load hosts (cluster.coordinator): a Dask scheduler address or local:N
    cluster: str | None = None
    hosts: str | int | None = None
    cluster_tls_ca_file: str | None = None
    cluster_tls_cert: str | None = None
    cluster_tls_key: str | None = None
    # Phases and hooks (config.windows): --phase NAME=START-END, --at OFFSET:COMMAND, --recover EXPR
    phase: Sequence[str] = ()
    at: Sequence[str] = ()
    recover: Sequence[str] = ()
    # Faults (fastload.faults): --fault SPEC, --fault-proxy NAME=LISTEN=UPSTREAM, the mechanism
    fault: Sequence[str] = ()
    fault_proxy: Sequence[str] = ()
    fault_via: str = "proxy"
    fault_dev: str | None = None

    @classmethod
    def build(cls, url: str, **options: Any) -> RunOptions:
        """From keyword arguments, as the API and the CLI pass them: headers and tags may be
        mappings, and an unknown name is a UsageError naming it (not a TypeError)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise UsageError(f"unknown option{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}")
        headers = options.get("headers", ())
        if isinstance(headers, Mapping):
            options["headers"] = [f"{k}: {v}" for k, v in headers.items()]
        elif isinstance(headers, str):
            options["headers"] = [headers]
        tags = options.get("tags", ())
        if isinstance(tags, Mapping):
            options["tags"] = [f"{k}={v}" for k, v in tags.items()]
        elif isinstance(tags, str):
            options["tags"] = [tags]
        for name in ("slo", "phase", "at", "recover"):
            if isinstance(options.get(name), str):  # one expression, not its characters
                options[name] = [options[name]]
        return cls(url=url, **options)

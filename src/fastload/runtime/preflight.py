"""Checks made before any traffic that need the host or the network: descriptor and port
limits for the connections asked for, and one real connection (TLS handshake, ALPN, QUIC) to
the target, which settles the protocol of an https:// URL."""

from __future__ import annotations

import resource
import socket
import ssl

from fastload.config.plan import Plan
from fastload.errors import RunError, UsageError, certificate_rejected
from fastload.runtime.engine import alpn_for, make_ssl_context

FD_MARGIN = 64  # pipes, the event loop's own descriptors, stdio


def ensure_fd_limit(plan: Plan) -> None:
    """Raises RLIMIT_NOFILE's soft limit to the hard limit when the connections need it (the
    workers inherit it); refuses before any traffic when even the hard limit is too low."""
    per_worker = max(plan.worker_connections(i) for i in range(plan.workers))
    need = per_worker + FD_MARGIN
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if need <= soft:
        return
    if hard != resource.RLIM_INFINITY and need > hard:
        raise UsageError(
            f"{per_worker} connections per worker need about {need} file descriptors, but the "
            f"limit is {hard}: raise it (ulimit -n {need}, or nofile in /etc/security/limits.conf),"
            " or spread the connections over more workers with -w")
    resource.setrlimit(resource.RLIMIT_NOFILE, (need if hard == resource.RLIM_INFINITY else hard, hard))


PORT_RANGE_PATH = "/proc/sys/net/ipv4/ip_local_port_range"


def ephemeral_ports(path: str = PORT_RANGE_PATH) -> int | None:
    try:
        with open(path) as f:
            lo, hi = (int(x) for x in f.read().split()[:2])
    except (OSError, ValueError):
        return None
    return hi - lo + 1


def ensure_ports(plan: Plan, path: str = PORT_RANGE_PATH) -> None:
    """Every connection to one address needs its own local port: refuse a run that cannot get
    them rather than report the kernel's EADDRNOTAVAIL as server errors."""
    ports = ephemeral_ports(path)
    if ports is not None and plan.connections > ports:
        raise UsageError(
            f"{plan.connections} connections to one address need {plan.connections} local ports, but "
            f"the ephemeral range ({path}) has {ports}: widen it (sysctl -w "
            "net.ipv4.ip_local_port_range='1024 65535') or use fewer connections")


def preflight(plan: Plan, timeout_s: float = 5.0) -> Plan:
    """Checks that the target accepts a connection (and a TLS handshake), and settles the
    protocol for https:// by ALPN. Raises RunError: no traffic would be possible."""
    t = plan.target
    if plan.protocol == "h3":
        from fastload.h3.probe import probe  # loaded on use, as in the engine

        reason = probe(plan, timeout_s)
        if reason is not None:
            raise RunError(reason)
        return plan
    try:
        # Straight to the server even with a fault proxy in front of it (plan.connect_to): the
        # pre-flight checks the target, and a proxy connection would count in its statistics.
        sock = socket.create_connection((t.host, t.port), timeout=timeout_s)
    except OSError as e:
        raise RunError(f"cannot connect to {t.host}:{t.port}: {e.strerror or e}") from None
    try:
        if not t.tls:
            return plan
        ctx = make_ssl_context(plan, alpn_for(plan))
        try:
            tls = ctx.wrap_socket(sock, server_hostname=t.host)
        except ssl.SSLCertVerificationError as e:
            raise RunError(certificate_rejected(t.host, e.verify_message)) from None
        except (ssl.SSLError, OSError) as e:
            raise RunError(f"TLS handshake with {t.host}:{t.port} failed: {e}") from None
        sock = tls
        negotiated = tls.selected_alpn_protocol()
        if plan.protocol_forced:
            want = "h2" if plan.protocol == "h2" else "http/1.1"
            if negotiated not in (want, None) or (want == "h2" and negotiated is None):
                raise RunError(f"server at {t.host}:{t.port} did not negotiate {want} by ALPN"
                               f" (got {negotiated or 'nothing'})")
            return plan
        return plan.with_protocol("h2" if negotiated == "h2" else "h1")
    finally:
        sock.close()

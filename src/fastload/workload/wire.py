"""Builds the wire form of the request once per run: HTTP/1.1 bytes, or the HTTP/2 header block
(stateless HPACK, so the same block is valid on every stream)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from fastload import __version__
from fastload.workload.bodies import filler
from fastload.workload.hpack import encode_block, encode_session_blocks

if TYPE_CHECKING:
    from fastload.config.plan import Plan

USER_AGENT = f"fastload/{__version__}"
# Hop-by-hop fields are illegal in HTTP/2 (RFC 9113 §8.2.2).
_H2_FORBIDDEN = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "host"}


def _user_headers(plan: Plan) -> dict[str, tuple[str, str]]:
    return {name.lower(): (name, value) for name, value in plan.headers}


def build_h1_request(plan: Plan) -> bytes:
    user = _user_headers(plan)
    lines = [f"{plan.method} {plan.target.path} HTTP/1.1"]
    if "host" not in user:
        lines.append(f"Host: {plan.target.authority}")
    if "user-agent" not in user:
        lines.append(f"User-Agent: {USER_AGENT}")
    if "accept" not in user:
        lines.append("Accept: */*")
    lines.extend(f"{name}: {value}" for name, value in user.values())
    if plan.body and "content-length" not in user:
        lines.append(f"Content-Length: {len(plan.body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + plan.body


def h2_header_list(plan: Plan) -> list[tuple[bytes, bytes]]:
    user = _user_headers(plan)
    authority = user["host"][1] if "host" in user else plan.target.authority
    fields = [
        (b":method", plan.method.encode()),
        (b":scheme", plan.target.scheme.encode()),
        (b":authority", authority.encode("latin-1")),
        (b":path", plan.target.path.encode("latin-1")),
    ]
    if "user-agent" not in user:
        fields.append((b"user-agent", USER_AGENT.encode()))
    if "accept" not in user:
        fields.append((b"accept", b"*/*"))
    for lname, (_, value) in user.items():
        if lname in _H2_FORBIDDEN or (lname == "te" and value.lower() != "trailers"):
            continue
        fields.append((lname.encode("latin-1"), value.encode("latin-1")))
    if plan.body and "content-length" not in user:
        fields.append((b"content-length", str(len(plan.body)).encode()))
    return fields


def build_h2_session_blocks(plan: Plan) -> tuple[bytes, bytes, int, bytes]:
    """(first, steady, table_bytes, stateless): see workload.hpack.encode_session_blocks."""
    fields = h2_header_list(plan)
    first, steady, need = encode_session_blocks(fields)
    return first, steady, need, encode_block(fields)


def entry_plans(plan: Plan) -> list[Plan]:
    """plan as it would be for each entry of plan.mix (scenario variants, body pools, trace
    requests), in entry order, so that every entry is encoded like a single-request run."""
    assert plan.mix is not None
    out = []
    fill_cache: dict[int, bytes] = {}
    for v, headers, body in plan.mix.entries:
        var = plan.mix.variants[v]
        if isinstance(body, int):
            if body not in fill_cache:
                fill_cache[body] = filler(body)
            body = fill_cache[body]
        out.append(dataclasses.replace(plan, method=var.method, headers=headers, body=body,
                                       target=dataclasses.replace(plan.target, path=var.path)))
    return out


def build_h1_entries(plan: Plan) -> list[bytes]:
    """The HTTP/1.1 bytes of every entry of plan.mix: encoded once per worker, picked per
    request by the native mix."""
    return [build_h1_request(p) for p in entry_plans(plan)]


def build_h2_entries(plan: Plan) -> tuple[list[bytes], list[bytes]]:
    """(stateless header block, body) of every entry of plan.mix. Stateless: with many variants
    on one connection, no variant may depend on what another put in the dynamic table."""
    plans = entry_plans(plan)
    return [encode_block(h2_header_list(p)) for p in plans], [p.body for p in plans]

"""A run's totals split over load hosts: connections, -n requests and the open-model rate in
proportion to each host's worker count, a replayed trace round-robin. Pure: the coordinator
calls it with the Plan it validated and the placements the hosts reported."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from fastload.config.plan import Placement, Plan
from fastload.errors import UsageError


def shares(total: int, weights: Sequence[int]) -> list[int]:
    """total split in proportion to weights, in integers that add up to total exactly
    (largest remainder; ties go to the earlier host)."""
    whole = sum(weights)
    exact = [total * w / whole for w in weights]
    out = [int(x) for x in exact]
    order = sorted(range(len(weights)), key=lambda i: (-(exact[i] - out[i]), i))
    for i in order[:total - sum(out)]:
        out[i] += 1
    return out


def split_plan(plan: Plan, places: Sequence[Placement], numa_nodes: Sequence[int | None],
               names: Sequence[str]) -> list[Plan]:
    """One Plan per host: its share of the totals, its own workers and CPUs. Each host must
    get at least one connection (and one request with -n, one traced request with --replay)."""
    hosts = len(places)
    weights = [p.workers for p in places]
    conns = shares(plan.connections, weights)
    _at_least_one(conns, names, f"-c {plan.connections}", "connection")
    requests: list[int | None] = [None] * hosts
    if plan.requests is not None:
        requests = list(shares(plan.requests, weights))
        _at_least_one(requests, names, f"-n {plan.requests}", "request")
    fraction = [w / sum(weights) for w in weights]
    out = []
    for i, place in enumerate(places):
        mix = plan.mix
        limit = min(conns[i], requests[i] or conns[i])
        if mix is not None and mix.replay:
            mix = dataclasses.replace(mix, offsets_ns=mix.offsets_ns[i::hosts],
                                      schedule=mix.schedule[i::hosts])
            if not mix.offsets_ns:
                raise UsageError(f"--replay: the trace has {len(plan.mix.offsets_ns)} requests, "
                                 f"fewer than the {hosts} hosts")
            limit = min(limit, len(mix.offsets_ns))
        workers = min(place.workers, limit)
        out.append(dataclasses.replace(
            plan, connections=conns[i], requests=requests[i], workers=workers,
            cpus=place.cpus[:workers], avoid_cpus=place.avoid_cpus, numa_node=numa_nodes[i], mix=mix,
            rate=None if plan.rate is None else plan.rate * fraction[i],
            stages=tuple((d, r0 * fraction[i], r1 * fraction[i]) for d, r0, r1 in plan.stages),
            # The coordinator writes these from the merged result and starts every host itself;
            # it runs the --at hooks and the named --fault-proxy proxies, each host the faults
            # on its own connections.
            start_at=None, json_path=None, hdr_log=None, quiet=True, hooks=(),
            faults=tuple(f for f in plan.faults if f.target is None), fault_proxies=()))
    return out


def _at_least_one(counts: list[int], names: Sequence[str], given: str, what: str) -> None:
    if min(counts) < 1:
        empty = [n for n, c in zip(names, counts, strict=True) if c < 1]
        raise UsageError(f"{given} leaves no {what} for host(s) {', '.join(empty)} of the "
                         f"{len(counts)} hosts: give at least one per host")

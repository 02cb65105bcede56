"""Request variants: what the workers send when a run has more than one request shape (a
scenario, a replayed trace) or checks its responses. Built by workload.scenario,
workload.replay and config.plan; encoded per worker by workload.wire; picked per request by
the native RequestMix."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastload.workload import bodies
from fastload.workload.checks import CheckSpec, capture_limit


@dataclass(frozen=True)
class Variant:
    name: str
    method: str
    path: str
    weight: float
    headers: tuple[tuple[str, str], ...] = ()
    checks: CheckSpec = field(default_factory=CheckSpec)
    size: bodies.SizeDist | None = None  # generated body: its distribution (for the result)
    body_kind: str = "none"  # none | inline | file | generated | trace

    def describe(self) -> dict:
        out: dict[str, Any] = {"method": self.method, "path": self.path, "weight": self.weight,
                               "body": self.body_kind}
        if self.size is not None:
            out["body_size"] = self.size.describe()
        if self.checks:
            out["checks"] = self.checks.describe()
        return out


# One pre-encoded request: (variant index, headers, body bytes or a generated size).
Entry = tuple[int, tuple[tuple[str, str], ...], "bytes | int"]


@dataclass(frozen=True)
class Mix:
    """What the workers send: variants with their entries (contiguous per variant), and for
    --replay the schedule (offsets in ns from the start, already scaled, and entry indexes)."""

    source: str  # "scenario" | "replay" | "checks" (one URL with --check-* flags)
    path: str | None
    variants: tuple[Variant, ...]
    entries: tuple[Entry, ...]
    sample: float = 0.0  # fraction of responses checked; 0 when no variant has checks
    capture_limit: int = 0
    offsets_ns: tuple[int, ...] = ()
    schedule: tuple[int, ...] = ()  # entry of each replayed request
    speed: float = 1.0

    @property
    def replay(self) -> bool:
        return bool(self.offsets_ns)

    @property
    def has_checks(self) -> bool:
        return any(v.checks for v in self.variants)

    def entry_sizes(self) -> list[int]:
        return [b if isinstance(b, int) else len(b) for _, _, b in self.entries]

    def config(self) -> dict:
        out: dict[str, Any] = {"source": self.source, "file": self.path,
                               "requests": {v.name: v.describe() for v in self.variants}}
        if self.has_checks:
            out["check_sample"] = self.sample
        if self.replay:
            out["replay_speed"] = self.speed
            out["replay_requests"] = len(self.offsets_ns)
        return out


def single(method: str, path: str, headers: tuple[tuple[str, str], ...], body: bytes,
           checks: CheckSpec, sample: float) -> Mix:
    """The run's one request as a one-variant mix: how --check-* work without a scenario."""
    v = Variant(name=f"{method} {path}", method=method, path=path, weight=1.0, headers=headers,
                checks=checks, body_kind="inline" if body else "none")
    return checked_mix([v], sample, source="checks", path=None, entries=((0, headers, body),))


def checked_mix(variants: list[Variant], sample: float, **fields: Any) -> Mix:
    """A Mix whose check sampling and response capture follow from its variants' checks:
    none at all when no variant has any."""
    has_checks = any(v.checks for v in variants)
    return Mix(variants=tuple(variants), sample=sample if has_checks else 0.0,
               capture_limit=capture_limit([v.checks for v in variants]) if has_checks else 0, **fields)

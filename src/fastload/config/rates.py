"""Request rates and their schedules: `--rate`, `--stages` (k6-style ramps)."""

from __future__ import annotations

import re

from fastload.errors import UsageError
from fastload.units import parse_duration_ns


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

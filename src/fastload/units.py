"""Parsing and formatting of the units users type and read: 500ms, 10k, 2-7, 1.5MB."""

from __future__ import annotations

import re

from fastload.errors import UsageError

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ns|us|µs|ms|s|m|h)?\s*$")
_DURATION_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
                "m": 60_000_000_000, "h": 3_600_000_000_000}
_COUNT_RE = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*([kKmMgG]?)\s*$")
_COUNT_MULT = {"": 1, "k": 1_000, "m": 1_000_000, "g": 1_000_000_000}


def parse_duration_ns(text: str | float, what: str = "duration", allow_zero: bool = False) -> int:
    """'500ms', '10s', '2m', '1h', '250us' or a bare number of seconds (also an int or float
    from the Python API) -> integer nanoseconds."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        # str() of a small float is '1e-05', which the text form does not accept.
        value = float(text) * 1e9
    else:
        m = _DURATION_RE.match(str(text))
        if not m:
            raise UsageError(f"{what}: {text!r} is not a duration (examples: 500ms, 10s, 2m)")
        value = float(m.group(1)) * _DURATION_NS[m.group(2) or "s"]
    if value != value or value in (float("inf"), float("-inf")):
        raise UsageError(f"{what}: {text!r} is not a finite duration")
    ns = round(value)
    if ns < 0 or (ns == 0 and not allow_zero):
        raise UsageError(f"{what}: {text!r} must be greater than zero")
    return ns


def parse_count(text: str | int, what: str = "count", minimum: int = 1) -> int:
    """'10000', '10k', '2M' -> int (decimal multipliers, as wrk and vegeta read them)."""
    if isinstance(text, int):
        value = text
    else:
        m = _COUNT_RE.match(text)
        if not m:
            raise UsageError(f"{what}: {text!r} is not a count (examples: 100, 10k, 2M)")
        f = float(m.group(1)) * _COUNT_MULT[m.group(2).lower()]
        if f != int(f):
            raise UsageError(f"{what}: {text!r} is not a whole number")
        value = int(f)
    if value < minimum:
        raise UsageError(f"{what}: {text!r} must be at least {minimum}")
    return value


_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([kKmMgG]i?)?([bB])\s*$")
_SIZE_MULT = {"": 1, "k": 1_000, "m": 1_000_000, "g": 1_000_000_000,
              "ki": 1_024, "mi": 1_048_576, "gi": 1_073_741_824}


def parse_size_bytes(text: str, what: str = "size") -> int:
    """'500B', '100KB', '1.5MB', '64KiB' -> whole bytes, at least 1. KB/MB/GB are decimal (as tc
    and parse_count read k and M), KiB/MiB/GiB binary."""
    m = _SIZE_RE.match(str(text))
    if not m:
        raise UsageError(f"{what}: {text!r} is not a size (examples: 500B, 100KB, 1.5MB, 64KiB)")
    value = round(float(m.group(1)) * _SIZE_MULT[(m.group(2) or "").lower()])
    if value < 1:
        raise UsageError(f"{what}: {text!r} must be at least 1 byte")
    return value


class BackwardsRange(ValueError):
    """A CPU range like '3-1': a list the user meant, written the wrong way round."""


def fraction(text: str) -> float:
    """'0.2' or '20%' -> 0.2 (ValueError if neither); the caller checks the range and says
    what the number is for."""
    t = text.strip()
    return float(t[:-1]) / 100 if t.endswith("%") else float(t)


def parse_cpulist(text: str) -> list[int]:
    """The kernel's list format ('0-3,8,10-11'; '' for none) -> sorted unique CPU or node
    numbers. ValueError for anything else: the one parser behind --cpus and /sys, /proc reads."""
    out: set[int] = set()
    parts = [p.strip() for p in str(text).strip().split(",")]
    if parts == [""]:
        return []
    for part in parts:
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if m is None:
            raise ValueError(f"not a CPU list: {text!r}")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if hi < lo:
            raise BackwardsRange(f"range {part!r} is backwards")
        out.update(range(lo, hi + 1))
    return sorted(out)


def parse_cpu_list(text: str, what: str = "--cpus") -> list[int]:
    """'1', '2-7', '0,2,4', '0-3,8' given by the user -> sorted unique CPU numbers."""
    try:
        cpus = parse_cpulist(text)
    except BackwardsRange as e:
        raise UsageError(f"{what}: {e}") from None
    except ValueError:
        cpus = []
    if not cpus:
        raise UsageError(f"{what}: {text!r} is not a CPU list (examples: 1, 2-7, 0,2,4)")
    return cpus


def format_us(us: float) -> str:
    """A latency in µs the way wrk prints it: 812.00us, 1.25ms, 2.10s."""
    if us < 1_000:
        return f"{us:.2f}us"
    if us < 1_000_000:
        return f"{us / 1_000:.2f}ms"
    if us < 60_000_000:
        return f"{us / 1_000_000:.2f}s"
    return f"{us / 60_000_000:.2f}m"


def format_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.2f}{unit}" if unit != "B" else f"{int(n)}B"
        n /= 1024
    raise AssertionError("unreachable")


def format_count(n: float) -> str:
    if n < 1_000:
        return f"{n:.0f}" if float(n).is_integer() else f"{n:.2f}"
    if n < 1_000_000:
        return f"{n / 1_000:.2f}k"
    return f"{n / 1_000_000:.2f}M"

"""Time windows in run time (from the start of the measured interval, after any warm-up): the
--phase windows, which mark a span and apply nothing, the phases they cut the run into, and the
--at hooks. A --fault window is the same Window with kind "fault" and its spec."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise

from fastload.errors import UsageError
from fastload.units import parse_duration_ns

# Names a gate can refer to (`--slo NAME:p99<1s`): no ':' and no spaces.
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_SPAN_RE = re.compile(r"^\s*([^\s-]+)\s*-\s*([^\s-]+)\s*$")
BASELINE = "baseline"
RECOVERY_PREFIX = "recovery-"


@dataclass(frozen=True)
class Window:
    """A span of run time. kind: "phase" (--phase), "fault" (--fault), and for the phases
    that partition the run also "baseline" and "recovery" (spec: the window recovered from)."""

    name: str
    kind: str
    spec: str
    start_ns: int
    end_ns: int | None  # None: until the end of the run (the last phase of a -n run)


@dataclass(frozen=True)
class Hook:
    """--at OFFSET:COMMAND: `sh -c COMMAND` at OFFSET of run time."""

    offset_ns: int
    command: str


def parse_span(text: str, what: str) -> tuple[int, int]:
    """'10s-20s', '1.5-3' (seconds), '500ms-2s' -> (start_ns, end_ns), end after start."""
    m = _SPAN_RE.match(text)
    if not m:
        raise UsageError(f"{what}: {text!r} is not a window START-END (e.g. 10s-20s)")
    start = parse_duration_ns(m.group(1), what, allow_zero=True)
    end = parse_duration_ns(m.group(2), what)
    if end <= start:
        raise UsageError(f"{what}: {text!r} ends before it starts")
    return start, end


def parse_phase(text: str) -> Window:
    """--phase NAME=START-END."""
    name, eq, span = text.partition("=")
    name = name.strip()
    if not eq:
        raise UsageError(f"--phase {text!r}: expected NAME=START-END (e.g. deploy=30s-45s)")
    check_name(name, f"--phase {text!r}")
    start, end = parse_span(span, f"--phase {text!r}")
    return Window(name=name, kind="phase", spec=span.strip(), start_ns=start, end_ns=end)


def check_name(name: str, what: str) -> None:
    if not NAME_RE.match(name):
        raise UsageError(f"{what}: the name {name!r} must be letters, digits, '_', '.', '-'")
    if name == BASELINE or name == "recovery" or name.startswith(RECOVERY_PREFIX):
        raise UsageError(f"{what}: {name!r} is the name of a phase fastload makes; choose another")


def check_windows(windows: Sequence[Window], duration_ns: int | None, warmup_ns: int = 0) -> tuple[Window, ...]:
    """The windows in time order, after checking that names are unique, that no two overlap
    (phases partition the run) and that each ends within the run when its length is known."""
    seen: set[str] = set()
    for w in windows:
        if w.name in seen:
            raise UsageError(f"window name {w.name!r} is given twice")
        seen.add(w.name)
        if duration_ns is not None and w.end_ns is not None and w.end_ns > duration_ns:
            raise UsageError(f"window {w.name!r} ({w.spec}) ends after the run, which lasts "
                             f"{duration_ns / 1e9:g}s" + (" after the warm-up" if warmup_ns else ""))
    ordered = sorted(windows, key=lambda w: w.start_ns)
    for a, b in pairwise(ordered):
        if a.end_ns is None or b.start_ns < a.end_ns:
            raise UsageError(f"windows {a.name!r} ({a.spec}) and {b.name!r} ({b.spec}) overlap")
    return tuple(ordered)


def partition(windows: Sequence[Window], duration_ns: int | None) -> tuple[Window, ...]:
    """The phases of a run with these (checked, ordered) windows: baseline before the first,
    each window, and recovery-NAME from a window's end to the next window or the end of the run.
    Empty spans are left out (a window from 0 has no baseline)."""
    out: list[Window] = []
    if windows and windows[0].start_ns > 0:
        out.append(Window(BASELINE, "baseline", "", 0, windows[0].start_ns))
    for i, w in enumerate(windows):
        out.append(w)
        nxt = windows[i + 1].start_ns if i + 1 < len(windows) else duration_ns
        assert w.end_ns is not None
        if nxt is None or nxt > w.end_ns:
            out.append(Window(RECOVERY_PREFIX + w.name, "recovery", w.name, w.end_ns, nxt))
    return tuple(out)


def parse_hook(text: str) -> Hook:
    """--at OFFSET:COMMAND."""
    offset, colon, command = text.partition(":")
    if not colon or not command.strip():
        raise UsageError(f"--at {text!r}: expected OFFSET:COMMAND (e.g. '10s:docker pause db')")
    return Hook(offset_ns=parse_duration_ns(offset.strip(), f"--at {text!r}", allow_zero=True),
                command=command)


def check_hooks(hooks: Iterable[Hook], duration_ns: int | None) -> tuple[Hook, ...]:
    out = tuple(sorted(hooks, key=lambda h: h.offset_ns))
    for h in out:
        if duration_ns is not None and h.offset_ns >= duration_ns:
            raise UsageError(f"--at {h.offset_ns / 1e9:g}s:{h.command}: the run lasts "
                             f"{duration_ns / 1e9:g}s, so this hook would never run")
    return out

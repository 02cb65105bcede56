"""`--perf-stat`: Linux `perf stat` counters for each worker over the measured interval.

Each worker starts `perf stat -p <own pid>` with its events disabled (`-D -1`) before the run,
enables them through a control FIFO when the measured interval starts (after the warm-up) and
disables them when it ends, so that neither start-up, warm-up nor shutdown is counted and no
process is spawned at the moment measuring begins. The parent only checks, before any traffic,
that perf works with the events asked for (`check`), and sums the workers' counters (`total`).
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, replace

from fastload.errors import RunError, UsageError
from fastload.results.perf import ipc

DEFAULT_EVENTS = ("cycles", "instructions", "cache-misses", "context-switches", "cpu-migrations",
                  "task-clock")
HARDWARE_EVENTS = ("cycles", "instructions", "cache-misses")
# What VMs and containers without a PMU still count (the kernel's software events).
SOFTWARE_EVENTS = ("task-clock", "context-switches", "cpu-migrations", "page-faults")
FALLBACK_NOTE = ("hardware counters (cycles, instructions, cache-misses) are not supported on this "
                 "machine (a VM or container without a PMU?): counted software events only")
INSTALL_HINT = ("install it (Debian: apt install linux-perf; Ubuntu: apt install "
                "linux-tools-$(uname -r))")
PARANOID_PATH = "/proc/sys/kernel/perf_event_paranoid"
PROBE_TIMEOUT_S = 20.0
ATTACH_TIMEOUT_S = 20.0
ACK_TIMEOUT_S = 2.0
STOP_TIMEOUT_S = 10.0
# perf's own words for a value it has no count for.
MISSING_VALUES = {"<not supported>": "not supported", "<not counted>": "not counted"}


@dataclass(frozen=True)
class PerfSpec:
    """What the workers count; picklable, part of the Plan."""

    events: tuple[str, ...]
    custom: bool  # EVENTS given by the user (no fallback: they get what they asked for or exit 2)
    note: str | None = None  # set by check() when it fell back to software events
    perf: str = "perf"  # resolved path, set by check()


def parse_spec(text: str | None) -> PerfSpec | None:
    """The --perf-stat value: None (off), "default" (flag without a value) or EVENTS."""
    if text is None:
        return None
    if text.strip() == "default":
        return PerfSpec(events=DEFAULT_EVENTS, custom=False)
    events = split_events(text)
    if not events:
        raise UsageError(f"--perf-stat: {text!r} names no event (example: --perf-stat=cycles,task-clock)")
    for e in events:
        if any(c.isspace() for c in e) or e.startswith("-"):
            raise UsageError(f"--perf-stat: {e!r} is not an event name (see `perf list`)")
    if len(set(events)) != len(events):
        raise UsageError(f"--perf-stat: an event is listed twice in {text!r}")
    return PerfSpec(events=events, custom=True)


def split_events(text: str) -> tuple[str, ...]:
    """Splits on commas, except inside a PMU term (cpu/event=0x3c,umask=0/) or a {group}."""
    out, cur, in_pmu, depth = [], "", False, 0
    for ch in text:
        if ch == "/":
            in_pmu = not in_pmu
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and not in_pmu and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    out.append(cur.strip())
    return tuple(e for e in out if e)


def _env() -> dict[str, str]:
    # A fixed locale: perf's CSV must use '.' decimals and no digit grouping.
    return {**os.environ, "LC_ALL": "C"}


def check(spec: PerfSpec) -> PerfSpec:
    """Pre-flight: perf exists, may count, knows every event; falls back to software events
    when the default set's hardware counters are not supported. Raises UsageError (exit 2)."""
    perf = shutil.which("perf")
    if perf is None:
        raise UsageError(f"--perf-stat needs the perf tool, which is not on PATH: {INSTALL_HINT}")
    code, stderr = _probe(perf, spec.events)
    if code != 0:
        raise UsageError(_probe_failure(perf, spec.events, stderr))
    counters = parse_csv(stderr, spec.events)
    missing = [e for e in spec.events if counters.get(e, Counter(None, "", None, "not reported")).value is None]
    if not missing:
        return replace(spec, perf=perf)
    if spec.custom:
        reasons = ", ".join(f"{e} ({counters[e].missing if e in counters else 'not reported'})"
                            for e in missing)
        raise UsageError(f"--perf-stat: perf cannot count {reasons} on this machine; "
                         "choose other events (`perf list`), e.g. --perf-stat=" + ",".join(SOFTWARE_EVENTS))
    if not set(HARDWARE_EVENTS) <= set(missing):
        # Some hardware counters work (or a software event failed): keep the set, say what is null.
        return replace(spec, perf=perf, note=f"perf cannot count {', '.join(missing)} on this "
                       "machine: reported as null")
    fallback = replace(spec, events=SOFTWARE_EVENTS, note=FALLBACK_NOTE, perf=perf)
    code, stderr = _probe(perf, fallback.events)
    counters = parse_csv(stderr, fallback.events)
    if code != 0 or any(counters.get(e) is None or counters[e].value is None for e in fallback.events):
        raise UsageError(_probe_failure(perf, fallback.events, stderr))
    return fallback


def _probe(perf: str, events: tuple[str, ...]) -> tuple[int, str]:
    """`perf stat -x, -e EVENTS true`: the same permission class as counting our own child."""
    try:
        p = subprocess.run([perf, "stat", "-x,", "-e", ",".join(events), "true"], capture_output=True,
                           text=True, timeout=PROBE_TIMEOUT_S, env=_env())
    except (OSError, subprocess.TimeoutExpired) as e:
        raise UsageError(f"--perf-stat: cannot run {perf}: {e}") from None
    return p.returncode, p.stderr


def _probe_failure(perf: str, events: tuple[str, ...], stderr: str) -> str:
    """One line saying what to do, from perf's (multi-line) complaint."""
    text = stderr.lower()
    if "perf_event_paranoid" in text or "no permission" in text or "permission denied" in text:
        level = read_paranoid()
        now = f" (it is {level})" if level is not None else ""
        return ("--perf-stat: perf may not count events here: kernel.perf_event_paranoid forbids it"
                f"{now}; allow it with `sysctl kernel.perf_event_paranoid=1` (or run as root / "
                "with CAP_PERFMON)")
    if "event syntax error" in text or "unknown tracepoint" in text or "parser error" in text:
        bad = [e for e in events if _probe(perf, (e,))[0] != 0] if len(events) > 1 else list(events)
        return (f"--perf-stat: perf does not know the event(s) {', '.join(bad or events)} "
                "(see `perf list`)")
    if "not found for kernel" in text or "you may need to install" in text:
        return f"--perf-stat: perf does not match the running kernel: {INSTALL_HINT}"
    last = (stderr.strip().splitlines() or ["no output"])[-1].strip()
    return f"--perf-stat: `perf stat -e {','.join(events)} true` failed: {last}"


def read_paranoid(path: str = PARANOID_PATH) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


@dataclass
class Counter:
    value: float | int | None  # perf's count, scaled by perf when multiplexed; None = no count
    unit: str  # "msec" for task-clock, "" for plain counts
    running_pct: float | None  # share of the time the counter was on the PMU (< 100: multiplexed)
    missing: str | None = None  # "not supported" | "not counted" when value is None


def parse_csv(text: str, events: tuple[str, ...]) -> dict[str, Counter]:
    """Parses `perf stat -x,` output (value,unit,event,run-time,running-%,metric,metric-unit):
    comments, blank lines and metric-only lines are skipped; `<not supported>` and
    `<not counted>` become None; an event split over PMUs (cpu_core/cycles/, cpu_atom/cycles/
    on hybrid CPUs) is summed under the name asked for, and a modifier perf added by itself
    (task-clock:u, for user space only) is dropped. Event names may contain commas
    (cpu/event=0x3c,umask=0/), so names are matched against the events requested."""
    out: dict[str, Counter] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        value_s, sep, rest = line.partition(",")
        unit, sep2, rest = rest.partition(",")
        if not sep or not sep2 or not value_s:
            continue  # a derived-metric line (",,,,,0.04,stalled cycles per insn") or noise
        name, tail = _match_event(rest, events)
        if name is None:
            continue
        fields = tail.split(",")
        pct = _number(fields[1]) if len(fields) > 1 else None
        if value_s in MISSING_VALUES:
            c = Counter(None, unit, pct, MISSING_VALUES[value_s])
        else:
            v = _number(value_s)
            if v is None:
                continue
            c = Counter(v, unit, pct)
        prev = out.get(name)
        out[name] = c if prev is None else _combine(prev, c)
    return out


def _match_event(rest: str, events: tuple[str, ...]) -> tuple[str | None, str]:
    """(requested event name, the fields after it) for the text after value and unit."""
    for e in sorted(events, key=len, reverse=True):
        if rest == e or rest.startswith(e + ","):
            return e, rest[len(e) + 1:]
    printed, _, tail = rest.partition(",")
    # Non-root at perf_event_paranoid=2: perf counts user space only and says so ("cycles:u").
    base, colon, mods = printed.rpartition(":")
    if colon and base in events and mods and set(mods) <= set("ukhHGIpPSDW"):
        return base, tail
    # Hybrid CPUs report "cycles" once per core type, as "cpu_core/cycles/" and "cpu_atom/cycles/".
    if printed.endswith("/") and printed.count("/") == 2:
        inner = printed.split("/")[1]
        if inner in events:
            return inner, tail
    return None, ""


def _combine(a: Counter, b: Counter) -> Counter:
    if a.value is None or b.value is None:
        return a if a.value is not None else b
    pct = min(p for p in (a.running_pct, b.running_pct, 100.0) if p is not None)
    return Counter(a.value + b.value, a.unit, pct)


def _number(s: str) -> float | int | None:
    s = s.strip()
    try:
        return int(s)
    except ValueError:
        pass
    try:
        return float(s)
    except ValueError:
        return None


def worker_document(counters: dict[str, Counter], events: tuple[str, ...]) -> dict:
    """A worker's `perf` object in the result document."""
    doc: dict = {
        "counters": {e: counters[e].value if e in counters else None for e in events},
        "units": {e: counters[e].unit for e in events if e in counters and counters[e].unit},
        "running_pct": {e: counters[e].running_pct for e in events if e in counters},
    }
    missing = {e: (counters[e].missing if e in counters else "not reported") for e in events
               if e not in counters or counters[e].value is None}
    if missing:
        doc["missing"] = missing
    doc["ipc"] = ipc(doc["counters"])
    return doc


class Session:
    """One `perf stat -p PID` with its events off until enable(); used inside a worker."""

    def __init__(self, spec: PerfSpec, pid: int) -> None:
        self.spec = spec
        self.dir = tempfile.mkdtemp(prefix="fastload-perf-")
        self.out_path = os.path.join(self.dir, "stat.csv")
        ctl, ack = os.path.join(self.dir, "ctl"), os.path.join(self.dir, "ack")
        os.mkfifo(ctl)
        os.mkfifo(ack)
        self.sent = 0  # control commands written, each answered by one "ack"
        self.acked = 0
        self.ctl_fd = -1
        # Opening the read end without O_NONBLOCK would wait for perf; this one never blocks.
        self.ack_fd = os.open(ack, os.O_RDONLY | os.O_NONBLOCK)
        self.stderr = open(os.path.join(self.dir, "stderr"), "w+")
        self.proc = subprocess.Popen(
            [spec.perf, "stat", "-x,", "-e", ",".join(spec.events), "-p", str(pid), "-D", "-1",
             "--control", f"fifo:{ctl},{ack}", "-o", self.out_path],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.stderr, env=_env(),
            # Its own session: a Ctrl-C on the terminal must not end perf behind our back
            # (the parent turns Ctrl-C into an orderly stop and we stop perf then).
            # (Workers ignore SIGINT and exec keeps that; perf installs its own handler anyway.)
            start_new_session=True)
        self._attach(ctl)

    def _attach(self, ctl: str) -> None:
        deadline = time.monotonic() + ATTACH_TIMEOUT_S
        while self.ctl_fd < 0:
            try:
                self.ctl_fd = os.open(ctl, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # ENXIO until perf opens its end
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.close()
                    raise RunError(f"perf stat did not start: {self._stderr_tail()}") from None
                time.sleep(0.002)
        # perf answers "ping" from its main loop, i.e. once the counters exist (still disabled).
        self._command("ping")
        if not self._wait_acks(ATTACH_TIMEOUT_S):
            self.close()
            raise RunError(f"perf stat did not attach: {self._stderr_tail()}")

    def _command(self, cmd: str) -> None:
        try:
            os.write(self.ctl_fd, cmd.encode() + b"\n")
            self.sent += 1
        except OSError:
            pass  # perf is gone; stop() reports what it wrote

    def _wait_acks(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while self.acked < self.sent:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                return False
            ready, _, _ = select.select([self.ack_fd], [], [], left)
            if ready:
                try:
                    data = os.read(self.ack_fd, 4096)
                except BlockingIOError:
                    continue
                self.acked += data.count(b"ack")
        return True

    def enable(self) -> None:
        """Start counting. Does not wait for perf's answer: this is the start of the measured
        interval, and perf reacts within its poll loop's wake-up (well under a millisecond)."""
        self._command("enable")

    def disable(self) -> None:
        """Stop counting; waits for perf to confirm so that shutdown work is not counted."""
        self._command("disable")
        self._wait_acks(ACK_TIMEOUT_S)

    def stop(self) -> dict:
        """Ends perf (SIGINT makes it write the counts) and returns the worker's perf object."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        try:
            with open(self.out_path) as f:
                text = f.read()
        except OSError:
            text = ""
        counters = parse_csv(text, self.spec.events)
        doc = worker_document(counters, self.spec.events)
        if not counters:
            doc["error"] = f"perf stat wrote no counts: {self._stderr_tail()}"
        self.close()
        return doc

    def _stderr_tail(self) -> str:
        try:
            self.stderr.seek(0)
            lines = [ln.strip() for ln in self.stderr.read().splitlines() if ln.strip()]
        except (OSError, ValueError):
            lines = []
        return lines[-1] if lines else f"exit code {self.proc.poll()}"

    def close(self) -> None:
        """Idempotent: ends perf if still running, closes the FIFOs, removes the files."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for fd in (self.ctl_fd, self.ack_fd):
            if fd >= 0:
                os.close(fd)
        self.ctl_fd = self.ack_fd = -1
        if not self.stderr.closed:
            self.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)

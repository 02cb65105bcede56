"""--fault-via netem: the kernel shapes the packets sent to the target (Chaos Mesh's mechanism):
netem for latency, jitter and loss, tbf for bandwidth, on one device, limited by a u32 filter to
the target's address and port. No proxy changes the traffic. Needs root.

The tree, installed before the run and removed after it (fastload's qdiscs carry the fixed
handles below, so one left by a killed run is recognised and removed at the next start):

    root  htb   fa57:     no default class: unmatched packets bypass it (HTB's direct queue)
    class htb   fa57:1    the target's packets (the filter); a rate that never limits
    leaf        fa58:     pfifo before the first window; fa59: netem or fa5a: tbf from then on
    filter u32  dst IP, dst port -> fa57:1

A window replaces the leaf with its netem or tbf at its start and, at its end, changes that
qdisc to parameters that do nothing (delay 0, a rate no link reaches) instead of deleting it:
deleting would drop the packets it still holds, and TCP would see a loss at every window's end.
Only packets leaving through the device are shaped: for a round trip that adds the delay once,
as netem on a Chaos Mesh pod's interface does.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from fastload.errors import UsageError
from fastload.faults.spec import NETEM_KINDS, FaultSpec

ROOT = "fa57:"
CLASS = "fa57:1"
LEAF = {"pfifo": "fa58:", "netem": "fa59:", "tbf": "fa5a:"}
_NEVER_LIMITS = ["rate", "100gbit", "burst", "4mb", "cburst", "4mb", "quantum", "200000"]
_TC_TIMEOUT_S = 10


class TcError(Exception):
    """A tc command failed; the message is tc's own first line."""


def _tc(*args: str) -> str:
    p = subprocess.run(["tc", *args], capture_output=True, text=True, timeout=_TC_TIMEOUT_S)
    if p.returncode != 0:
        lines = (p.stderr or p.stdout).strip().splitlines()
        raise TcError(lines[0] if lines else f"tc {' '.join(args)}: exit {p.returncode}")
    return p.stdout


def require_root(what: str = "--fault-via netem") -> None:
    if os.geteuid() != 0:
        raise UsageError(f"{what} needs root (tc changes the network device's queueing);"
                         " run as root or use --fault-via proxy")
    if shutil.which("tc") is None:
        raise UsageError(f"{what} needs tc (apt install iproute2)")


def route_device(ip: str) -> str:
    """The device of the route to ip (`ip route get`): where its packets leave."""
    p = subprocess.run(["ip", "-o", "route", "get", ip], capture_output=True, text=True,
                       timeout=_TC_TIMEOUT_S)
    m = re.search(r"\bdev (\S+)", p.stdout)
    if p.returncode != 0 or not m:
        reason = (p.stderr.strip().splitlines() or ["no route"])[0]
        raise UsageError(f"--fault-via netem: no route to {ip} ({reason}); give --fault-dev")
    return m.group(1)


def resolve(host: str) -> str:
    """The target's address, which the filter matches (a name is resolved once, here)."""
    try:
        return socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)[0][4][0]
    except OSError as e:
        raise UsageError(f"--fault-via netem: cannot resolve {host!r}: {e}") from None


def root_qdisc(dev: str) -> tuple[str, str] | None:
    """(kind, handle) of the device's root qdisc, or None for a device with none."""
    try:
        out = _tc("qdisc", "show", "dev", dev, "root")
    except TcError as e:
        raise UsageError(f"--fault-dev {dev}: {e}") from None
    m = re.search(r"^qdisc (\S+) (\S+) root", out, re.M)
    return (m.group(1), m.group(2)) if m else None


def _leaf_args(f: FaultSpec, mtu: int) -> list[str]:
    """The leaf qdisc of a window: its kind's handle and parameters."""
    if f.kind == "bandwidth":
        # The bucket must hold a whole packet (a packet larger than it never leaves), and
        # 20 ms of traffic, so the rate holds at the scale of the tc timer.
        burst = max(f.bytes_per_s // 50, 2 * mtu)
        return ["handle", LEAF["tbf"], "tbf", "rate", f"{f.bytes_per_s}bps", "burst", str(burst),
                "latency", "500ms"]
    args = ["handle", LEAF["netem"], "netem"]
    if f.kind == "latency":
        args += ["delay", f"{f.latency_ns / 1000:.0f}us"]
        if f.jitter_ns:
            args += [f"{f.jitter_ns / 1000:.0f}us"]
    else:  # loss
        args += ["loss", f"{f.loss * 100:g}%"]
    return args


def _idle_args(kind: str, mtu: int) -> list[str]:
    """The same leaf, doing nothing: what a window's end changes it to."""
    if kind == "tbf":
        return ["handle", LEAF["tbf"], "tbf", "rate", "100gbit", "burst", str(max(4 << 20, 2 * mtu)),
                "latency", "500ms"]
    return ["handle", LEAF["netem"], "netem", "delay", "0us"]


class Netem:
    """The netem windows of one run, for one target address and port. `install()` (before any
    traffic: every mistake is a UsageError, and the result is the warnings to show), then
    `schedule(t0_ns)`, and `remove()` at the end, also after an exception (a context manager
    does both). `applied` records each change with the CLOCK_MONOTONIC time it took effect,
    `errors` the tc failures during the run (a thread cannot raise into the run)."""

    def __init__(self, faults: Sequence[FaultSpec], host: str, port: int, dev: str | None = None):
        for f in faults:
            if f.kind not in NETEM_KINDS:
                raise UsageError(f"--fault {f.spec!r}: {f.kind} needs --fault-via proxy")
        self.faults = tuple(sorted(faults, key=lambda f: f.start_ns))
        self.host = host
        self.port = port
        self.dev = dev
        self.ip = ""
        self.mtu = 1500
        self.installed = False
        self.applied: list[dict] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def install(self) -> list[str]:
        require_root()
        self.ip = resolve(self.host)
        dev = self.dev or route_device(self.ip)
        if not Path("/sys/class/net", dev).exists():
            raise UsageError(f"--fault-dev {dev}: no such network device")
        self.dev = dev
        self.mtu = int(Path("/sys/class/net", dev, "mtu").read_text())
        warnings = []
        root = root_qdisc(dev)
        if root is not None and root[1] == ROOT:
            _tc("qdisc", "del", "dev", dev, "root", "handle", ROOT)
            warnings.append(f"--fault-via netem: removed a fastload qdisc ({ROOT} on {dev}) that a"
                            " run which did not end left behind")
        elif root is not None and root[1] != "0:":
            # A root with a handle was configured by someone; replacing it would destroy it.
            raise UsageError(f"--fault-dev {dev}: it has a root qdisc ({root[0]} {root[1]}) that"
                             " fastload did not install; remove it or give another --fault-dev")
        v6 = ":" in self.ip
        match = (["protocol", "ipv6", "prio", "1", "u32", "match", "ip6", "dst", f"{self.ip}/128",
                  "match", "ip6", "dport", str(self.port), "0xffff"] if v6 else
                 ["protocol", "ip", "prio", "1", "u32", "match", "ip", "dst", f"{self.ip}/32",
                  "match", "ip", "dport", str(self.port), "0xffff"])
        try:
            _tc("qdisc", "add", "dev", dev, "root", "handle", ROOT, "htb")
            self.installed = True
            _tc("class", "add", "dev", dev, "parent", ROOT, "classid", CLASS, "htb", *_NEVER_LIMITS)
            _tc("qdisc", "add", "dev", dev, "parent", CLASS, "handle", LEAF["pfifo"], "pfifo",
                "limit", "10000")
            _tc("filter", "add", "dev", dev, "parent", ROOT, *match, "flowid", CLASS)
            # Each kind the windows need, tried once now: a kernel without sch_netem (or tbf) is
            # a one-line error before any traffic, not a failure in the middle of the run.
            for kind in sorted({"tbf" if f.kind == "bandwidth" else "netem" for f in self.faults}):
                try:
                    _tc("qdisc", "replace", "dev", dev, "parent", CLASS, *_idle_args(kind, self.mtu))
                except TcError as e:
                    raise UsageError(f"--fault-via netem: this kernel cannot run the {kind} qdisc"
                                     f" ({e}); use --fault-via proxy") from None
            if self.faults:
                _tc("qdisc", "replace", "dev", dev, "parent", CLASS, "handle", LEAF["pfifo"],
                    "pfifo", "limit", "10000")
        except TcError as e:
            self.remove()
            raise UsageError(f"--fault-via netem on {dev}: tc failed: {e}") from None
        except BaseException:
            self.remove()
            raise
        return warnings

    def schedule(self, t0_ns: int) -> None:
        """Apply the windows from t0_ns (CLOCK_MONOTONIC) on a thread; tc takes a few ms."""
        self._thread = threading.Thread(target=self._run, args=(t0_ns,), daemon=True,
                                        name="fastload-netem")
        self._thread.start()

    def _run(self, t0_ns: int) -> None:
        events = sorted([(t0_ns + f.start_ns, 1, f) for f in self.faults]
                        + [(t0_ns + f.end_ns, 0, f) for f in self.faults],
                        key=lambda e: (e[0], e[1]))  # an end before a start at the same instant
        for at_ns, begin, f in events:
            if self._stop.wait(max(0.0, (at_ns - time.monotonic_ns()) / 1e9)):
                return
            kind = "tbf" if f.kind == "bandwidth" else "netem"
            args = _leaf_args(f, self.mtu) if begin else _idle_args(kind, self.mtu)
            try:
                _tc("qdisc", "replace" if begin else "change", "dev", str(self.dev),
                    "parent", CLASS, *args)
            except (TcError, subprocess.TimeoutExpired) as e:
                self.errors.append(f"--fault {f.spec!r}: tc failed at the window's"
                                   f" {'start' if begin else 'end'}: {e}")
                continue
            self.applied.append({"fault": f.name, "action": "start" if begin else "end",
                                 "at_ns": time.monotonic_ns(), "due_ns": at_ns})

    def remove(self) -> None:
        """Stop the schedule and delete the tree (idempotent). It runs while an exception
        unwinds, so it raises nothing of its own: a device that went away took the tree with
        it, and a tree tc could not delete is found and removed at the next start."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=_TC_TIMEOUT_S * 2)
            self._thread = None
        if self.installed and self.dev:
            self.installed = False
            try:
                root = root_qdisc(self.dev)
                if root is not None and root[1] == ROOT:
                    _tc("qdisc", "del", "dev", self.dev, "root", "handle", ROOT)
            except (UsageError, TcError, subprocess.TimeoutExpired) as e:
                self.errors.append(f"--fault-via netem: could not remove {ROOT} from"
                                   f" {self.dev}: {e}")

    def __enter__(self) -> Netem:
        self.install()
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

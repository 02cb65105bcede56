"""What the host looks like to a load generator: CPUs, NUMA nodes, SMT siblings, frequency
governors, how idle CPUs wait (cpuidle, guest halt polling), limits and tools, and where a
process actually runs (/proc/PID/status).

Every reader takes its sysfs/procfs root as a parameter so that tests can point it at a fake
tree; a file that is missing or unreadable gives None (or an empty result), never an error:
containers and VMs hide a lot of sysfs."""

from __future__ import annotations

import ctypes
import importlib.machinery
import os
import platform
import re
import resource
import shutil
import socket
import ssl
import subprocess
from pathlib import Path

from fastload.units import parse_cpulist

NODE_ROOT = "/sys/devices/system/node"
CPU_ROOT = "/sys/devices/system/cpu"
PROC = "/proc"
PORT_RANGE = "/proc/sys/net/ipv4/ip_local_port_range"
SOMAXCONN = "/proc/sys/net/core/somaxconn"
# A KVM guest's cpuidle driver: how long an idle CPU polls before it halts (0: never polls).
HALT_POLL_NS = "/sys/module/haltpoll/parameters/guest_halt_poll_ns"
TOOLS = ("perf", "taskset", "numactl")


def format_cpulist(cpus: list[int] | tuple[int, ...]) -> str:
    """[0, 1, 2, 5] -> '0-2,5' (what taskset -c and numactl --physcpubind accept)."""
    parts: list[str] = []
    cs = sorted(set(cpus))
    i = 0
    while i < len(cs):
        j = i
        while j + 1 < len(cs) and cs[j + 1] == cs[j] + 1:
            j += 1
        parts.append(str(cs[i]) if i == j else f"{cs[i]}-{cs[j]}")
        i = j + 1
    return ",".join(parts)


def _read(path: str | Path) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _read_word(path: str | Path) -> str | None:
    text = _read(path)
    return text.strip() if text is not None else None


def _read_list(path: str | Path) -> list[int] | None:
    text = _read(path)
    if text is None:
        return None
    try:
        return parse_cpulist(text)
    except ValueError:
        return None


def online_cpus(cpu_root: str = CPU_ROOT) -> list[int]:
    cpus = _read_list(Path(cpu_root) / "online")
    if cpus is None:
        # No sysfs: the CPUs this process may use are the best available answer.
        return sorted(os.sched_getaffinity(0))
    return cpus


def numa_nodes(node_root: str = NODE_ROOT) -> dict[int, list[int]]:
    """{node: [cpus]} from nodeN/cpulist; empty when the kernel shows no NUMA information."""
    nodes: dict[int, list[int]] = {}
    try:
        names = os.listdir(node_root)
    except OSError:
        return nodes
    for name in names:
        m = re.fullmatch(r"node(\d+)", name)
        if m is None:
            continue
        cpus = _read_list(Path(node_root) / name / "cpulist")
        if cpus is not None:
            nodes[int(m.group(1))] = cpus
    return dict(sorted(nodes.items()))


def node_memory(node: int, node_root: str = NODE_ROOT) -> dict[str, int] | None:
    """MemTotal and MemFree of one node in bytes (nodeN/meminfo is in kB)."""
    text = _read(Path(node_root) / f"node{node}" / "meminfo")
    if text is None:
        return None
    out: dict[str, int] = {}
    for line in text.splitlines():
        m = re.match(r"Node\s+\d+\s+(MemTotal|MemFree):\s+(\d+)\s*kB", line)
        if m is not None:
            out["total_bytes" if m.group(1) == "MemTotal" else "free_bytes"] = int(m.group(2)) * 1024
    return out or None


def nodes_of(cpus: list[int] | tuple[int, ...], nodes: dict[int, list[int]]) -> list[int]:
    """The NUMA nodes the given CPUs belong to."""
    want = set(cpus)
    return sorted(n for n, cs in nodes.items() if want & set(cs))


def smt_siblings(cpus: list[int], cpu_root: str = CPU_ROOT) -> list[list[int]]:
    """Groups of hardware threads sharing a core (thread_siblings_list), one group per core."""
    groups: list[list[int]] = []
    seen: set[int] = set()
    for cpu in cpus:
        if cpu in seen:
            continue
        sib = _read_list(Path(cpu_root) / f"cpu{cpu}" / "topology" / "thread_siblings_list") or [cpu]
        seen.update(sib)
        groups.append(sib)
    return groups


def governors(cpus: list[int], cpu_root: str = CPU_ROOT) -> dict[int, str | None]:
    """cpufreq scaling_governor per CPU; None where cpufreq is absent (VMs, containers)."""
    out: dict[int, str | None] = {}
    for cpu in cpus:
        out[cpu] = _read_word(Path(cpu_root) / f"cpu{cpu}" / "cpufreq" / "scaling_governor")
    return out


def common_governor(govs: dict[int, str | None]) -> str | None:
    """One governor for the host: the common one, 'mixed', or None when none is readable."""
    values = {g for g in govs.values() if g is not None}
    if not values:
        return None
    return values.pop() if len(values) == 1 else "mixed"


def cpu_idle(cpu_root: str = CPU_ROOT, halt_poll_path: str = HALT_POLL_NS) -> dict:
    """How an idle CPU waits: the cpuidle driver and governor, and with the haltpoll driver (KVM
    guests) how long it polls before halting, in ns. None for what is not readable; halt_poll_ns
    is None under any other driver, whose setting would not apply."""
    root = Path(cpu_root) / "cpuidle"
    driver = _read_word(root / "current_driver")
    return {"driver": driver,
            "governor": _read_word(root / "current_governor") or _read_word(root / "current_governor_ro"),
            "halt_poll_ns": read_int(halt_poll_path) if driver == "haltpoll" else None}


def wakeups_exit_the_vm(idle: dict) -> bool:
    """Whether an idle CPU halts at once, without polling first (haltpoll driver, polling set to
    0): waking it is then an interrupt sent through the hypervisor, paid by the waker. A client
    that waits for its responses in epoll makes the server pay that for every wake-up."""
    return idle["driver"] == "haltpoll" and idle["halt_poll_ns"] == 0


def port_range(path: str = PORT_RANGE) -> dict[str, int] | None:
    text = _read(path)
    try:
        lo, hi = (int(x) for x in (text or "").split()[:2])
    except ValueError:
        return None
    return {"low": lo, "high": hi, "count": hi - lo + 1}


def read_int(path: str) -> int | None:
    text = _read(path)
    try:
        return int(text.strip()) if text is not None else None
    except ValueError:
        return None


def rlimit_nofile() -> dict[str, int | None]:
    """Soft and hard RLIMIT_NOFILE; None stands for unlimited."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    inf = resource.RLIM_INFINITY
    return {"soft": None if soft == inf else soft, "hard": None if hard == inf else hard}


def tools() -> dict[str, str | None]:
    """Where perf, taskset and numactl are (None: not installed)."""
    return {t: shutil.which(t) for t in TOOLS}


def hw_counters(perf: str | None) -> bool | None:
    """Can this process read hardware counters? Asks perf to count instructions of `true`:
    '<not supported>' (VMs, containers) or a refusal (perf_event_paranoid) means no.
    None when perf is not installed."""
    if perf is None:
        return None
    try:
        p = subprocess.run([perf, "stat", "-x,", "-e", "instructions", "true"], capture_output=True,
                           text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    if p.returncode != 0:
        return False
    for line in p.stderr.splitlines():
        fields = line.split(",")
        if len(fields) > 2 and fields[2].startswith("instructions"):
            return fields[0].strip().isdigit()
    return False


# ------------------------------------------------------------------ processes


def proc_status(pid: int | str, proc: str = PROC) -> dict[str, list[int]] | None:
    """Cpus_allowed_list and Mems_allowed_list of a process; None if it does not exist."""
    text = _read(Path(proc) / str(pid) / "status")
    if text is None:
        return None
    out: dict[str, list[int]] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in ("Cpus_allowed_list", "Mems_allowed_list"):
            out["cpus" if key.startswith("Cpus") else "mems"] = parse_cpulist(value)
    return out


def pid_exists(pid: int, proc: str = PROC) -> bool:
    return pid > 0 and (Path(proc) / str(pid) / "stat").exists()


def descendants(pid: int, proc: str = PROC) -> list[int]:
    """pid and its live descendants (nginx master -> workers), from /proc/PID/task/*/children."""
    out: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        if p in out:
            continue
        out.append(p)
        try:
            tids = os.listdir(Path(proc) / str(p) / "task")
        except OSError:
            continue
        for tid in tids:
            text = _read(Path(proc) / str(p) / "task" / tid / "children") or ""
            todo.extend(int(c) for c in text.split())
    return sorted(out)


def cpu_seconds(pid: int, proc: str = PROC) -> float | None:
    """utime + stime of a process (all its threads) in seconds, from /proc/PID/stat."""
    text = _read(Path(proc) / str(pid) / "stat")
    if text is None:
        return None
    # The command name may contain spaces and parentheses: fields start after the last ')'.
    fields = text[text.rfind(")") + 2:].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


class ServerCPU:
    """CPU time of a server process tree over the measured interval: sample() at the start and
    at the end; children that appear or exit in between count from when they are seen."""

    def __init__(self, pid: int, proc: str = PROC):
        self.pid = pid
        self.proc = proc
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}

    def _sample(self) -> dict[int, float]:
        out = {}
        for p in descendants(self.pid, self.proc):
            s = cpu_seconds(p, self.proc)
            if s is not None:
                out[p] = s
        return out

    def start(self) -> None:
        self.first = self._sample()

    def stop(self) -> None:
        self.last = self._sample()

    def report(self, requests: int) -> dict:
        cpu_s = sum(v - self.first.get(p, 0.0) for p, v in self.last.items())
        return {
            "pid": self.pid,
            "pids": sorted(self.last),
            "cpu_s": cpu_s,
            "cpu_us_per_request": cpu_s * 1e6 / requests if requests else None,
            "cpus": process_cpus(self.pid, self.proc),
        }


def process_cpus(pid: int, proc: str = PROC) -> list[int]:
    """CPUs a process tree may run on (union over the process and its descendants)."""
    cpus: set[int] = set()
    for p in descendants(pid, proc):
        st = proc_status(p, proc)
        if st is not None:
            cpus.update(st.get("cpus", []))
    return sorted(cpus)


_MPOL_MODES = {0: "default", 1: "preferred", 2: "bind", 3: "interleave", 4: "local",
               5: "preferred_many", 6: "weighted_interleave"}
_SYS_GET_MEMPOLICY = {"x86_64": 239, "aarch64": 236}


def mempolicy() -> dict | None:
    """This process's NUMA memory policy (what numactl --membind set), by get_mempolicy(2);
    None on architectures we have no syscall number for or when the call fails.
    /proc/self/status Mems_allowed shows the cpuset, not this policy."""
    nr = _SYS_GET_MEMPOLICY.get(platform.machine())
    if nr is None:
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    mode = ctypes.c_int(0)
    words = 16
    mask = (ctypes.c_ulong * words)()
    bits = ctypes.sizeof(ctypes.c_ulong) * 8
    if libc.syscall(nr, ctypes.byref(mode), mask, ctypes.c_ulong(words * bits), None, ctypes.c_ulong(0)):
        return None
    nodes = [i for i in range(words * bits) if mask[i // bits] >> (i % bits) & 1]
    # The upper bits carry MPOL_F_* flags.
    return {"mode": _MPOL_MODES.get(mode.value & 0xFF, str(mode.value)), "nodes": nodes}


def placement(proc: str = PROC, node_root: str = NODE_ROOT) -> dict:
    """Where this process actually runs, read back from the kernel after pinning."""
    st = proc_status("self", proc) or {}
    cpus = st.get("cpus", sorted(os.sched_getaffinity(0)))
    return {
        "cpus": cpus,
        "numa_nodes": nodes_of(cpus, numa_nodes(node_root)),
        "mems_allowed": st.get("mems", []),
        "mempolicy": mempolicy(),
    }


# ------------------------------------------------------------------ the whole host


def native_tls_built() -> bool:
    """Whether this install has the native TLS unit (fastload.native.tls: built only where
    OpenSSL's headers were). Looked up as a file, so that nothing native is imported."""
    native = Path(__file__).resolve().parent.parent / "native"
    return any((native / f"tls{suffix}").exists()
               for suffix in importlib.machinery.EXTENSION_SUFFIXES)


TCP_ULP = 31  # linux/tcp.h; not in Python's socket module


def kernel_tls() -> bool:
    """Whether the kernel takes TLS records (the "tls" upper-layer protocol on a connected TCP
    socket, as OpenSSL's SSL_OP_ENABLE_KTLS would ask for it)."""
    try:
        with socket.create_server(("127.0.0.1", 0)) as srv, \
                socket.create_connection(srv.getsockname(), timeout=1) as c:
            c.setsockopt(socket.IPPROTO_TCP, TCP_ULP, b"tls")
            return True
    except OSError:
        return False


def tls_facts() -> dict:
    """Which TLS path an https:// run over TCP takes here, and what it runs on."""
    built = native_tls_built()
    return {"path": "native" if built else "python", "native_built": built,
            "openssl": ssl.OPENSSL_VERSION, "kernel_tls": kernel_tls()}


def info(node_root: str = NODE_ROOT, cpu_root: str = CPU_ROOT, port_path: str = PORT_RANGE,
         somaxconn_path: str = SOMAXCONN, halt_poll_path: str = HALT_POLL_NS) -> dict:
    """Everything `fastload info` shows, as a JSON-able dict."""
    online = online_cpus(cpu_root)
    nodes = numa_nodes(node_root)
    govs = governors(online, cpu_root)
    found = tools()
    return {
        "cpus": online,
        "cpu_count": os.cpu_count(),
        "affinity": sorted(os.sched_getaffinity(0)),
        "numa_nodes": [{"node": n, "cpus": cs, "memory": node_memory(n, node_root)}
                       for n, cs in nodes.items()],
        "smt_siblings": smt_siblings(online, cpu_root),
        "governor": common_governor(govs),
        "governors": {str(c): g for c, g in govs.items()},
        "cpu_idle": cpu_idle(cpu_root, halt_poll_path),
        "rlimit_nofile": rlimit_nofile(),
        "ephemeral_ports": port_range(port_path),
        "somaxconn": read_int(somaxconn_path),
        "tools": found,
        "hw_counters": hw_counters(found["perf"]),
        "tls": tls_facts(),
    }

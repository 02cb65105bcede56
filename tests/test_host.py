"""Dedicated-host mode: `fastload info` against this machine and a fake sysfs tree, and
worker placement (--pin-mode, --numa-node, --avoid-cpus, --server-pid) read back from /proc."""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from fastload.cli import main
from fastload.errors import UsageError
from fastload.host import info as host
from fastload.host import placement
from fastload.report.summary import summary
from support import peers

TWO_CPUS = pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2 or not {0, 1} <= os.sched_getaffinity(0),
                              reason="needs CPUs 0 and 1")


def fastload(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fastload", *args], capture_output=True, text=True,
                          timeout=120, env=env)


def run_json(*args: str) -> tuple[dict, str]:
    p = fastload("run", *args, "--json", "-", "--quiet")
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout), p.stderr


def other_warnings(doc: dict) -> list[str]:
    """The run's warnings but the one about this host's idle CPUs (a property of the machine,
    tested on its own below)."""
    return [w for w in doc.get("warnings", []) if "guest_halt_poll_ns 0" not in w]


def status_list(pid: int, key: str) -> list[int]:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return host.parse_cpulist(line.split(":", 1)[1])
    raise AssertionError(f"{key} not in /proc/{pid}/status")


def dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


# ------------------------------------------------------------------ fastload info, real host


def test_info_json_describes_this_machine():
    p = fastload("info", "--json")
    assert p.returncode == 0, p.stderr
    facts = json.loads(p.stdout)
    online = host.parse_cpulist(Path("/sys/devices/system/cpu/online").read_text())
    assert facts["cpus"] == online
    assert facts["cpu_count"] == os.cpu_count()
    assert facts["affinity"] == sorted(os.sched_getaffinity(0))
    if Path("/sys/devices/system/node/node0").exists():
        assert sorted(c for n in facts["numa_nodes"] for c in n["cpus"]) == online
        node0 = facts["numa_nodes"][0]
        assert node0["node"] == 0 and node0["memory"]["total_bytes"] > node0["memory"]["free_bytes"] > 0
    assert sorted(c for g in facts["smt_siblings"] for c in g) == online
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    inf = resource.RLIM_INFINITY
    assert facts["rlimit_nofile"] == {"soft": None if soft == inf else soft,
                                      "hard": None if hard == inf else hard}
    lo, hi = (int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    assert facts["ephemeral_ports"] == {"low": lo, "high": hi, "count": hi - lo + 1}
    assert facts["somaxconn"] == int(Path("/proc/sys/net/core/somaxconn").read_text())
    assert facts["tools"] == {t: shutil.which(t) for t in ("perf", "taskset", "numactl")}
    assert (facts["hw_counters"] is None) == (shutil.which("perf") is None)
    gov = Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    assert facts["governors"]["0"] == (gov.read_text().strip() if gov.exists() else None)
    idle = Path("/sys/devices/system/cpu/cpuidle")
    driver = (idle / "current_driver").read_text().strip() if (idle / "current_driver").exists() else None
    assert facts["cpu_idle"]["driver"] == driver
    poll = Path("/sys/module/haltpoll/parameters/guest_halt_poll_ns")
    assert facts["cpu_idle"]["halt_poll_ns"] == (int(poll.read_text()) if driver == "haltpoll" else None)


def test_info_text_names_every_fact():
    p = fastload("info")
    assert p.returncode == 0, p.stderr
    for label in ("CPUs:", "Affinity:", "SMT siblings:", "Governor:", "CPU idle:", "Open files:",
                  "Ephemeral ports:", "somaxconn:", "Tools:", "HW counters:"):
        assert label in p.stdout, label
    assert f"CPUs:            {host.format_cpulist(sorted(os.sched_getaffinity(0)))}" in p.stdout


# ------------------------------------------------------------------ fake sysfs: 2 nodes, SMT


@pytest.fixture
def fake_sys(tmp_path: Path) -> tuple[str, str]:
    """8 CPUs, 2 nodes, hyperthread pairs (0,4) (1,5) (2,6) (3,7); CPU 2 runs powersave."""
    nodes, cpus = tmp_path / "node", tmp_path / "cpu"
    for n, cl, kb in ((0, "0-1,4-5", 1000), (1, "2-3,6-7", 2000)):
        d = nodes / f"node{n}"
        d.mkdir(parents=True)
        (d / "cpulist").write_text(cl + "\n")
        (d / "meminfo").write_text(f"Node {n} MemTotal:       {kb} kB\nNode {n} MemFree:  {kb // 2} kB\n"
                                   f"Node {n} MemUsed:        {kb // 2} kB\n")
    (nodes / "possible").write_text("0-1\n")  # not a node directory: ignored
    cpus.mkdir()
    (cpus / "online").write_text("0-7\n")
    for c in range(8):
        (cpus / f"cpu{c}" / "topology").mkdir(parents=True)
        (cpus / f"cpu{c}" / "topology" / "thread_siblings_list").write_text(f"{c % 4},{c % 4 + 4}\n")
        (cpus / f"cpu{c}" / "cpufreq").mkdir()
        (cpus / f"cpu{c}" / "cpufreq" / "scaling_governor").write_text(
            "powersave\n" if c == 2 else "performance\n")
    return str(nodes), str(cpus)


def test_fake_tree_nodes_siblings_memory_and_governors(fake_sys):
    nodes, cpus = fake_sys
    assert host.numa_nodes(nodes) == {0: [0, 1, 4, 5], 1: [2, 3, 6, 7]}
    assert host.node_memory(1, nodes) == {"total_bytes": 2000 * 1024, "free_bytes": 1000 * 1024}
    assert host.online_cpus(cpus) == list(range(8))
    assert host.smt_siblings(list(range(8)), cpus) == [[0, 4], [1, 5], [2, 6], [3, 7]]
    govs = host.governors([1, 2], cpus)
    assert govs == {1: "performance", 2: "powersave"}
    assert host.common_governor(govs) == "mixed"
    assert host.common_governor({0: None}) is None
    assert host.nodes_of([1, 6], host.numa_nodes(nodes)) == [0, 1]
    facts = host.info(node_root=nodes, cpu_root=cpus)
    assert facts["numa_nodes"][1] == {"node": 1, "cpus": [2, 3, 6, 7],
                                      "memory": {"total_bytes": 2048000, "free_bytes": 1024000}}
    assert facts["smt_siblings"] == [[0, 4], [1, 5], [2, 6], [3, 7]]
    assert facts["governor"] == "mixed" and facts["governors"]["2"] == "powersave"


def test_missing_sysfs_gives_unknown_not_errors(tmp_path):
    facts = host.info(node_root=str(tmp_path / "none"), cpu_root=str(tmp_path / "none"),
                      port_path=str(tmp_path / "none"), somaxconn_path=str(tmp_path / "none"))
    assert facts["numa_nodes"] == [] and facts["governor"] is None
    assert facts["cpus"] == sorted(os.sched_getaffinity(0))
    assert facts["ephemeral_ports"] is None and facts["somaxconn"] is None


def test_governor_warning_only_when_readable_and_not_performance(fake_sys, tmp_path):
    _, cpus = fake_sys
    assert placement.warnings(((0,), (1,)), cpu_root=cpus) == []
    (w,) = placement.warnings(((1,), (2,)), cpu_root=cpus)
    assert w.startswith("CPU frequency governor is powersave on CPU(s) 2, not performance")
    assert placement.warnings(((1,), (2,)), cpu_root=str(tmp_path / "no-cpufreq")) == []
    (w,) = placement.warnings(((0,), (0,), (1,)), halt_poll_path=str(tmp_path / "none"))
    assert w.startswith("3 workers on 2 CPU(s): several workers share a CPU")


@TWO_CPUS
def test_cpu_pool_from_numa_node_cpus_and_avoid(fake_sys):
    nodes, _ = fake_sys
    # Node 0 has CPUs 0,1,4,5; this process may use 0 and 1 (at least).
    assert placement.choose_pool(None, 0, None, nodes) == [c for c in sorted(os.sched_getaffinity(0))
                                                           if c in (0, 1, 4, 5)]
    assert placement.choose_pool([1], 0, None, nodes) == [1]
    assert placement.choose_pool([0, 1], None, [0], nodes) == [1]
    with pytest.raises(UsageError, match=r"--numa-node 3: no such NUMA node \(nodes: 0,1\)"):
        placement.choose_pool(None, 3, None, nodes)
    with pytest.raises(UsageError, match="--cpus and --numa-node 1 disagree: CPU.s. 0,1 are not on node 1"):
        placement.choose_pool([0, 1], 1, None, nodes)
    with pytest.raises(UsageError, match="--avoid-cpus 0-1 leaves no CPU"):
        placement.choose_pool([0, 1], None, [0, 1], nodes)


def test_cpulist_round_trip():
    assert host.parse_cpulist("0-3,8,10-11\n") == [0, 1, 2, 3, 8, 10, 11]
    assert host.parse_cpulist("") == []
    assert host.format_cpulist([11, 0, 1, 2, 3, 8, 10]) == "0-3,8,10-11"
    with pytest.raises(ValueError):
        host.parse_cpulist("0-x")


def test_fake_proc_status_stat_and_children(tmp_path):
    for pid, children, utime, stime in ((10, "11 12 ", 300, 100), (11, "", 50, 50), (12, "", 7, 3)):
        d = tmp_path / str(pid)
        (d / "task" / str(pid)).mkdir(parents=True)
        (d / "task" / str(pid) / "children").write_text(children)
        fields = ["S", "1"] + ["0"] * 9 + [str(utime), str(stime)] + ["0"] * 30
        # A command name with a space and a ')' must not shift the fields.
        (d / "stat").write_text(f"{pid} (we ird) x) " + " ".join(fields) + "\n")
        (d / "status").write_text(f"Name:\tx\nCpus_allowed_list:\t{pid - 10}\nMems_allowed_list:\t0-1\n")
    proc = str(tmp_path)
    assert host.descendants(10, proc) == [10, 11, 12]
    tck = os.sysconf("SC_CLK_TCK")
    assert host.cpu_seconds(10, proc) == 400 / tck
    assert host.proc_status(12, proc) == {"cpus": [2], "mems": [0, 1]}
    assert host.process_cpus(10, proc) == [0, 1, 2]
    assert host.proc_status(99, proc) is None and not host.pid_exists(99, proc)


# ------------------------------------------------------------------ real runs, placement


@TWO_CPUS
@pytest.mark.skipif(not peers.have("taskset"), reason="taskset not installed")
def test_taskset_pins_each_worker_as_the_kernel_reports(nginx_h1):
    doc, _ = run_json(nginx_h1.url, "-n", "2000", "-c", "4", "-w", "2", "--cpus", "0,1",
                      "--pin-mode", "taskset")
    assert doc["requests"] == 2000
    assert [w["cpus"] for w in doc["workers"]] == [[0], [1]]
    assert [w["pin_mode"] for w in doc["workers"]] == ["taskset", "taskset"]
    assert doc["config"]["pin_mode"] == "taskset"
    nodes = host.numa_nodes()
    for w in doc["workers"]:
        assert w["numa_nodes"] == host.nodes_of(w["cpus"], nodes)
    assert not other_warnings(doc)


@TWO_CPUS
@pytest.mark.skipif(not peers.have("numactl"), reason="numactl not installed (apt-get install numactl)")
@pytest.mark.skipif(not Path("/sys/devices/system/node/node0").exists(), reason="no NUMA sysfs")
def test_numactl_numa_node_binds_cpus_and_memory_seen_from_outside(nginx_h1):
    node0 = host.numa_nodes()[0]
    proc = subprocess.Popen([sys.executable, "-m", "fastload", "run", nginx_h1.url, "-d", "3s", "-c", "4",
                             "-w", "2", "--numa-node", "0", "--pin-mode", "numactl", "--json", "-", "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # While it runs, read the workers' placement ourselves. A worker's pid runs three programs
    # in turn: the generated /bin/sh script, numactl (which pins itself, then execs), and
    # Python. Only the last one is the worker: before it, the CPUs are still the parent's.
    seen: dict[int, list[int]] = {}
    deadline = time.monotonic() + 20
    while len(seen) < 2 and time.monotonic() < deadline:
        kids = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        for k in map(int, kids):
            try:
                argv = Path(f"/proc/{k}/cmdline").read_bytes().split(b"\0")
                # Workers (not the resource tracker that spawn also starts), once exec'd.
                if argv[0] == sys.executable.encode() and b"--multiprocessing-fork" in argv:
                    seen[k] = status_list(k, "Cpus_allowed_list")
            except (FileNotFoundError, ProcessLookupError):
                pass
        time.sleep(0.1)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    doc = json.loads(out)
    workers = doc["workers"]
    assert {w["pid"]: w["cpus"] for w in workers} == seen
    want = [c for c in sorted(os.sched_getaffinity(0)) if c in node0]
    assert sorted(c for w in workers for c in w["cpus"]) == want  # two workers split the node
    for w in workers:
        assert w["pin_mode"] == "numactl"
        assert w["numa_nodes"] == [0]
        assert 0 in w["mems_allowed"]
        assert w["mempolicy"] == {"mode": "bind", "nodes": [0]}


@TWO_CPUS
def test_avoid_cpus_keeps_workers_off_them(nginx_h1):
    doc, err = run_json(nginx_h1.url, "-n", "1000", "-c", "2", "-w", "2", "--avoid-cpus", "1")
    assert [w["cpus"] for w in doc["workers"]] == [[0], [0]]
    assert [w["mempolicy"]["mode"] for w in doc["workers"]] == ["default", "default"]
    assert doc["config"]["avoid_cpus"] == [1]
    assert any("2 workers on 1 CPU(s): several workers share a CPU" in w for w in doc["warnings"])


def _idle_tree(root: Path, driver: str, governor: str, poll_ns: int | None) -> tuple[str, str]:
    (root / "cpu" / "cpuidle").mkdir(parents=True)
    (root / "cpu" / "cpuidle" / "current_driver").write_text(driver + "\n")
    (root / "cpu" / "cpuidle" / "current_governor_ro").write_text(governor + "\n")
    poll = root / "guest_halt_poll_ns"
    if poll_ns is not None:
        poll.write_text(f"{poll_ns}\n")
    return str(root / "cpu"), str(poll)


@pytest.mark.parametrize("driver, poll_ns, costly, text", [
    ("haltpoll", 0, True, "haltpoll driver, haltpoll governor; halts without polling "
                          "(guest_halt_poll_ns 0): waking an idle CPU costs the waker a VM exit"),
    ("haltpoll", 200000, False, "haltpoll driver, haltpoll governor; polls up to 200us before halting"),
    # Another driver's CPUs do not read the haltpoll module's setting, even where it exists.
    ("intel_idle", 0, False, "intel_idle driver, haltpoll governor"),
    ("haltpoll", None, False, "haltpoll driver, haltpoll governor"),
])
def test_cpu_idle_and_the_vm_exit_warning(tmp_path, driver, poll_ns, costly, text):
    from fastload.cli import _idle_text

    cpus, poll = _idle_tree(tmp_path, driver, "haltpoll", poll_ns)
    idle = host.cpu_idle(cpus, poll)
    assert idle == {"driver": driver, "governor": "haltpoll",
                    "halt_poll_ns": poll_ns if driver == "haltpoll" else None}
    assert host.wakeups_exit_the_vm(idle) is costly
    assert _idle_text(idle) == text
    assert host.info(cpu_root=cpus, halt_poll_path=poll)["cpu_idle"] == idle
    warned = [w for w in placement.warnings(((0,),), cpu_root=cpus, halt_poll_path=poll)
              if w.startswith("idle CPUs halt without polling (cpuidle haltpoll, guest_halt_poll_ns 0)")]
    assert len(warned) == int(costly)
    # --coalesce waits on a timer while responses flow: nothing for the server to wake.
    assert placement.warnings(((0,),), cpu_root=cpus, halt_poll_path=poll, coalescing=True) == []


def test_no_cpuidle_in_sysfs_is_unknown(tmp_path):
    from fastload.cli import _idle_text

    idle = host.cpu_idle(str(tmp_path), str(tmp_path / "none"))
    assert idle == {"driver": None, "governor": None, "halt_poll_ns": None}
    assert not host.wakeups_exit_the_vm(idle) and _idle_text(idle) == "unknown"


def test_a_run_warns_of_vm_exits_where_this_host_has_them(nginx_h1):
    """The warning follows this machine's own setting, in a real run's JSON, and --coalesce
    drops it."""
    costly = host.wakeups_exit_the_vm(host.cpu_idle())
    for extra, expect in (((), costly), (("--coalesce", "100us"), False)):
        doc, err = run_json(nginx_h1.url, "-n", "200", "-c", "2", "-w", "1", *extra)
        assert doc["requests"] == 200
        assert any("guest_halt_poll_ns 0" in w for w in doc.get("warnings", [])) is expect, extra
        assert ("guest_halt_poll_ns 0" in err) is expect


@TWO_CPUS
def test_server_pid_cpu_and_sharing_warning(nginx_h1):
    master = peers.nginx_master_pid(nginx_h1)
    nginx_workers = [int(p) for p in Path(f"/proc/{master}/task/{master}/children").read_text().split()]
    doc, err = run_json(nginx_h1.url, "-n", "20000", "-c", "4", "-w", "1", "--cpus", "0",
                        "--server-pid", str(master))
    s = doc["server_cpu"]
    assert s["pid"] == master
    assert s["pids"] == sorted([master, *nginx_workers])
    assert s["cpu_s"] > 0
    assert s["cpu_us_per_request"] == pytest.approx(s["cpu_s"] * 1e6 / 20000)
    assert s["cpus"] == sorted(set(status_list(master, "Cpus_allowed_list"))
                               | {c for p in nginx_workers for c in status_list(p, "Cpus_allowed_list")})
    msg = f"workers share CPU(s) 0 with the server (pid {master})"
    assert any(w.startswith(msg) for w in doc["warnings"])
    assert msg in err  # printed before the run as well
    assert f"Server CPU:   {s['cpu_us_per_request']:.2f}us/request ({s['cpu_s']:.2f}s, pid {master})" \
        in summary(doc)


@TWO_CPUS
def test_server_pinned_elsewhere_gives_no_sharing_warning():
    with peers.nginx(cpu=1) as server:
        master = peers.nginx_master_pid(server)
        doc, err = run_json(server.url, "-n", "2000", "-c", "2", "-w", "1", "--cpus", "0",
                            "--server-pid", str(master))
        assert doc["server_cpu"]["cpus"] == [1]
        assert doc["workers"][0]["cpus"] == [0]
        assert not other_warnings(doc) and "share" not in err


# ------------------------------------------------------------------ bad input: exit 2, no traffic


@pytest.mark.parametrize("args, message", [
    (["--numa-node", "64"], "--numa-node 64: no such NUMA node"),
    (["--server-pid", "DEAD"], "no such process"),
    (["--avoid-cpus", "0-1023"], "leaves no CPU for the workers"),
    (["--avoid-cpus", "x"], "--avoid-cpus: 'x' is not a CPU list"),
    (["--pin-mode", "cgroup"], "Invalid value for '--pin-mode'"),
])
def test_bad_placement_input_exits_2_before_traffic(nginx_h1, args, message):
    args = [str(dead_pid()) if a == "DEAD" else a for a in args]
    before = nginx_h1.count_requests()
    p = fastload("run", nginx_h1.url, "-n", "100", *args)
    assert p.returncode == 2, p.stderr
    assert message in p.stderr
    assert "Traceback" not in p.stderr
    assert nginx_h1.count_requests() == before


def test_missing_wrapper_binary_exits_2(nginx_h1, tmp_path):
    env = dict(os.environ, PATH=str(tmp_path))  # neither numactl nor taskset on it
    for mode, package in (("numactl", "numactl"), ("taskset", "util-linux")):
        p = fastload("run", nginx_h1.url, "-n", "100", "--pin-mode", mode, env=env)
        assert p.returncode == 2, p.stderr
        assert p.stderr.strip() == (f"fastload: error: --pin-mode {mode}: {mode!r} is not installed "
                                    f"(package {package}), or use --pin-mode affinity")


def test_run_help_documents_placement_options():
    r = CliRunner().invoke(main, ["run", "--help"])
    for flag in ("--numa-node", "--pin-mode", "--avoid-cpus", "--server-pid"):
        assert flag in r.output, flag
    r = CliRunner().invoke(main, ["info", "--help"])
    assert r.exit_code == 0 and "--json" in r.output

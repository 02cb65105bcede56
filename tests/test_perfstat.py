"""`run --perf-stat`: perf's CSV parsed as perf writes it, one real perf session counting only
while enabled, and live runs against nginx with the counters per worker and summed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from fastload.errors import UsageError
from fastload.host import perfstat
from fastload.host.perfstat import DEFAULT_EVENTS, SOFTWARE_EVENTS, PerfSpec
from fastload.results import perf

RUN_TIMEOUT_S = 120

# Captured on the development VM (perf 6.1.187, Debian 12, no PMU exposed to the guest):
# `perf stat -x, -e cycles,instructions,cache-misses,context-switches,cpu-migrations,task-clock
#  -o FILE python3 -c 'sum(range(10**6))'`.
NO_PMU_DEFAULT = """\
# started on Mon Nov 23 09:30:38 2026

<not supported>,,cycles,0,100.00,,
<not supported>,,instructions,0,100.00,,
<not supported>,,cache-misses,0,100.00,,
188,,context-switches,265071871,100.00,709.242,/sec
47,,cpu-migrations,265071871,100.00,177.310,/sec
265.07,msec,task-clock,265071871,100.00,0.449,CPUs utilized
"""

# Same machine: `perf stat -x, -e task-clock,cs -p PID -D -1 --control fifo:...` stopped with
# SIGINT before any "enable" (a run interrupted during its warm-up).
NEVER_ENABLED = """\
# started on Mon Nov 23 09:27:10 2026

<not counted>,msec,task-clock,0,100.00,,
<not counted>,,cs,0,100.00,,
"""

# Same machine: `perf stat -x, -e task-clock,cs,page-faults -p PID -o FILE` (an alias as given).
ATTACHED_BY_PID = """\
# started on Mon Nov 23 09:30:39 2026

0.10,msec,task-clock,96340,100.00,0.000,CPUs utilized
0,,cs,96340,100.00,0.000,/sec
0,,page-faults,96340,100.00,0.000,/sec
"""

# NOT captured here (this machine has no hardware counters): written in perf 6.1's -x, layout
# for a host with a PMU, with what such hosts print: a derived-metric-only line with empty
# value/event fields, a multiplexed counter (running 66.67%, value already scaled by perf),
# a hybrid CPU's cycles split into cpu_core/ and cpu_atom/, and a raw PMU event whose name
# contains a comma.
WITH_PMU = """\
# started on Tue Apr 30 10:00:00 2024

2104.33,msec,task-clock,2104330000,100.00,0.998,CPUs utilized
812,,context-switches,2104330000,100.00,385.871,/sec
3,,cpu-migrations,2104330000,100.00,1.426,/sec
6000000000,,cpu_core/cycles/,1403000000,66.67,2.851,GHz
1000000000,,cpu_atom/cycles/,2104330000,100.00,0.475,GHz
9100000000,,instructions,2104330000,100.00,1.30,insn per cycle
,,,,,0.04,stalled cycles per insn
15500000,,cache-misses,2104330000,100.00,7.366,M/sec
42,,cpu/event=0x3c,umask=0x00/,2104330000,100.00,,
"""

# Captured on the development VM as user nobody, kernel.perf_event_paranoid=2: perf falls back
# to user-space counting and says so in the names. `perf stat -x, -e task-clock,context-switches,
# cycles -p PID`.
USER_SPACE_ONLY = """\
0.05,msec,task-clock:u,52249,100.00,0.000,CPUs utilized
0,,context-switches:u,52249,100.00,0.000,/sec
<not supported>,,cycles:u,0,100.00,,
"""

# Captured on the development VM, as user nobody with kernel.perf_event_paranoid=2:
# `perf stat -x, -a -e task-clock sleep 0.1` (system-wide needs a lower setting), exit 255.
PARANOID_REFUSAL = """\
Error:
Access to performance monitoring and observability operations is limited.
Consider adjusting /proc/sys/kernel/perf_event_paranoid setting to open
access to performance monitoring and observability operations for processes
without CAP_PERFMON, CAP_SYS_PTRACE or CAP_SYS_ADMIN Linux capability.
More information can be found at 'Perf events and tool security' document:
https://www.kernel.org/doc/html/latest/admin-guide/perf-security.html
perf_event_paranoid setting is 2:
  -1: Allow use of (almost) all events by all users
      Ignore mlock limit after perf_event_mlock_kb without CAP_IPC_LOCK
>= 0: Disallow raw and ftrace function tracepoint access
>= 1: Disallow CPU event access
>= 2: Disallow kernel profiling
To make the adjusted perf_event_paranoid setting permanent preserve it
in /etc/sysctl.conf (e.g. kernel.perf_event_paranoid = <setting>)
"""


def test_parse_without_hardware_counters():
    c = perfstat.parse_csv(NO_PMU_DEFAULT, DEFAULT_EVENTS)
    assert set(c) == set(DEFAULT_EVENTS)
    for e in ("cycles", "instructions", "cache-misses"):
        assert c[e].value is None and c[e].missing == "not supported"
    assert c["context-switches"].value == 188 and isinstance(c["context-switches"].value, int)
    assert c["cpu-migrations"].value == 47
    assert c["task-clock"].value == 265.07 and c["task-clock"].unit == "msec"
    assert c["task-clock"].running_pct == 100.0
    doc = perfstat.worker_document(c, DEFAULT_EVENTS)
    assert doc["ipc"] is None
    assert doc["missing"] == {"cycles": "not supported", "instructions": "not supported",
                              "cache-misses": "not supported"}
    assert doc["units"] == {"task-clock": "msec"}


def test_parse_never_enabled_and_aliases():
    c = perfstat.parse_csv(NEVER_ENABLED, ("task-clock", "cs"))
    assert c["task-clock"].value is None and c["task-clock"].missing == "not counted"
    assert c["cs"].value is None and c["cs"].missing == "not counted"
    c = perfstat.parse_csv(ATTACHED_BY_PID, ("task-clock", "cs", "page-faults"))
    assert (c["task-clock"].value, c["cs"].value, c["page-faults"].value) == (0.10, 0, 0)


def test_parse_user_space_only_names():
    c = perfstat.parse_csv(USER_SPACE_ONLY, ("task-clock", "context-switches", "cycles"))
    assert (c["task-clock"].value, c["context-switches"].value) == (0.05, 0)
    assert c["cycles"].missing == "not supported"
    # A tracepoint's colon is part of its name, not a modifier.
    c = perfstat.parse_csv("3,,sched:sched_switch,1000,100.00,,\n", ("sched:sched_switch",))
    assert c["sched:sched_switch"].value == 3


def test_parse_with_hardware_counters_multiplexing_and_hybrid_pmus():
    events = ("task-clock", "context-switches", "cpu-migrations", "cycles", "instructions",
              "cache-misses", "cpu/event=0x3c,umask=0x00/")
    c = perfstat.parse_csv(WITH_PMU, events)
    assert c["cycles"].value == 7_000_000_000  # both core types, summed
    assert c["cycles"].running_pct == 66.67  # the least any part ran
    assert c["instructions"].value == 9_100_000_000
    assert c["cache-misses"].value == 15_500_000
    assert c["cpu/event=0x3c,umask=0x00/"].value == 42
    assert c["task-clock"].value == 2104.33
    doc = perfstat.worker_document(c, events)
    assert doc["ipc"] == pytest.approx(9.1 / 7.0)
    assert "missing" not in doc
    assert doc["running_pct"]["cycles"] == 66.67


def test_totals_sum_the_workers_and_null_when_one_has_no_count():
    events = ("cycles", "instructions", "task-clock")
    spec = PerfSpec(events=events, custom=True)
    a = perfstat.worker_document(perfstat.parse_csv(WITH_PMU, events), events)
    b = {"counters": {"cycles": 3_000_000_000, "instructions": 900_000_000, "task-clock": 1.5},
         "units": {"task-clock": "msec"}}
    t = perf.total([a, b], spec.events, spec.note)
    assert t["counters"] == {"cycles": 10_000_000_000, "instructions": 10_000_000_000,
                             "task-clock": 2105.83}
    assert t["ipc"] == 1.0 and t["events"] == list(events) and "note" not in t
    c = {"counters": {"cycles": None, "instructions": None, "task-clock": 1.0}}
    t = perf.total([a, c], events, "n")
    assert t["counters"]["cycles"] is None and t["ipc"] is None and t["note"] == "n"
    assert t["counters"]["task-clock"] == 2105.33


def test_event_lists():
    assert perfstat.parse_spec(None) is None
    assert perfstat.parse_spec("default") == PerfSpec(events=DEFAULT_EVENTS, custom=False)
    assert perfstat.parse_spec("cycles, task-clock").events == ("cycles", "task-clock")
    assert perfstat.split_events("cpu/event=0x3c,umask=0/,{cycles,instructions},cs") == (
        "cpu/event=0x3c,umask=0/", "{cycles,instructions}", "cs")
    for bad in (",", "cycles,cycles", "-a", "task clock"):
        with pytest.raises(UsageError):
            perfstat.parse_spec(bad)


def test_permission_refusal_says_which_sysctl():
    msg = perfstat._probe_failure("perf", ("task-clock",), PARANOID_REFUSAL)
    assert "kernel.perf_event_paranoid" in msg and "sysctl kernel.perf_event_paranoid=1" in msg
    assert "\n" not in msg


# --- with the real perf --------------------------------------------------------------------

def _require_perf() -> None:
    try:
        p = subprocess.run(["perf", "stat", "-x,", "-e", "task-clock", "true"], capture_output=True,
                           text=True, timeout=30)
    except FileNotFoundError:
        pytest.skip("perf is not installed (apt install linux-perf)")
    if p.returncode != 0:
        pytest.skip(f"perf may not count here: {p.stderr.strip().splitlines()[-1:]}")


def hardware_counters() -> bool:
    """Asked of perf directly, not of fastload: does this machine count cycles?"""
    p = subprocess.run(["perf", "stat", "-x,", "-e", "cycles", "true"], capture_output=True,
                       text=True, timeout=30)
    return p.returncode == 0 and "<not supported>" not in p.stderr


def _burn_cpu(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_session_counts_only_while_enabled():
    _require_perf()
    spec = perfstat.check(PerfSpec(events=("task-clock", "context-switches"), custom=True))
    # As in a worker, which ignores SIGINT: perf must still stop on it and write its counts.
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        session = perfstat.Session(spec, os.getpid())
    finally:
        signal.signal(signal.SIGINT, old)
    try:
        _burn_cpu(0.4)
        session.enable()
        _burn_cpu(0.2)
        session.disable()
        _burn_cpu(0.4)
        doc = session.stop()
    finally:
        session.close()
    task_clock_s = doc["counters"]["task-clock"] / 1e3
    # 0.2 s of CPU counted; 1.0 s if the disabled stretches were counted too.
    assert 0.15 < task_clock_s < 0.5, doc
    assert doc["counters"]["context-switches"] >= 0
    assert not os.path.exists(session.dir)


def fastload(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fastload", *args], capture_output=True, text=True,
                          timeout=RUN_TIMEOUT_S, env=env)


def run_json(*args: str) -> dict:
    p = fastload("run", *args, "--json", "-", "--quiet")
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def check_sums(doc: dict) -> None:
    events = doc["perf"]["events"]
    for w in doc["workers"]:
        assert list(w["perf"]["counters"]) == events
    for e in events:
        assert doc["perf"]["counters"][e] == pytest.approx(sum(w["perf"]["counters"][e]
                                                               for w in doc["workers"]))


def test_default_events_per_worker_and_summed(nginx_h1):
    _require_perf()
    hw = hardware_counters()
    before = nginx_h1.count_requests()
    doc = run_json(nginx_h1.url, "--perf-stat", "-n", "20000", "-w", "2", "-c", "8")
    assert nginx_h1.count_requests() - before == 20000
    perf = doc["perf"]
    assert perf["events"] == list(DEFAULT_EVENTS if hw else SOFTWARE_EVENTS)
    assert doc["config"]["perf_stat"] == perf["events"]
    assert ("note" in perf) == (not hw)
    assert (perfstat.FALLBACK_NOTE in doc.get("warnings", [])) == (not hw)
    assert len(doc["workers"]) == 2
    check_sums(doc)
    for w in doc["workers"]:
        c = w["perf"]["counters"]
        assert c["task-clock"] > 0 and c["context-switches"] >= 0 and c["cpu-migrations"] >= 0
        assert "missing" not in w["perf"]
        # perf counts a part of what getrusage saw from the start (which also has the closing).
        # task-clock also charges the task for the switches in and out of its CPU, which the
        # scheduler's runtime (getrusage) does not: with the server and the other worker on
        # 2 CPUs that was 21 ms over 4,844 switches (4.4 µs each) in a CI run; allow 10 µs.
        cpu_s = w["cpu_user_s"] + w["cpu_sys_s"]
        switch_s = c["context-switches"] * 10e-6
        assert 0.5 * cpu_s < c["task-clock"] / 1e3 <= cpu_s * 1.05 + 0.005 + switch_s, (c, cpu_s)
        if hw:
            assert w["perf"]["ipc"] == pytest.approx(c["instructions"] / c["cycles"])
    assert doc["client_cpu_user_s"] == pytest.approx(sum(w["cpu_user_s"] for w in doc["workers"]))
    assert doc["client_cpu_sys_s"] == pytest.approx(sum(w["cpu_sys_s"] for w in doc["workers"]))
    assert doc["client_cpu_s"] == pytest.approx(doc["client_cpu_user_s"] + doc["client_cpu_sys_s"])


def test_warmup_is_not_counted(nginx_h1):
    _require_perf()
    doc = run_json(nginx_h1.url, "--perf-stat=task-clock", "-n", "2000", "--warmup", "3s", "-w", "1",
                   "-c", "4")
    assert doc["requests"] == 2000
    (w,) = doc["workers"]
    task_clock_s = w["perf"]["counters"]["task-clock"] / 1e3
    cpu_s = w["cpu_user_s"] + w["cpu_sys_s"]  # from the start, so with the 3 s warm-up
    # 2000 requests are a small part of 3 s of closed-loop warm-up traffic; with the warm-up
    # counted, task-clock would be close to the whole.
    assert 0 < task_clock_s < 0.5 * cpu_s, (task_clock_s, cpu_s)


def test_custom_events_and_summary_line(nginx_h1, tmp_path):
    _require_perf()
    out = tmp_path / "r.json"
    p = fastload("run", nginx_h1.url, "--perf-stat=task-clock,page-faults,cs", "-n", "3000", "-w", "2",
                 "-c", "4", "--json", str(out))
    assert p.returncode == 0, p.stderr
    doc = json.loads(out.read_text())
    assert doc["perf"]["events"] == ["task-clock", "page-faults", "cs"]
    # No note and no perf warning (a warning that the workers waited for a CPU is about the
    # machine, not about perf: two workers and nginx share 2 CPUs here).
    assert "note" not in doc["perf"]
    assert not [w for w in doc.get("warnings", []) if "perf" in w], doc.get("warnings")
    check_sums(doc)
    total = doc["perf"]["counters"]
    assert total["task-clock"] > 0 and total["page-faults"] >= 0 and total["cs"] >= 0
    assert f"Perf stat:    task-clock {total['task-clock']:.2f} msec, page-faults " \
           f"{total['page-faults']}, cs {total['cs']}" in p.stdout
    assert "Client CPU:" in p.stdout and "s user," in p.stdout


def _refused(nginx_h1, *args: str, env: dict | None = None) -> str:
    before = nginx_h1.count_requests()
    p = fastload("run", nginx_h1.url, "-n", "100", *args, env=env)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert p.stdout == "" and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert nginx_h1.count_requests() == before  # refused before any traffic
    return p.stderr


def test_perf_missing_is_a_usage_error(nginx_h1, tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    err = _refused(nginx_h1, "--perf-stat", env={**os.environ, "PATH": str(empty)})
    assert "perf" in err and "apt install linux-perf" in err


def test_unknown_event_is_a_usage_error(nginx_h1):
    _require_perf()
    err = _refused(nginx_h1, "--perf-stat=task-clock,no-such-event")
    assert "no-such-event" in err and "task-clock" not in err.split("event(s)")[1]


def test_unsupported_custom_event(nginx_h1):
    _require_perf()
    if hardware_counters():
        doc = run_json(nginx_h1.url, "--perf-stat=instructions", "-n", "1000", "-w", "1")
        assert doc["perf"]["counters"]["instructions"] > 0
    else:
        err = _refused(nginx_h1, "--perf-stat=instructions")
        assert "instructions (not supported)" in err


def test_ctrl_c_during_warmup_gives_null_counters(nginx_h1, tmp_path):
    _require_perf()
    out = tmp_path / "r.json"
    proc = subprocess.Popen([sys.executable, "-m", "fastload", "run", nginx_h1.url,
                             "--perf-stat=task-clock,cs", "-d", "5s", "--warmup", "20s", "-w", "2",
                             "-c", "4", "-q", "--json", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(3)  # well inside the 20 s warm-up, whatever the machine's speed
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=RUN_TIMEOUT_S)
    assert proc.returncode == 0, err
    doc = json.loads(out.read_text())
    assert doc["interrupted"] is True and doc["requests"] == 0
    assert doc["perf"]["counters"] == {"task-clock": None, "cs": None}
    for w in doc["workers"]:
        assert w["perf"]["counters"] == {"task-clock": None, "cs": None}
        assert w["perf"]["missing"] == {"task-clock": "not counted", "cs": "not counted"}


def test_perf_stat_before_the_url_is_not_read_as_its_events(nginx_h1):
    _require_perf()
    p = fastload("run", "--perf-stat", nginx_h1.url, "-n", "500", "-w", "1", "--json", "-", "--quiet")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["requests"] == 500
    assert doc["perf"]["events"] == list(DEFAULT_EVENTS if hardware_counters() else SOFTWARE_EVENTS)

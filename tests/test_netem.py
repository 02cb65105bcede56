"""--fault-via netem (fastload.faults.netem) in a network namespace the test makes: a veth pair
with addresses from 198.18.0.0/15 (RFC 2544's benchmark range), an echo server inside, the client
outside. The shaping is measured by a real client, and no qdisc is left behind: after a normal
end, an exception, SIGINT, or a SIGKILL followed by a new start. Needs root (skipped otherwise)."""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from fastload.errors import UsageError
from fastload.faults.netem import ROOT, Netem
from fastload.faults.spec import parse_faults
from support import SERVERS
from support.peers import have

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not (have("ip") and have("tc")),
                                reason="netem tests need root, ip and tc (network namespaces)")


@dataclass
class Net:
    ns: str
    dev: str  # the root namespace's end of the veth pair, where packets to `ip` leave
    ip: str
    port: int  # the echo server's, inside the namespace


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@pytest.fixture
def net() -> Iterator[Net]:
    n = os.getpid() % 250 + 1  # parallel runs of the suite use different names and subnets
    ns, a, b = f"fastload-t{n}", f"flt{n}a", f"flt{n}b"
    here, there = f"198.18.{n}.1", f"198.18.{n}.2"
    subprocess.run(["ip", "netns", "del", ns], capture_output=True)  # left by a killed run
    subprocess.run(["ip", "link", "del", a], capture_output=True)
    _ip("netns", "add", ns)
    server = None
    try:
        _ip("link", "add", a, "type", "veth", "peer", "name", b, "netns", ns)
        _ip("addr", "add", f"{here}/30", "dev", a)
        _ip("link", "set", a, "up")
        _ip("-n", ns, "addr", "add", f"{there}/30", "dev", b)
        _ip("-n", ns, "link", "set", b, "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        server = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable,
                                   str(SERVERS / "echo_server.py"), there],
                                  stdout=subprocess.PIPE, text=True)
        assert server.stdout is not None
        port = int(server.stdout.readline().rsplit(":", 1)[1])
        yield Net(ns, a, there, port)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
            server.stdout.close()  # type: ignore[union-attr]
        subprocess.run(["ip", "link", "del", a], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def _ours_left(dev: str) -> bool:
    out = subprocess.run(["tc", "qdisc", "show", "dev", dev], capture_output=True, text=True).stdout
    return f" {ROOT} " in out


def _upload_s(net: Net, size: int) -> float:
    """Send size bytes to the echo server and read them back: the time it took."""
    data = os.urandom(size)
    t = time.monotonic()
    with socket.create_connection((net.ip, net.port), timeout=10) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        got = bytearray()
        while chunk := s.recv(1 << 16):
            got.extend(chunk)
    assert got == data
    return time.monotonic() - t


def test_bandwidth_window_measured_and_removed(net):
    """tbf at 200 kB/s on the packets to the server, from 0.5 s: 300 kB take ~1.5 s inside the
    window and a few ms before it; the device of the route was found; nothing is left."""
    faults = parse_faults(["500ms-10s:bandwidth=200KB"])
    with Netem(faults, net.ip, net.port) as n:
        assert n.dev == net.dev and _ours_left(net.dev)
        t0 = time.monotonic_ns()
        n.schedule(t0)
        before = _upload_s(net, 300_000)
        time.sleep(max(0.0, (t0 + 600_000_000 - time.monotonic_ns()) / 1e9))
        inside = _upload_s(net, 300_000)
        assert not n.errors and [a["action"] for a in n.applied] == ["start"]
        late_ms = (n.applied[0]["at_ns"] - n.applied[0]["due_ns"]) / 1e6
    print(f"netem bandwidth 200KB/s: 300 kB in {inside:.2f} s inside, {before * 1000:.1f} ms"
          f" before; tc applied the window {late_ms:.1f} ms after its start")
    assert before < 0.3
    assert 1.3 <= inside <= 1.9
    assert not _ours_left(net.dev)


def test_a_window_ends_on_time_and_leaves_an_idle_leaf(net):
    """At the end, the tbf is changed to a rate nothing reaches (not deleted: that would drop
    what it holds): traffic is fast again, and the tree goes at remove()."""
    with Netem(parse_faults(["0s-300ms:bandwidth=100KB"]), net.ip, net.port) as n:
        t0 = time.monotonic_ns()
        n.schedule(t0)
        time.sleep(0.4)
        assert [a["action"] for a in n.applied] == ["start", "end"]
        assert all(0 <= a["at_ns"] - a["due_ns"] < 100_000_000 for a in n.applied)
        leaf = subprocess.run(["tc", "qdisc", "show", "dev", net.dev], capture_output=True,
                              text=True).stdout
        assert "tbf fa5a: parent fa57:1 rate 100Gbit" in leaf
        assert _upload_s(net, 300_000) < 0.3  # at 100 kB/s it would take 3 s
    assert not _ours_left(net.dev) and not n.errors


def _netem_in_kernel(dev: str) -> str | None:
    """Why this kernel cannot run netem, or None when it can."""
    p = subprocess.run(["tc", "qdisc", "add", "dev", dev, "root", "netem", "delay", "1ms"],
                       capture_output=True, text=True)
    if p.returncode != 0:
        return p.stderr.strip().splitlines()[0]
    subprocess.run(["tc", "qdisc", "del", "dev", dev, "root"], capture_output=True)
    return None


def _rtt_ms(s: socket.socket) -> float:
    t = time.monotonic_ns()
    s.sendall(b"x")
    assert s.recv(1) == b"x"
    return (time.monotonic_ns() - t) / 1e6


def test_latency_window_measured(net):
    why = _netem_in_kernel(net.dev)
    if why is not None:
        pytest.skip(f"this kernel has no sch_netem (CONFIG_NET_SCH_NETEM): tc says {why!r}")
    faults = parse_faults(["500ms-1500ms:latency=50ms"])
    rows = []
    with Netem(faults, net.ip, net.port) as n, \
            socket.create_connection((net.ip, net.port), timeout=5) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        t0 = time.monotonic_ns()
        n.schedule(t0)
        while (sent := time.monotonic_ns() - t0) < 2_000_000_000:
            rows.append((sent / 1e9, _rtt_ms(s)))
            time.sleep(0.005)
    inside = [r for t, r in rows if 0.52 <= t < 1.48]  # tc takes a few ms to apply a change
    outside = [r for t, r in rows if t < 0.49 or t >= 1.6]
    print(f"netem latency 50ms: p50 {statistics.median(inside):.2f} ms inside,"
          f" {statistics.median(outside):.2f} ms outside")
    assert 50 <= statistics.median(inside) <= 60
    assert statistics.median(outside) < 5
    assert not _ours_left(net.dev)


def test_removed_after_an_exception(net):
    with pytest.raises(RuntimeError, match="boom"), \
            Netem(parse_faults(["0s-10s:bandwidth=1MB"]), net.ip, net.port) as n:
        n.schedule(time.monotonic_ns())
        assert _ours_left(net.dev)
        raise RuntimeError("boom")
    assert not _ours_left(net.dev)


# A run's parent, reduced to what matters here: netem installed, a window active, then waiting.
_CONTROLLER = """
import sys, time
from fastload.faults.netem import Netem
from fastload.faults.spec import parse_faults
with Netem(parse_faults(["0s-60s:bandwidth=1MB"]), sys.argv[1], int(sys.argv[2])) as n:
    n.schedule(time.monotonic_ns())
    while not n.applied:
        time.sleep(0.005)
    print("applied", flush=True)
    time.sleep(60)
"""


def _controller(net: Net) -> subprocess.Popen[str]:
    p = subprocess.Popen([sys.executable, "-c", _CONTROLLER, net.ip, str(net.port)],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert p.stdout is not None and p.stdout.readline() == "applied\n"
    assert _ours_left(net.dev)
    return p


def test_removed_after_sigint(net):
    p = _controller(net)
    p.send_signal(signal.SIGINT)  # Ctrl-C: KeyboardInterrupt unwinds through remove()
    p.wait(timeout=20)
    p.stdout.close()  # type: ignore[union-attr]
    assert not _ours_left(net.dev)


def test_stale_qdisc_of_a_killed_run_removed_at_the_next_start(net):
    p = _controller(net)
    p.kill()  # SIGKILL: nothing runs, the qdisc stays
    p.wait(timeout=20)
    p.stdout.close()  # type: ignore[union-attr]
    assert _ours_left(net.dev)
    n = Netem(parse_faults(["0s-1s:bandwidth=1MB"]), net.ip, net.port)
    warnings = n.install()
    try:
        assert len(warnings) == 1 and "removed a fastload qdisc" in warnings[0]
        assert net.dev in warnings[0]
    finally:
        n.remove()
    assert not _ours_left(net.dev)


def test_a_foreign_root_qdisc_is_left_alone(net):
    subprocess.run(["tc", "qdisc", "add", "dev", net.dev, "root", "handle", "1:", "htb"],
                   check=True)
    with pytest.raises(UsageError, match=r"root qdisc \(htb 1:\) that fastload did not install"):
        Netem(parse_faults(["0s-1s:bandwidth=1MB"]), net.ip, net.port).install()
    out = subprocess.run(["tc", "qdisc", "show", "dev", net.dev], capture_output=True,
                         text=True).stdout
    assert "htb 1: root" in out


def test_bad_input_is_one_line_before_any_change(net):
    with pytest.raises(UsageError, match="reset needs --fault-via proxy"):
        Netem(parse_faults(["0s-1s:reset"]), net.ip, net.port)
    with pytest.raises(UsageError, match="--fault-dev nosuch0: no such network device"):
        Netem(parse_faults(["0s-1s:bandwidth=1MB"]), net.ip, net.port, dev="nosuch0").install()
    assert not _ours_left(net.dev)


def test_netem_needs_root():
    """With the effective uid of nobody (set after the imports: this interpreter is in root's
    home), a one-line UsageError; nothing is changed."""
    code = ("import os\n"
            "from fastload.errors import UsageError\n"
            "from fastload.faults.netem import Netem\n"
            "from fastload.faults.spec import parse_faults\n"
            "os.seteuid(65534)\n"
            "try:\n"
            "    Netem(parse_faults(['0s-1s:latency=1ms']), '127.0.0.1', 80).install()\n"
            "except UsageError as e:\n"
            "    print(e)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert p.stdout == ("--fault-via netem needs root (tc changes the network device's queueing);"
                        " run as root or use --fault-via proxy\n")


def test_a_kernel_without_netem_is_one_line_before_any_traffic(net):
    """The other side of test_latency_window_measured: where sch_netem is missing, install()
    says so in one line and leaves nothing behind."""
    if _netem_in_kernel(net.dev) is None:
        pytest.skip("this kernel has sch_netem")
    with pytest.raises(UsageError) as e:
        Netem(parse_faults(["1s-2s:latency=50ms"]), net.ip, net.port).install()
    assert str(e.value).startswith("--fault-via netem: this kernel cannot run the netem qdisc")
    assert "\n" not in str(e.value) and "use --fault-via proxy" in str(e.value)
    assert not _ours_left(net.dev)

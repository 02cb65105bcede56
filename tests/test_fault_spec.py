"""--fault and --fault-proxy as users type them: parsed into FaultSpec/ProxySpec, and every
mistake one line (UsageError) before any traffic."""

from __future__ import annotations

import subprocess
import sys

import pytest

from fastload.errors import UsageError
from fastload.faults.spec import (
    FaultSpec,
    ProxySpec,
    check_mechanism,
    check_overlaps,
    check_protocol,
    check_run_end,
    check_targets,
    parse_fault,
    parse_fault_proxies,
    parse_fault_proxy,
    parse_faults,
    validate,
)

MS = 1_000_000
S = 1_000_000_000


def test_the_issue_examples():
    a, b, c, d = parse_faults(["10s-20s:latency=200ms,jitter=50ms", "5s-8s:reset,p=0.5",
                               "30s-40s@redis:blackhole", "10s-15s:http_status=503,p=0.2"])
    assert a == FaultSpec(name="fault1", start_ns=10 * S, end_ns=20 * S, target=None,
                          kind="latency", spec="10s-20s:latency=200ms,jitter=50ms",
                          latency_ns=200 * MS, jitter_ns=50 * MS, explicit=frozenset({"jitter"}))
    assert a.direction == "down"  # server -> client, toxiproxy's default
    assert (b.name, b.kind, b.p, b.start_ns, b.end_ns) == ("fault2", "reset", 0.5, 5 * S, 8 * S)
    assert (c.name, c.target, c.kind) == ("fault3", "redis", "blackhole")
    assert (d.name, d.kind, d.status, d.p) == ("fault4", "http_status", 503, 0.2)


@pytest.mark.parametrize("text, fields", [
    ("0s-1.5s:latency=100ms,dir=both,name=slow", dict(name="slow", start_ns=0, end_ns=1500 * MS,
                                                      latency_ns=100 * MS, direction="both")),
    ("1s-2s:bandwidth=100KB", dict(bytes_per_s=100_000)),
    ("1s-2s:bandwidth=64KiB/s,dir=up", dict(bytes_per_s=65_536, direction="up")),
    ("1s-2s:loss=5%", dict(loss=0.05)),
    ("1s-2s:down,p=20%", dict(kind="down", p=0.2)),
    ("500ms-2s@db.1:reset", dict(start_ns=500 * MS, target="db.1")),
])
def test_fields(text, fields):
    f = parse_fault(text, 1)
    for k, v in fields.items():
        assert getattr(f, k) == pytest.approx(v) if isinstance(v, float) else getattr(f, k) == v


@pytest.mark.parametrize("text, message", [
    ("10s-20s", "expected START-END[@TARGET]:KIND"),
    ("10s:latency=1ms", "is not START-END"),
    ("x-20s:reset", "not a duration"),
    ("20s-10s:reset", "ends (10s) before it starts (20s)"),
    ("1s-2s:jam", "unknown kind 'jam'"),
    ("1s-2s:latency", "latency needs a value"),
    ("1s-2s:reset=1", "reset takes no value"),
    ("1s-2s:latency=10ms,jitter=20ms", "jitter is larger than the latency"),
    ("1s-2s:latency=10ms,colour=red", "unknown parameter 'colour' for latency"),
    ("1s-2s:reset,jitter=1ms", "unknown parameter 'jitter' for reset"),
    ("1s-2s:latency=10ms,dir=sideways", "dir 'sideways' must be down, up or both"),
    ("1s-2s:reset,p=1.5", "must be in (0, 1]"),
    ("1s-2s:reset,p=0", "must be in (0, 1]"),
    ("1s-2s:reset,p=half", "not a probability"),
    ("1s-2s:reset,p=0.1,p=0.2", "p is given twice"),
    ("1s-2s:reset,p", "'p' is not PARAM=VALUE"),
    ("1s-2s:http_status=99", "not a final status code 200-599"),
    ("1s-2s:http_status=600", "not a final status code 200-599"),
    ("1s-2s:bandwidth=fast", "not a size"),
    ("1s-2s:loss=2", "must be in (0, 1]"),
    ("1s-2s@:reset", "'@' is not a proxy name"),
    ("1s-2s:reset,name=baseline", "not baseline or recovery-*"),
    ("1s-2s:reset,name=recovery-x", "not baseline or recovery-*"),
])
def test_bad_fault_is_one_line(text, message):
    with pytest.raises(UsageError) as e:
        parse_fault(text, 1)
    assert message in str(e.value)
    assert "\n" not in str(e.value)
    assert str(e.value).startswith(f"--fault {text!r}")


def test_names_are_unique():
    with pytest.raises(UsageError, match="the name 'fault2' is taken"):
        parse_faults(["1s-2s:reset,name=fault2", "3s-4s:reset"])


def test_fault_proxy():
    assert parse_fault_proxy("redis=127.0.0.1:16379=127.0.0.1:6379") == ProxySpec(
        "redis", "127.0.0.1", 16379, "127.0.0.1", 6379)
    v6 = parse_fault_proxy("api=[::1]:8081=[2001:db8::5]:80")
    assert (v6.listen_host, v6.listen_port, v6.upstream_host) == ("::1", 8081, "2001:db8::5")
    assert (v6.listen, v6.upstream) == ("[::1]:8081", "[2001:db8::5]:80")
    assert parse_fault_proxy("db=localhost:1=db.internal:5432").upstream_host == "db.internal"


@pytest.mark.parametrize("text, message", [
    ("redis=127.0.0.1:16379", "expected NAME=LISTEN=UPSTREAM"),
    ("r edis=127.0.0.1:1=127.0.0.1:2", "is not a name"),
    ("r=127.0.0.1=127.0.0.1:2", "LISTEN '127.0.0.1' is not HOST:PORT"),
    ("r=127.0.0.1:0=127.0.0.1:2", "the port must be 1-65535"),
    ("r=::1:80=127.0.0.1:2", "is not HOST:PORT (IPv6 as [::1]:PORT)"),
    ("r=[1::2::3]:80=127.0.0.1:2", "is not an IPv6 address"),
    ("r=127.0.0.1:2=127.0.0.1:2", "the same address"),
])
def test_bad_fault_proxy_is_one_line(text, message):
    with pytest.raises(UsageError) as e:
        parse_fault_proxy(text)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_fault_proxies_unique():
    with pytest.raises(UsageError, match="'a' is given twice"):
        parse_fault_proxies(["a=127.0.0.1:1=127.0.0.1:2", "a=127.0.0.1:3=127.0.0.1:2"])
    with pytest.raises(UsageError, match="127.0.0.1:1 is the LISTEN of two proxies"):
        parse_fault_proxies(["a=127.0.0.1:1=127.0.0.1:2", "b=127.0.0.1:1=127.0.0.1:3"])


def test_overlaps_on_one_target_only():
    check_overlaps(parse_faults(["1s-2s:reset", "2s-3s:latency=1ms"]))  # touching is fine
    check_overlaps(parse_faults(["1s-3s:reset", "2s-4s@db:reset"]))  # other targets
    with pytest.raises(UsageError, match=r"fault1 .* and fault2 .* overlap on the URL"):
        check_overlaps(parse_faults(["1s-3s:reset", "2s-4s:latency=1ms"]))
    with pytest.raises(UsageError, match="overlap on @db"):
        check_overlaps(parse_faults(["5s-6s@db:reset", "1s-10s@db:down"]))


def test_targets_need_their_proxy():
    proxies = parse_fault_proxies(["redis=127.0.0.1:16379=127.0.0.1:6379"])
    check_targets(parse_faults(["1s-2s@redis:reset", "1s-2s:reset"]), proxies)
    with pytest.raises(UsageError, match=r"no --fault-proxy named 'db' \(proxies: redis\)"):
        check_targets(parse_faults(["1s-2s@db:reset"]), proxies)


def test_mechanism():
    netem_ok = parse_faults(["1s-2s:latency=10ms,jitter=1ms", "2s-3s:loss=0.1",
                             "3s-4s:bandwidth=1MB"])
    check_mechanism(netem_ok, "netem")
    for text, message in [("1s-2s:reset", "reset needs --fault-via proxy"),
                          ("1s-2s:http_status=503", "http_status needs --fault-via proxy"),
                          ("1s-2s:latency=1ms,p=0.5", "p needs --fault-via proxy"),
                          ("1s-2s:latency=1ms,dir=up", "dir needs --fault-via proxy"),
                          ("1s-2s@db:latency=1ms", "@db is a --fault-proxy")]:
        with pytest.raises(UsageError, match=message):
            check_mechanism(parse_faults([text]), "netem")
    with pytest.raises(UsageError, match="loss needs --fault-via netem"):
        check_mechanism(parse_faults(["1s-2s:loss=0.1"]), "proxy")
    with pytest.raises(UsageError, match="must be proxy or netem"):
        check_mechanism((), "iptables")


def test_http_status_needs_http1():
    faults = parse_faults(["1s-2s:http_status=503", "3s-4s@api:http_status=500"])
    check_protocol(faults, "h1")
    with pytest.raises(UsageError, match="http_status needs HTTP/1.1 .* not h2"):
        check_protocol(faults, "h2")
    check_protocol(faults[1:], "h2")  # a named proxy's traffic is not the URL's protocol


def test_window_past_the_run_end():
    faults = parse_faults(["1s-10s:reset"])
    check_run_end(faults, 10 * S)
    with pytest.raises(UsageError, match="ends at 10s, after the run's end at 9.5s"):
        check_run_end(faults, 9500 * MS)


def test_validate_all():
    proxies = parse_fault_proxies(["db=127.0.0.1:1=127.0.0.1:2"])
    validate(parse_faults(["1s-2s:reset", "1s-2s@db:latency=5ms"]), proxies, via="proxy",
             protocol="h1", run_end_ns=2 * S)


def test_proxy_program_refuses_bad_input_in_one_line():
    p = subprocess.run([sys.executable, "-m", "fastload.faults.proxy", "--fault-proxy",
                        "a=127.0.0.1:1=127.0.0.1:2", "--fault", "1s-2s:jam"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2
    assert p.stderr.strip().count("\n") == 0 and "unknown kind 'jam'" in p.stderr

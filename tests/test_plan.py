"""Validation of user input: every mistake is a UsageError naming the problem."""

import os

import pytest

from fastload.config.options import RunOptions
from fastload.config.plan import (
    build_plan,
    check_load_shape,
    check_outputs,
    check_placement,
    check_target,
    check_workload,
)
from fastload.config.syntax import parse_target
from fastload.errors import UsageError
from fastload.units import parse_count, parse_cpu_list, parse_duration_ns


@pytest.mark.parametrize(
    "text,ns",
    [("500ms", 500_000_000), ("10s", 10_000_000_000), ("2m", 120_000_000_000), ("1.5s", 1_500_000_000),
     ("250us", 250_000), ("3", 3_000_000_000), ("1h", 3_600_000_000_000)],
)
def test_durations(text, ns):
    assert parse_duration_ns(text) == ns


@pytest.mark.parametrize("text", ["", "ten", "5 parsecs", "-1s", "0s", "1..2s", "ms"])
def test_bad_durations(text):
    with pytest.raises(UsageError, match="duration|greater than zero"):
        parse_duration_ns(text, "--duration")


def test_counts_and_cpus():
    assert parse_count("10k") == 10_000
    assert parse_count("2M") == 2_000_000
    assert parse_cpu_list("0,2-4,7") == [0, 2, 3, 4, 7]
    for bad in ("1.5k5", "x", "0"):
        with pytest.raises(UsageError):
            parse_count(bad, "-n")
    for bad in ("a", "3-1", "1,,2"):
        with pytest.raises(UsageError):
            parse_cpu_list(bad)


def test_target_parsing():
    t = parse_target("http://127.0.0.1:8080/a?b=1")
    assert (t.host, t.port, t.path, t.authority) == ("127.0.0.1", 8080, "/a?b=1", "127.0.0.1:8080")
    t = parse_target("https://[::1]/")
    assert (t.host, t.port, t.authority, t.tls) == ("::1", 443, "[::1]", True)


@pytest.mark.parametrize(
    "url,needle",
    [("ftp://x/", "scheme"), ("127.0.0.1:80", "scheme"), ("http:///x", "missing host"),
     ("http://h:99999/", "(?i)port"), ("http://bad_host!/", "invalid host"), ("http://a b/", "spaces")],
)
def test_bad_urls(url, needle):
    with pytest.raises(UsageError, match=needle):
        parse_target(url)


def test_plan_defaults_and_split():
    plan = build_plan("http://127.0.0.1:1/", connections="5", requests="11", workers="2", cpus="0")
    assert plan.workers == 2
    assert [plan.worker_connections(i) for i in range(2)] == [3, 2]
    assert [plan.worker_requests(i) for i in range(2)] == [6, 5]
    assert plan.duration_ns is None and plan.protocol == "h1" and plan.streams == 1
    h2 = build_plan("http://127.0.0.1:1/", h2c=True)
    assert (h2.protocol, h2.streams, h2.duration_ns) == ("h2", 10, 10_000_000_000)


@pytest.mark.parametrize(
    "kwargs,needle",
    [({"duration": "1s", "requests": "5"}, "exclusive"),
     ({"headers": ["NoColon"]}, "Name: value"),
     ({"headers": ["Bad Name: v"]}, "invalid header name"),
     ({"body": "x", "body_file": "/nonexistent"}, "exclusive"),
     ({"body_file": "/nonexistent/file"}, "cannot read"),
     ({"cpus": "4096"}, "not available"),
     ({"h2c": True, "protocol": "h1"}, "conflicts"),
     ({"pipeline": "2", "protocol": "h2"}, "pipeline"),
     ({"method": "GE T"}, "method"),
     ({"timeout": "0"}, "greater than zero")],
)
def test_bad_plans(kwargs, needle):
    with pytest.raises(UsageError, match=needle):
        build_plan("http://127.0.0.1:1/", **kwargs)


def test_workers_never_exceed_connections():
    n = len(os.sched_getaffinity(0))
    plan = build_plan("http://127.0.0.1:1/", connections="1", workers=str(max(n, 2)))
    assert plan.workers == 1


# Each concern of plan_from() is a validator of its own, usable alone.

def test_check_target_settles_protocol_and_grpc_framing():
    t = check_target(RunOptions("http://127.0.0.1:1/x", protocol="h2"))
    assert (t.protocol, t.h2c, t.target.path) == ("h2", True, "/x")
    g = check_target(RunOptions("http://127.0.0.1:1/", grpc_method="pkg.Svc/Call"))
    assert (g.grpc, g.protocol, g.method, g.target.path) == (True, "h2", "POST", "/pkg.Svc/Call")
    assert g.body == b"\0\0\0\0\0"  # an empty message, framed
    with pytest.raises(UsageError, match="needs an https:// URL"):
        check_target(RunOptions("http://127.0.0.1:1/", protocol="h3"))
    with pytest.raises(UsageError, match="--ca applies to https://"):
        check_target(RunOptions("http://127.0.0.1:1/", ca="/etc/hostname"))


def test_check_load_shape_turns_a_rate_into_one_stage():
    t = check_target(RunOptions("http://127.0.0.1:1/"))
    s = check_load_shape(RunOptions("http://127.0.0.1:1/", rate="2k", duration="3s"), t)
    assert s.stages == ((3_000_000_000, 2000.0, 2000.0),) and s.duration_ns == 3_000_000_000
    s = check_load_shape(RunOptions("http://127.0.0.1:1/", stages="1s:10,2s:0"), t)
    assert s.duration_ns == 3_000_000_000 and s.stages[1] == (2_000_000_000, 10.0, 0.0)
    with pytest.raises(UsageError, match="--arrival poisson needs"):
        check_load_shape(RunOptions("http://127.0.0.1:1/", arrival="poisson"), t)


def test_check_workload_builds_the_one_request_or_a_mix(tmp_path):
    o = RunOptions("http://127.0.0.1:1/a", method="post", headers=["X-A: 1"], body="hi")
    t = check_target(o)
    w = check_workload(o, t, check_load_shape(o, t))
    assert (w.method, w.headers, w.body, w.mix) == ("POST", (("X-A", "1"),), b"hi", None)
    trace = tmp_path / "t.jsonl"
    trace.write_text('{"offset": 0, "path": "/a"}\n{"offset": 2, "path": "/b"}\n')
    o = RunOptions("http://127.0.0.1:1/", replay=str(trace), timeout="1s")
    t = check_target(o)
    w = check_workload(o, t, check_load_shape(o, t))
    assert w.mix is not None and w.mix.replay and w.duration_ns == 2_000_000_000 + 1_000_000_000 + 1_000_000_000


def test_check_placement_caps_workers_by_connections_requests_and_trace():
    cpus = sorted(os.sched_getaffinity(0))
    o = RunOptions("http://127.0.0.1:1/", connections=3, requests=2, workers=8)
    t = check_target(o)
    shape = check_load_shape(o, t)
    p = check_placement(o, shape, check_workload(o, t, shape))
    assert p.workers == 2 and len(p.cpus) == 2 and all(c in cpus for g in p.cpus for c in g)
    with pytest.raises(UsageError, match="--avoid-cpus"):
        check_placement(RunOptions("http://127.0.0.1:1/", avoid_cpus="x"), shape,
                        check_workload(o, t, shape))


def test_check_outputs_refuses_unwritable_files_before_the_run(tmp_path):
    assert check_outputs(RunOptions("http://127.0.0.1:1/", tags=["a=1"])).tags == (("a", "1"),)
    for field in ("json_path", "hdr_log"):
        with pytest.raises(UsageError, match="cannot write"):
            check_outputs(RunOptions("http://127.0.0.1:1/", **{field: "/nonexistent/dir/x"}))


def test_run_options_name_an_unknown_option():
    with pytest.raises(UsageError, match="unknown option: conections"):
        RunOptions.build("http://127.0.0.1:1/", conections=3)
    o = RunOptions.build("http://127.0.0.1:1/", headers={"A": "b"}, tags={"k": "v"}, slo="p99<1s")
    assert (o.headers, o.tags, o.slo) == (["A: b"], ["k=v"], ["p99<1s"])

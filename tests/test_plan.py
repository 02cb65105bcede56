"""Validation of user input: every mistake is a UsageError naming the problem."""

import os

import pytest

from fastload.config.plan import build_plan, parse_target
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

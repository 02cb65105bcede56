"""Response checks: the Python checker on raw responses, the flags' validation, and end to end
against nginx (sampled and full checking, check_failed errors, the `checks` SLO)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from fastload import errors
from fastload.errors import UsageError
from fastload.results import slo
from fastload.workload import checks

RUN_TIMEOUT_S = 120


def fastload(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fastload", *args], capture_output=True, text=True,
                          timeout=RUN_TIMEOUT_S)


def run_json(*args: str, code: int = 0) -> dict:
    p = fastload("run", *args, "--json", "-", "--quiet")
    assert p.returncode == code, p.stderr
    return json.loads(p.stdout)


JSON_BODY = b'{"status":"ok","data":{"items":[{"id":5},{"id":"6"}],"flag":true}}'
JSON_RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                 + str(len(JSON_BODY)).encode() + b"\r\n\r\n" + JSON_BODY)


def failures(spec: checks.CheckSpec, raw: bytes = JSON_RESPONSE, status: int = 200,
             body_len: int | None = None) -> list[str]:
    return checks.Checker(spec).failures(status, raw, len(JSON_BODY) if body_len is None else body_len)


def test_status_set_and_classes():
    spec = checks.from_flags("2xx,404", (), (), (), None)
    assert failures(spec, status=204) == []
    assert failures(spec, status=404) == []
    assert failures(spec, status=500) == ["status"]
    assert spec.describe()["status"] == ["2xx", "404"]


def test_body_contains_and_regex():
    spec = checks.from_flags(None, ["\"ok\""], [r'"id":\s*5\b'], (), None)
    assert failures(spec) == []
    spec = checks.from_flags(None, ["missing"], [r"^nope"], (), None)
    assert failures(spec) == ["body_contains:missing", "body_regex:^nope"]


@pytest.mark.parametrize("expr,ok", [
    ("status=ok", True), ('status="ok"', True), ("data.items.0.id=5", True),
    ("data.items.1.id=6", False),  # "6" (a string) is not 6
    ("data.items.1.id=\"6\"", True), ("data.items.-1.id=\"6\"", True), ("data.items.2.id=5", False),
    ("data.flag=true", True), ("data.flag=1", False),  # JSON true is not 1
    ("data.missing=null", False), ("status.deeper=ok", False),
])
def test_json_dotted_path(expr, ok):
    spec = checks.from_flags(None, (), (), [expr], None)
    assert (failures(spec) == []) is ok


def test_json_check_on_a_non_json_body_fails():
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
    assert failures(checks.from_flags(None, (), (), ["a=1"], None), raw) == ["json:a"]


def test_max_body_uses_the_full_length_not_the_capture():
    spec = checks.from_flags(None, (), (), (), "10")
    assert failures(spec, body_len=10) == []
    assert failures(spec, body_len=11) == ["max_body"]


def test_chunked_body_is_decoded():
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    assert checks.split_response(raw)[1] == b"hello world"
    assert failures(checks.from_flags(None, ["hello world"], (), (), None), raw) == []


def test_runner_counts_per_variant_and_check():
    r = checks.CheckRunner([checks.from_flags("200", ["x"], (), (), None), checks.CheckSpec()])
    assert r(0, 500, JSON_RESPONSE, 10) is False
    assert r(0, 200, JSON_RESPONSE + b"x", 10) is True
    assert r(1, 500, b"", 0) is True  # no checks for variant 1
    assert (r.checked, r.failed, r.by_check) == ([2, 0], [1, 0], [{"status": 1, "body_contains:x": 1}, {}])


@pytest.mark.parametrize("kwargs,message", [
    ({"status": "2zz"}, "not a status code"),
    ({"status": "99"}, "not a status code"),
    ({"regex": ["("]}, "invalid regular expression"),
    ({"json_eq": ["noequals"]}, "not PATH=VALUE"),
    ({"json_eq": ["a..b=1"]}, "not PATH=VALUE"),
    ({"contains": [""]}, "empty"),
    ({"max_body": "lots"}, "--check-max-body"),
])
def test_bad_check_flags(kwargs, message):
    args = {"status": None, "contains": (), "regex": (), "json_eq": (), "max_body": None, **kwargs}
    with pytest.raises(UsageError, match=message):
        checks.from_flags(**args)


@pytest.mark.parametrize("value,expected", [("0.01", 0.01), ("1%", 0.01), ("1", 1.0), (None, 1.0)])
def test_sample_parsing(value, expected):
    assert checks.parse_sample(value) == pytest.approx(expected)


@pytest.mark.parametrize("value", ["0", "1.5", "-1", "abc", "200%"])
def test_bad_sample(value):
    with pytest.raises(UsageError, match="--check-sample"):
        checks.parse_sample(value)


def test_checks_slo_metric():
    doc = {"requests": 1000, "errors": {"total": 3, "check_failed": 3},
           "checks": {"checked": 200, "failed": 3}}
    assert slo.parse("checks<1.6%").check(doc)["passed"]
    assert not slo.parse("checks<1.4%").check(doc)["passed"]
    assert slo.parse("checks==3").value_of(doc) == 3
    assert slo.parse("errors_check_failed==3").check(doc)["passed"]
    # A failed check is a response: it is one attempt, not two.
    assert slo.parse("errors<1%").value_of(doc) == pytest.approx(0.3)
    assert slo.parse("checks<1%").value_of({"requests": 5}) is None


# --- end to end


def test_all_responses_checked_and_passing(nginx_h1):
    doc = run_json(f"{nginx_h1.url}json", "-n", "1000", "-c", "4", "-w", "2", "--check-status", "200",
                   "--check-body-contains", "items", "--check-json", "data.items.0.id=5",
                   "--check-max-body", "100", "--check-body-regex", r'"status":"ok"',
                   "--slo", "checks<0.1%")
    assert doc["checks"]["checked"] == 1000 and doc["checks"]["failed"] == 0
    assert doc["errors"]["check_failed"] == 0 and doc["passed"]
    assert doc["checks"]["sample"] == 1.0


def test_failing_checks_are_check_failed_errors_and_fail_the_slo(nginx_h1):
    doc = run_json(f"{nginx_h1.url}json", "-n", "500", "-c", "2", "-w", "1", "--check-json",
                   "data.items.0.id=6", "--check-max-body", "10", "--slo", "checks<0.1%", code=1)
    c = doc["checks"]
    assert c["checked"] == 500 and c["failed"] == 500
    assert c["by_check"] == {"json:data.items.0.id": 500, "max_body": 500}
    assert doc["errors"]["check_failed"] == 500 and doc["errors"]["total"] == 500
    assert doc["requests"] == 500  # the responses arrived: they count, and also fail
    assert doc["slo"][0]["value"] == 100.0 and not doc["passed"]
    (only,) = doc["by_request"].values()
    assert only["errors"]["check_failed"] == 500 and only["checks"]["failed"] == 500


def test_sampled_checks_cover_the_sample_fraction(nginx_h1):
    n, p = 6000, 0.05
    doc = run_json(f"{nginx_h1.url}status/404", "-n", str(n), "-c", "4", "-w", "2",
                   "--check-status", "200", "--check-sample", "5%")
    checked = doc["checks"]["checked"]
    assert abs(checked - n * p) < 5 * math.sqrt(n * p * (1 - p))
    # Every sampled 404 fails the status check, and only those count as errors.
    assert doc["checks"]["failed"] == checked == doc["errors"]["check_failed"]
    assert doc["status_codes"] == {"404": n}


def test_scenario_checks_per_request(nginx_h1, tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("""\
checks: {status: [200]}
requests:
  - {name: ok, path: /chk/ok, weight: 1, checks: {body_contains: hello}}
  - {name: gone, path: /status/404, weight: 1, checks: {status: 404, body_regex: 'not f.und'}}
  - {name: bad, path: /status/500, weight: 1}
""")
    doc = run_json(nginx_h1.url, "--scenario", str(path), "-n", "900", "-c", "3", "-w", "1")
    by = doc["by_request"]
    assert by["ok"]["checks"]["failed"] == 0 and by["gone"]["checks"]["failed"] == 0
    assert by["bad"]["checks"]["failed"] == by["bad"]["requests"] > 0
    assert by["bad"]["checks"]["by_check"] == {"status": by["bad"]["requests"]}
    assert doc["checks"]["checked"] == 900
    assert doc["errors"]["check_failed"] == by["bad"]["requests"]


def test_checks_slo_without_checks_is_rejected():
    p = fastload("run", "http://127.0.0.1:9/", "--slo", "checks<1%", "-n", "1")
    assert p.returncode == 2 and "no response checks" in p.stderr


@pytest.mark.parametrize("args,message", [
    (["--check-body-regex", "(["], "invalid regular expression"),
    (["--check-json", "a.b"], "not PATH=VALUE"),
    (["--check-status", "abc"], "not a status code"),
    (["--check-sample", "0.5"], "no checks to sample"),
])
def test_bad_check_flags_exit_2_before_traffic(args, message):
    p = fastload("run", "http://127.0.0.1:9/", "-n", "1", *args)
    assert p.returncode == 2, p.stderr
    line, = p.stderr.strip().splitlines()
    assert message in line


@pytest.fixture(scope="module")
def big_body_server():
    from support import peers

    peer = peers.fastload_server(body_size=100_000)
    try:
        yield peer
    finally:
        peer.stop()


@pytest.mark.parametrize("proto", [[], ["--h2c"]])
def test_large_bodies_are_checked_whole(big_body_server, proto):
    # 100 kB: several reads over HTTP/1.1, several DATA frames over HTTP/2; the end of the
    # body must be in the capture, and max_body sees the full length.
    doc = run_json(big_body_server.url, *proto, "-n", "200", "-c", "2", "-w", "1",
                   "--check-body-regex", r"^x+\n$", "--check-max-body", "100000")
    assert doc["checks"]["checked"] == 200 and doc["checks"]["failed"] == 0
    doc = run_json(big_body_server.url, *proto, "-n", "200", "-c", "2", "-w", "1",
                   "--check-max-body", "99999", "--check-sample", "0.5")
    c = doc["checks"]
    assert c["failed"] == c["checked"] > 50 and c["by_check"] == {"max_body": c["checked"]}


def test_a_check_that_raises_is_a_check_error():
    # json.loads gives up on nesting deeper than the recursion limit: the check cannot judge
    # the response, which is the check's defect (counted apart), not a failed response.
    spec = checks.from_flags(None, (), (), ["a=1"], None)
    deep = b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + b"[" * 5000
    runner = checks.CheckRunner([spec])
    with pytest.raises(RecursionError):
        runner(0, 200, deep, 5000)
    assert runner.checked == [1] and runner.failed == [0]


@pytest.mark.parametrize("proto", [[], ["--h2c"]])
def test_check_errors_are_counted_apart_and_reported(nginx_h1, nginx_h2c, proto):
    url = (nginx_h2c if proto else nginx_h1).url + "deep-json"
    p = fastload("run", url, *proto, "-n", "200", "-c", "2", "-w", "1", "--check-json", "a=1",
                 "--json", "-", "--quiet", "--debug")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["requests"] == 200
    assert doc["errors"]["check_error"] == 200 == doc["errors"]["total"]
    assert doc["errors"]["check_failed"] == 0
    assert doc["checks"]["checked"] == 200 and doc["checks"]["failed"] == 0
    assert list(doc["errors"])[-2:] == ["check_failed", "check_error"]
    assert errors.attempts(doc) == 200
    (warning,) = [w for w in doc["warnings"] if "check raised" in w]
    assert warning.startswith("a response check raised RecursionError: ")
    assert warning.endswith("(200 responses, counted as errors.check_error)")
    # --debug: the check's traceback, on stderr.
    assert "Traceback (most recent call last)" in p.stderr and "RecursionError" in p.stderr


def test_h2c_checks_against_nginx(nginx_h2c):
    doc = run_json(f"{nginx_h2c.url}json", "--h2c", "-n", "1000", "-c", "2", "-m", "16", "-w", "1",
                   "--check-json", "data.items.0.id=5", "--check-body-contains", "ok")
    assert doc["checks"]["checked"] == 1000 and doc["checks"]["failed"] == 0
    doc = run_json(f"{nginx_h2c.url}json", "--h2c", "-n", "1000", "-c", "2", "-m", "16", "-w", "1",
                   "--check-json", "data.items.0.id=6", "--slo", "checks<0.1%", code=1)
    assert doc["checks"]["failed"] == 1000 == doc["errors"]["check_failed"]


def test_scenario_checks_over_tls_alpn_h2(nghttpd_tls, tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("- {path: /, weight: 3, checks: {status: 2xx}}\n- {path: /nope, weight: 1, checks: {status: 200}}\n")
    doc = run_json(nghttpd_tls.url, "--ca", str(nghttpd_tls.cert_path), "--scenario", str(path),
                   "-n", "800", "-c", "2", "-w", "1")
    assert doc["target"]["protocol"] == "h2"
    by = doc["by_request"]
    assert by["GET /"]["checks"]["failed"] == 0
    assert by["GET /nope"]["checks"]["failed"] == by["GET /nope"]["requests"] == doc["errors"]["check_failed"]
    assert by["GET /nope"]["status_codes"] == {"404": by["GET /nope"]["requests"]}

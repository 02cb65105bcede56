"""--replay: trace parsing (JSON lines and CSV), rejection of bad traces, and replays against
nginx: every path the right number of times, sent at the recorded offsets (small schedule lag,
the run lasting the trace's span / speed)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from fastload.errors import UsageError
from fastload.workload.checks import CheckSpec
from fastload.workload.replay import parse_replay
from support.run import fastload, run_json


def trace(n: int = 90, span_s: float = 1.5) -> list[dict]:
    """n requests evenly over span_s: /rp/a three times as often as /rp/c, some PUT bodies."""
    paths = ["/rp/a", "/rp/a", "/rp/a", "/rp/b", "/rp/b", "/rp/c"]
    out = []
    for i in range(n):
        rec: dict = {"offset": round(i * span_s / (n - 1), 6), "path": paths[i % len(paths)]}
        if i % 10 == 9:
            rec = {"offset": rec["offset"], "method": "PUT", "path": "/upload/rp.bin", "size": 100 * i}
        out.append(rec)
    return out


def write_jsonl(tmp_path: Path, records: list[dict], name: str = "t.jsonl") -> str:
    p = tmp_path / name
    p.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(p)


def parse(path: str, speed: float = 1.0):
    return parse_replay(path, speed, "GET", (), CheckSpec(), 1.0)


def test_jsonl_and_csv_give_the_same_mix(tmp_path):
    recs = [{"offset": 0.5, "path": "/b"}, {"offset": 0.0, "path": "/a", "headers": {"X-T": "1"}},
            {"offset": 0.25, "method": "POST", "path": "/a", "body": "hi"},
            {"offset": 0.5, "path": "/a", "headers": {"X-T": "1"}}]
    j = parse(write_jsonl(tmp_path, recs))
    csv_path = tmp_path / "t.csv"
    csv_path.write_text('offset,method,path,body,headers\n0.5,,/b,,\n0,,/a,,"{""X-T"": ""1""}"\n'
                        '0.25,POST,/a,hi,\n500e-3,GET,/a,,"{""X-T"": ""1""}"\n')
    c = parse(str(csv_path))
    assert dataclasses.replace(j, path=None) == dataclasses.replace(c, path=None)
    assert [v.name for v in j.variants] == ["GET /b", "GET /a", "POST /a"]
    assert [v.weight for v in j.variants] == [1.0, 2.0, 1.0]
    # Sorted by offset, ties in file order; identical requests share one entry.
    assert j.offsets_ns == (0, 250_000_000, 500_000_000, 500_000_000)
    names = [j.variants[j.entries[e][0]].name for e in j.schedule]
    assert names == ["GET /a", "POST /a", "GET /b", "GET /a"]
    assert j.schedule[0] == j.schedule[3] and len(j.entries) == 3


def test_speed_scales_offsets_and_offset_ms(tmp_path):
    path = write_jsonl(tmp_path, [{"offset_ms": 1000, "path": "/a"}, {"offset": 3, "path": "/a"}])
    assert parse(path, speed=2).offsets_ns == (500_000_000, 1_500_000_000)


@pytest.mark.parametrize("text,message", [
    ("", "no requests"),
    ('{"path": "/a"}\n', "give offset"),
    ('{"offset": -1, "path": "/a"}\n', "offset -1"),
    ('{"offset": "soon", "path": "/a"}\n', "offset 'soon'"),
    ('{"offset": 0, "path": "a"}\n', "must start with '/'"),
    ('{"offset": 0, "path": "/a", "colour": 1}\n', "unknown field"),
    ('{"offset": 0, "path": "/a", "size": -5}\n', "size -5"),
    ('{"offset": 0, "path": "/a", "size": 5, "body": "x"}\n', "exclusive"),
    ('{"offset": 0, "path": "/a", "method": "G T"}\n', "not a valid HTTP method"),
    ('{"offset": 0, "path": "/a"}\n{nope\n', "line 2: invalid JSON"),
    ("offset,path,colour\n0,/a,red\n", "unknown CSV column"),
    ("offset,path\nsoon,/a\n", "line 2: offset 'soon'"),
    ("offset,path,headers\n0,/a,X-A: 1\n", "headers must be a JSON object"),
])
def test_bad_traces(tmp_path, text, message):
    path = tmp_path / ("t.csv" if text.startswith("offset") else "t.jsonl")
    path.write_text(text)
    with pytest.raises(UsageError, match=message):
        parse(str(path))


@pytest.mark.parametrize("args,message", [
    (["-R", "100"], "--rate does not apply"),
    (["-d", "1s"], "--duration does not apply"),
    (["-n", "5"], "--requests does not apply"),
    (["--replay-speed", "0"], "--replay-speed"),
    (["--replay-speed", "-2"], "--replay-speed"),
    (["--body", "x"], "give bodies in the trace"),
])
def test_bad_replay_options_exit_2(tmp_path, args, message):
    path = write_jsonl(tmp_path, [{"offset": 0, "path": "/a"}])
    p = fastload("run", "http://127.0.0.1:9/", "--replay", path, *args)
    assert p.returncode == 2, p.stderr
    line, = p.stderr.strip().splitlines()
    assert message in line


def test_bad_trace_file_exits_2_before_traffic(nginx_h1, tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"offset": 0, "path": "/rp/x"}\n{"offset": 1, "path": "nope"}\n')
    before = nginx_h1.count_requests()
    p = fastload("run", nginx_h1.url, "--replay", str(path))
    assert p.returncode == 2 and "line 2" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    assert nginx_h1.count_requests() == before


@pytest.mark.parametrize("speed,workers", [(1.0, "1"), (3.0, "2")])
def test_replay_against_nginx(nginx_h1, tmp_path, speed, workers):
    recs = trace(90, 1.5)
    path = write_jsonl(tmp_path, recs)
    counts = {p: sum(1 for r in recs if r["path"] == p) for p in {r["path"] for r in recs}}
    before = {p: nginx_h1.count_requests(p) for p in counts}
    doc = run_json(nginx_h1.url, "--replay", path, "--replay-speed", str(speed), "-c", "4", "-w", workers)
    after = {p: nginx_h1.count_requests(p) for p in counts}
    assert {p: after[p] - before[p] for p in counts} == counts
    assert doc["requests"] == 90 and doc["errors"]["total"] == 0
    by = doc["by_request"]
    assert by["GET /rp/a"]["requests"] == counts["/rp/a"]
    assert by["PUT /upload/rp.bin"]["requests"] == counts["/upload/rp.bin"]
    sizes = sorted(r["size"] for r in recs if "size" in r)
    assert by["PUT /upload/rp.bin"]["body_bytes"]["max"] == sizes[-1]
    assert by["PUT /upload/rp.bin"]["body_bytes"]["min"] == sizes[0]
    # Sent at the recorded offsets: the whole trace was scheduled, none left behind, the
    # schedule lag is small next to the 17 ms between requests, and the run lasted the span.
    span = 1.5 / speed
    assert doc["rate"]["scheduled"] == 90 and doc["rate"]["backlog"] == 0
    assert doc["rate"]["target"] == pytest.approx(90 / span)
    assert doc["schedule_lag_us"]["p50"] < 5_000
    assert span - 0.01 <= doc["duration_s"] < span + 1.0
    assert doc["config"]["scenario"]["replay_speed"] == speed


def test_replay_over_h2c(nginx_h2c, tmp_path):
    recs = trace(60, 0.6)
    path = write_jsonl(tmp_path, recs)
    counts = {p: sum(1 for r in recs if r["path"] == p) for p in {r["path"] for r in recs}}
    before = {p: nginx_h2c.count_requests(p) for p in counts}
    doc = run_json(nginx_h2c.url, "--h2c", "--replay", path, "-c", "2", "-w", "1")
    assert {p: nginx_h2c.count_requests(p) - before[p] for p in counts} == counts
    assert doc["requests"] == 60 and doc["errors"]["total"] == 0
    assert doc["rate"]["scheduled"] == 60 and doc["rate"]["backlog"] == 0


def test_replay_with_checks(nginx_h1, tmp_path):
    path = write_jsonl(tmp_path, [{"offset": i * 0.005, "path": "/status/404" if i % 4 == 0 else "/rp/ok"}
                                  for i in range(40)])
    p = fastload("run", nginx_h1.url, "--replay", path, "--check-status", "200", "--slo", "checks==10",
                 "--json", "-", "--quiet")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["checks"]["checked"] == 40 and doc["errors"]["check_failed"] == 10
    assert doc["by_request"]["GET /status/404"]["checks"]["failed"] == 10

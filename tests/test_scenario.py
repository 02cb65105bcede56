"""--scenario end to end against nginx: the per-variant counts fastload reports are the access
log's per-path counts, the weights hold, generated bodies reach the server, and bad scenario
files are rejected before any traffic."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from support import peers
from support.run import fastload, run_json


def write(tmp_path: Path, text: str, name: str = "scenario.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def log_lines_after(peer, n_before: int) -> list[list[bytes]]:
    """The access log lines (method, uri, status, request_length) written after n_before."""
    peer.count_requests()  # waits until the log settled
    assert peer.access_log is not None
    lines = [ln.split() for ln in peer.access_log.read_bytes().splitlines(keepends=True)
             if ln.endswith(b"\n")]
    return lines[n_before:]


SCENARIO = """\
requests:
  - name: home
    path: /scn/home
    weight: 6
  - name: item
    url: {base}scn/item?id=7
    headers: {{X-Variant: item}}
    weight: 3
  - name: upload
    method: PUT
    path: /upload/scn.bin
    headers: ["Content-Type: application/octet-stream"]
    weight: 1
    body_size: {{dist: mixture, max: 20000, components: [
      {{weight: 0.72, dist: poisson, lambda: 300}},
      {{weight: 0.28, dist: lognormal, mu: 8, sigma: 0.5}}]}}
"""


@pytest.mark.parametrize("pipeline", ["1", "4"])
def test_per_variant_counts_match_the_access_log(nginx_h1, tmp_path, pipeline):
    path = write(tmp_path, SCENARIO.format(base=nginx_h1.url))
    before = nginx_h1.count_requests()
    n = 4000
    doc = run_json(nginx_h1.url, "--scenario", path, "-n", str(n), "-c", "8", "-w", "2",
                   "--pipeline", pipeline)
    lines = log_lines_after(nginx_h1, before)
    assert doc["requests"] == n and len(lines) == n
    by = doc["by_request"]
    assert list(by) == ["home", "item", "upload"]
    logged = {p: sum(1 for ln in lines if ln[1] == p) for p in (b"/scn/home", b"/scn/item", b"/upload/scn.bin")}
    assert by["home"]["requests"] == logged[b"/scn/home"]
    assert by["item"]["requests"] == logged[b"/scn/item"]
    assert by["upload"]["requests"] == logged[b"/upload/scn.bin"]
    assert all(ln[0] == b"PUT" for ln in lines if ln[1] == b"/upload/scn.bin")
    assert sum(v["requests"] for v in by.values()) == n
    for name, w in (("home", 0.6), ("item", 0.3), ("upload", 0.1)):
        assert by[name]["share_expected"] == pytest.approx(w)
        # 5 standard deviations of a binomial share: fails by chance about once in 10^6 runs.
        assert by[name]["share"] == pytest.approx(w, abs=5 * math.sqrt(w * (1 - w) / n))
        codes = by[name]["status_codes"]
        assert sum(codes.values()) == by[name]["requests"] and set(codes) <= {"200", "201", "204"}
        assert by[name]["latency_us"]["p50"] > 0
    # Every byte fastload says it sent reached nginx ($request_length: line, headers, body; the
    # WebDAV PUT location reads whole bodies): the generated bodies were sent, with their sizes.
    assert doc["bytes_out"] == sum(int(ln[3]) for ln in lines)
    up = by["upload"]["body_bytes"]
    assert up["count"] == by["upload"]["requests"] and up["max"] <= 20000
    assert 0 < up["p50"] < 1000 and up["p99"] > 1000  # the Poisson bulk and the lognormal tail
    assert by["home"]["body_bytes"]["max"] == 0
    assert by["upload"]["body_pool"]["count"] == 1024
    cfg = doc["config"]["scenario"]
    assert cfg["requests"]["upload"]["body_size"]["dist"] == "mixture"


def test_same_seed_same_picks_and_sizes(nginx_h1, tmp_path):
    path = write(tmp_path, SCENARIO.format(base=nginx_h1.url))

    def picks(seed: str) -> dict:
        doc = run_json(nginx_h1.url, "--scenario", path, "-n", "600", "-c", "1", "-w", "1", "--seed", seed)
        return {k: (v["requests"], v["body_bytes"]) for k, v in doc["by_request"].items()}

    assert picks("5") == picks("5")
    assert picks("5") != picks("6")


def test_head_and_get_variants_share_connections(nginx_h1, tmp_path):
    # A HEAD response has no body: the parser must know per response which method it answers.
    path = write(tmp_path, json.dumps([{"method": "HEAD", "path": "/scn/head", "weight": 1},
                                       {"path": "/scn/get", "weight": 1}]), "s.json")
    doc = run_json(nginx_h1.url, "--scenario", path, "-n", "2000", "-c", "2", "-w", "1", "--pipeline", "8")
    assert doc["errors"]["total"] == 0
    assert doc["status_codes"] == {"200": 2000}
    assert doc["by_request"]["HEAD /scn/head"]["requests"] + doc["by_request"]["GET /scn/get"]["requests"] == 2000


def test_api_runs_a_scenario(nginx_h1, tmp_path):
    import fastload

    path = write(tmp_path, "- {path: /api/a, weight: 1}\n- {path: /api/b, weight: 1, body: hi, method: PUT}\n")
    r = fastload.run(nginx_h1.url, scenario=path, requests=200, connections=2, workers=1)
    assert r.requests == 200
    assert set(r["by_request"]) == {"GET /api/a", "PUT /api/b"}
    assert r["by_request"]["PUT /api/b"]["body_bytes"]["max"] == 2


BAD = [
    ("requests: [", "invalid YAML"),
    ("[]", "non-empty list of requests"),
    ("{requests: [{path: /a}], extra: 1}", "unknown top-level key"),
    ("- {path: /a, weight: -1}", "weight -1 must be a number >= 0"),
    ("- {path: /a, weight: heavy}", "weight 'heavy'"),
    ("- {path: /a, weight: 0}", "every request has weight 0"),
    ("- {path: a}", "must start with '/'"),
    ("- {url: 'http://example.com/'}", "not on the target's origin"),
    ("- {path: /a, colour: red}", "unknown key(s) colour"),
    ("- {path: /a, method: 'G T'}", "not a valid HTTP method"),
    ("- {path: /a, body: x, body_size: 10}", "body and body_size are exclusive"),
    ("- {path: /a, body_size: {dist: zipf}}", "dist 'zipf' is not one of"),
    ("- {path: /a, body_size: {dist: lognormal, mu: 1}}", "needs mu and sigma"),
    ("- {path: /a, body_file: /nonexistent/x}", "cannot read body_file"),
    ("- {path: /a, pool: 10}", "pool applies to a generated body"),
    ("- {path: /a, checks: {status: '2zz'}}", "not a status code"),
    ("- {path: /a, checks: {body_regex: '('}}", "invalid regular expression"),
    ("- {path: /a, checks: {jsn: {a: 1}}}", "unknown check(s) jsn"),
    ("- {path: /a, headers: {'Bad Name': x}}", "invalid header name"),
    ("- {path: /a, name: x}\n- {path: /b, name: x}", "name 'x' is used twice"),
    ("- {path: /a, body_size: {dist: uniform, min: 0, max: 1000000}, pool: 65536}", "generated bodies total"),
]


@pytest.mark.parametrize("text,message", BAD)
def test_bad_scenarios_exit_2_with_one_line(nginx_h1, tmp_path, text, message):
    path = write(tmp_path, text)
    before = nginx_h1.count_requests()
    p = fastload("run", nginx_h1.url, "--scenario", path, "-n", "10")
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastload: error: "), p.stderr
    assert message in lines[0]
    assert nginx_h1.count_requests() == before  # nothing was sent


@pytest.mark.parametrize("extra,message", [
    (["--body", "x"], "give bodies in the file"),
    (["--replay", "/dev/null"], "exclusive"),
    (["--replay-speed", "2"], "--replay-speed applies to --replay"),
])
def test_conflicting_options_exit_2(tmp_path, extra, message):
    path = write(tmp_path, "- {path: /a}")
    p = fastload("run", f"http://127.0.0.1:{peers.free_port()}/", "--scenario", path, *extra)
    assert p.returncode == 2 and message in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_missing_scenario_file_exits_2(tmp_path):
    p = fastload("run", "http://127.0.0.1:9/", "--scenario", str(tmp_path / "nope.yaml"))
    assert p.returncode == 2 and "cannot read" in p.stderr


H2_SCENARIO = """\
requests:
  - {name: small, path: /h2/small, weight: 5}
  - {name: put, method: PUT, path: /upload/h2.bin, weight: 2, body_size: {dist: uniform, min: 1, max: 3000}}
  # Larger than the 64 KiB initial stream window: the body waits for WINDOW_UPDATEs.
  - {name: big, method: PUT, path: /upload/h2big.bin, weight: 1, body_size: {dist: fixed, bytes: 200000}}
"""


def test_h2c_scenario_counts_match_the_access_log(nginx_h2c, tmp_path):
    path = write(tmp_path, H2_SCENARIO)
    paths = {"small": "/h2/small", "put": "/upload/h2.bin", "big": "/upload/h2big.bin"}
    before = {k: nginx_h2c.count_requests(p) for k, p in paths.items()}
    doc = run_json(nginx_h2c.url, "--h2c", "--scenario", path, "-n", "1600", "-c", "4", "-m", "16", "-w", "2")
    assert doc["requests"] == 1600 and doc["errors"]["total"] == 0
    by = doc["by_request"]
    for k, p in paths.items():
        assert by[k]["requests"] == nginx_h2c.count_requests(p) - before[k]
        assert set(by[k]["status_codes"]) <= {"200", "201", "204"}
    assert by["big"]["body_bytes"]["min"] == by["big"]["body_bytes"]["max"] == 200000
    assert by["big"]["requests"] > 100
    # Every request body went out in full: at least the bodies' bytes were written.
    body_total = sum(v["body_bytes"]["mean"] * v["requests"] for v in by.values())
    assert doc["bytes_out"] > body_total


def test_readme_scenario_example_is_valid(tmp_path):
    from fastload.config.plan import build_plan

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = readme.split("```yaml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "a.bin").write_bytes(b"x" * 10)
    path = write(tmp_path, block)
    plan = build_plan("http://127.0.0.1:8080/", scenario=path, requests=10)
    mix = plan.mix
    assert [v.name for v in mix.variants] == ["home", "item", "prompt", "upload", "ping"]
    assert mix.has_checks and mix.variants[1].checks.json_eq == (("data.id", 42),)
    sizes = [b for v, _, b in mix.entries if v == 2]
    assert len(sizes) == 1024 and max(sizes) <= 32768
    assert dict(mix.variants[0].headers)["Authorization"] == "Bearer t0k3n"
    assert [b for v, _, b in mix.entries if v == 4] == [b'{"hello":"world"}']


def test_merge_combines_by_request_exactly(nginx_h1, tmp_path):
    from hdrh.histogram import HdrHistogram

    path = write(tmp_path, "- {path: /m/a, weight: 2, checks: {status: 200}}\n- {path: /m/b, weight: 1}\n")
    outs = []
    for i in range(2):
        out = tmp_path / f"r{i}.json"
        p = fastload("run", nginx_h1.url, "--scenario", path, "-n", "300", "-c", "2", "-w", "1",
                     "--seed", str(i + 1), "--json", str(out), "--quiet")
        assert p.returncode == 0, p.stderr
        outs.append(json.loads(out.read_text()))
    p = fastload("merge", str(tmp_path / "r0.json"), str(tmp_path / "r1.json"))
    assert p.returncode == 0, p.stderr
    merged = json.loads(p.stdout)
    for name in ("GET /m/a", "GET /m/b"):
        want = sum(d["by_request"][name]["requests"] for d in outs)
        got = merged["by_request"][name]
        assert got["requests"] == want
        assert HdrHistogram.decode(got["histogram"]).get_total_count() == want
    assert merged["checks"]["checked"] == sum(d["checks"]["checked"] for d in outs)
    assert merged["by_request"]["GET /m/a"]["checks"]["failed"] == 0


def test_scenario_in_the_open_model(nginx_h1, tmp_path):
    # -R with a scenario: the schedule decides when, the picker what; -n keeps the count exact.
    path = write(tmp_path, "- {path: /open/a, weight: 1}\n- {path: /open/b, weight: 1}\n")
    before = {p: nginx_h1.count_requests(p) for p in ("/open/a", "/open/b")}
    doc = run_json(nginx_h1.url, "--scenario", path, "-R", "1000", "-n", "600", "-c", "8", "-w", "1")
    assert doc["requests"] == 600 and doc["rate"]["target"] == 1000
    for p in ("/open/a", "/open/b"):
        assert doc["by_request"][f"GET {p}"]["requests"] == nginx_h1.count_requests(p) - before[p]


def test_html_report_shows_the_variants(nginx_h1, tmp_path):
    path = write(tmp_path, "- {name: alpha, path: /html/a, checks: {status: 200}}\n- {name: beta, path: /html/b}\n")
    out = tmp_path / "r.json"
    p = fastload("run", nginx_h1.url, "--scenario", path, "-n", "200", "-c", "2", "-w", "1",
                 "--json", str(out), "--quiet")
    assert p.returncode == 0, p.stderr
    p = fastload("report", str(out), "--html", str(tmp_path / "r.html"))
    assert p.returncode == 0, p.stderr
    page = (tmp_path / "r.html").read_text()
    assert '<section id="by-request">' in page and "<code>alpha</code>" in page and "<code>beta</code>" in page
    assert 'id="checks"' in page

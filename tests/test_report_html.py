"""`fastload report --html/--png` on real result documents (runs against nginx and the built-in
delay server), and the HTML rendered by a real headless browser."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hdrh.histogram import HdrHistogram

from fastload.report.html import render_page
from fastload.results.compare import compare as compare_results
from fastload.results.compare import format_row
from fastload.results.histogram import percentile_points
from fastload.units import format_us
from support import peers
from support.run import fastload

EVIL_TAG = "<script>alert('x')</script>&"
CURRENT_RGB = (0x1F, 0x77, 0xB4)  # the report's colours (report_html.CSS, report_png.COLORS)
BASELINE_RGB = (0xFF, 0x7F, 0x0E)


def run_to_file(path: Path, *args: str, expect: int = 0) -> dict:
    p = fastload("run", *args, "--json", str(path), "--quiet")
    assert p.returncode == expect, p.stderr
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def results(nginx_h1, tmp_path_factory) -> dict:
    """A current run on nginx (with SLOs, one failing, and a tag needing escaping) and a
    baseline run on a server that answers after 2 ms: clearly different curves."""
    d = tmp_path_factory.mktemp("report")
    cur = d / "current.json"
    base = d / "baseline.json"
    doc = run_to_file(cur, nginx_h1.url, "-d", "2s", "-c", "4", "-w", "1", "--tag", f"note={EVIL_TAG}",
                      "-H", "X-Probe: <b>bold</b>", "--slo", "p99<10s", "--slo", "max<1us", expect=1)
    with peers.fastload_server(delay="2ms") as slow:
        bdoc = run_to_file(base, slow.url, "-d", "2s", "-c", "4", "-w", "1")
    return {"dir": d, "cur": cur, "base": base, "doc": doc, "bdoc": bdoc}


def report(*args: str) -> subprocess.CompletedProcess:
    return fastload("report", *args, timeout=120)


def polyline(page: str, chart_id: str, role: str) -> tuple[list[tuple[float, float]], list[float]]:
    """Pixel points and data-values-us of one series of one chart in the page."""
    svg = re.search(rf'<svg id="{chart_id}".*?</svg>', page, re.S)
    assert svg, chart_id
    m = re.search(rf'<polyline class="series {role}" points="([^"]*)"(?: data-values-us="([^"]*)")?',
                  svg.group(0))
    assert m, (chart_id, role)
    pts = [tuple(float(v) for v in p.split(",")) for p in m.group(1).split()]
    values = [float(v) for v in m.group(2).split()] if m.group(2) else []
    return pts, values  # type: ignore[return-value]


def card_value(page: str, key: str) -> tuple[str, str]:
    m = re.search(rf'<div class="card" data-key="{re.escape(key)}"><div class="label">[^<]*</div>'
                  r'<div class="value" data-value="([^"]*)">([^<]*)</div>', page)
    assert m, key
    return m.group(1), html.unescape(m.group(2))


def test_percentile_points_match_the_reference_iterator_levels(results):
    h = HdrHistogram.decode(results["doc"]["histogram"])
    pts = percentile_points(h)
    levels = [p for p, _ in pts]
    # HdrHistogram's percentile iterator with 5 ticks per half distance.
    assert levels[:9] == [0, 10, 20, 30, 40, 50, 55, 60, 65]
    assert levels[-1] == 100.0
    assert all(a < b for a, b in zip(levels, levels[1:], strict=False))
    # Values: the hdrh package's own get_value_at_percentile at every level.
    assert [v for _, v in pts] == [h.get_value_at_percentile(p) for p in levels]
    assert pts[-1][1] == h.get_max_value()
    # Levels stop where one sample is left: the last level before 100% is below 1 - 1/N.
    assert 100 / (100 - levels[-2]) < h.get_total_count()
    assert percentile_points(HdrHistogram(1, 60_000_000, 3)) == []


def test_html_holds_the_documents_numbers_and_escapes_its_strings(results):
    out = results["dir"] / "one.html"
    p = report(str(results["cur"]), "--html", str(out))
    assert p.returncode == 0, p.stderr
    assert p.stdout == "" and p.stderr == ""
    page = out.read_text()
    doc = results["doc"]
    lat = doc["latency_us"]
    for key in ("p50", "p99", "p99.9", "max"):
        assert card_value(page, key) == (json.dumps(lat[key]), format_us(lat[key]))
    assert card_value(page, "requests") == (json.dumps(doc["requests"]), str(doc["requests"]))
    # The distribution curve: exact values, non-decreasing, ending on the JSON's max, and its
    # pixels are a linear map of those values on a left-to-right log axis.
    pts, values = polyline(page, "latency-distribution", "current")
    assert len(pts) == len(values) > 20
    assert values == sorted(values)
    assert values[-1] == lat["max"]
    assert values[0] == HdrHistogram.decode(doc["histogram"]).get_min_value()
    xs, ys = [x for x, _ in pts], [y for _, y in pts]
    assert all(a < b for a, b in zip(xs, xs[1:], strict=False))
    assert all(a >= b for a, b in zip(ys, ys[1:], strict=False))  # SVG y grows downwards
    scale = (ys[0] - ys[-1]) / (values[-1] - values[0])
    for y, v in zip(ys, values, strict=True):
        assert ys[0] - y == pytest.approx((v - values[0]) * scale, abs=0.02)
    # 50% and 90% are exact levels: the JSON's p50 and p90 are on the curve.
    levels = [p for p, _ in percentile_points(HdrHistogram.decode(doc["histogram"]))]
    assert values[levels.index(50.0)] == min(lat["p50"], lat["max"])
    assert values[levels.index(90.0)] == min(lat["p90"], lat["max"])
    # Time series from the timeline, one point per second.
    rps_pts, _ = polyline(page, "rps-over-time", "current")
    assert len(rps_pts) == len([iv for iv in doc["timeline"] if iv.get("rps") is not None])
    polyline(page, "p99-over-time", "current")
    assert '<svg id="errors-over-time"' in page
    assert 'class="series baseline"' not in page and 'id="comparison"' not in page
    # Tables.
    assert re.search(rf'<td>200</td><td class="num">{doc["requests"]}</td>', page)
    assert re.search(r'<td class="PASS">PASS</td><td><code>p99&lt;10s</code>', page)
    assert re.search(r'<td class="FAIL">FAIL</td><td><code>max&lt;1us</code>', page)
    assert '<span class="badge slo-verdict fail">SLO FAIL</span>' in page
    # Strings from the JSON are escaped, and nothing is loaded from anywhere.
    assert html.escape(EVIL_TAG) in page and EVIL_TAG not in page
    assert html.escape(json.dumps(["X-Probe: <b>bold</b>"])) in page and "<b>bold" not in page
    assert "<script" not in page and "<link" not in page and "<img" not in page
    assert not re.search(r"\b(src|href)\s*=|url\(|@import", page)


def test_baseline_is_overlaid_and_compared_as_fastload_compare_does(results):
    out = results["dir"] / "two.html"
    p = report(str(results["cur"]), str(results["base"]), "--html", str(out))
    assert p.returncode == 0, p.stderr
    page = out.read_text()
    bdoc = results["bdoc"]
    cur_pts, _ = polyline(page, "latency-distribution", "current")
    base_pts, base_values = polyline(page, "latency-distribution", "baseline")
    assert base_values[-1] == bdoc["latency_us"]["max"]
    assert base_values == sorted(base_values)
    # The 2 ms server's median is far above nginx's: its curve is drawn higher (smaller y).
    mid = len(base_pts) // 3
    assert base_pts[mid][1] < cur_pts[mid][1]
    for chart in ("rps-over-time", "p99-over-time"):
        polyline(page, chart, "current")
        polyline(page, chart, "baseline")
    # Legend texts are the file names.
    assert ">current.json</text>" in page and ">baseline.json</text>" in page
    # The side-by-side table says what `fastload compare BASELINE CURRENT` says.
    verdict = compare_results(bdoc, results["doc"], 0.05)
    table = re.search(r'<table class="comparison">.*?</table>', page, re.S).group(0)
    for row in verdict["rows"]:
        t = format_row(row)
        assert (f"<tr><td>{t['metric']}</td><td class=\"num\">{t['baseline']}</td><td class=\"num\">"
                f"{t['current']}</td><td class=\"num\">{t['change']}</td>") in table
    cli = fastload("compare", str(results["base"]), str(results["cur"]), "--force")
    rps_line = next(ln for ln in cli.stdout.splitlines() if ln.startswith("rps "))
    assert rps_line.split()[3] in table  # the same relative change text
    # Headline cards show the baseline and the change.
    change = (results["doc"]["rps"] - bdoc["rps"]) / bdoc["rps"]
    assert re.search('data-key="rps">.*?baseline [^<]* ' + re.escape(f"({change * 100:+.1f}%)</div>"),
                     page)
    # A job's own threshold, as with `fastload compare --max-regression`.
    p = report(str(results["cur"]), str(results["base"]), "--html", str(out), "--max-regression", "1000%")
    assert p.returncode == 0, p.stderr
    page = out.read_text()
    assert "allowed regression 1000%" in page
    assert all(not r["regression"] for r in compare_results(bdoc, results["doc"], 10.0)["rows"])
    assert ">REGRESSION<" not in page


def browser() -> list[str] | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return [path, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    return None


def pixels(png: Path) -> tuple[tuple[int, int], int, int, int]:
    """(size, non-white pixels, pixels of the current colour, of the baseline colour)."""
    import numpy as np
    from PIL import Image

    with Image.open(png) as im:
        assert im.format == "PNG"
        rgb = im.convert("RGB")
        data = np.frombuffer(rgb.tobytes(), dtype=np.uint8).reshape(-1, 3).astype(np.int16)
        size = rgb.size

    def near(ref: tuple[int, int, int]) -> int:
        return int((np.abs(data - np.array(ref)).max(axis=1) <= 24).sum())

    return size, int((data.min(axis=1) < 235).sum()), near(CURRENT_RGB), near(BASELINE_RGB)


def test_headless_chromium_renders_the_page(results, tmp_path):
    cmd = browser()
    if cmd is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    out = tmp_path / "page.html"
    assert report(str(results["cur"]), str(results["base"]), "--html", str(out)).returncode == 0
    url = out.resolve().as_uri()
    profile = ["--user-data-dir=" + str(tmp_path / "profile")]  # no clash with other instances
    shot = tmp_path / "shot.png"
    p = subprocess.run([*cmd, *profile, f"--screenshot={shot}", "--window-size=1200,2000", url],
                       capture_output=True, text=True, timeout=90, cwd=tmp_path)
    assert shot.exists(), p.stderr
    size, ink, blue, orange = pixels(shot)
    assert size == (1200, 2000)
    assert ink > 0.03 * 1200 * 2000  # text, tables and charts, not a blank page
    assert blue > 300 and orange > 150  # both curves were drawn (the baseline's is dashed)
    p = subprocess.run([*cmd, *profile, "--dump-dom", url], capture_output=True, text=True,
                       timeout=90, cwd=tmp_path)
    dom = p.stdout
    for chart in ("latency-distribution", "rps-over-time", "p99-over-time", "errors-over-time"):
        assert f'<svg id="{chart}"' in dom, p.stderr
    assert dom.count('<polyline class="series baseline"') == 3
    assert '<table class="comparison">' in dom


def test_png_is_a_non_blank_image_with_both_runs(results, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "plots.png"
    p = report(str(results["cur"]), str(results["base"]), "--png", str(out))
    assert p.returncode == 0, p.stderr
    size, ink, blue, orange = pixels(out)
    assert size == (1300, 850)
    assert ink > 0.02 * 1300 * 850
    assert blue > 300 and orange > 300


def test_png_without_matplotlib_asks_to_install_the_extra(results, tmp_path):
    out = tmp_path / "plots.png"
    # A None entry in sys.modules makes `import matplotlib` raise ImportError, as if absent.
    code = "import sys; sys.modules['matplotlib'] = None; from fastload.cli import main; main()"
    p = subprocess.run([sys.executable, "-c", code, "report", str(results["cur"]), "--png", str(out),
                        "--html", str(tmp_path / "x.html")], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2
    assert "install fastload[report]" in p.stderr and "Traceback" not in p.stderr
    assert not out.exists() and not (tmp_path / "x.html").exists()  # checked before any work


def test_bad_inputs_exit_2_with_one_clear_line(results, tmp_path):
    doc = results["doc"]
    broken = dict(doc, histogram="HISTFAAAAnotreally")
    no_latency = {k: v for k, v in doc.items() if k != "latency_us"}
    files = {}
    for name, content in (("broken.json", json.dumps(broken)), ("nolat.json", json.dumps(no_latency)),
                          ("text.json", "not json"), ("other.json", json.dumps({"schema": "x/1"}))):
        files[name] = tmp_path / name
        files[name].write_text(content)
    html_out = str(tmp_path / "o.html")
    cases = [
        ((str(tmp_path / "missing.json"), "--html", html_out), "cannot read"),
        ((str(files["text.json"]), "--html", html_out), "not JSON"),
        ((str(files["other.json"]), "--html", html_out), "schema"),
        ((str(files["nolat.json"]), "--html", html_out), "latency_us"),
        ((str(files["broken.json"]), "--html", html_out), "histogram cannot be decoded"),
        ((str(results["cur"]), str(files["other.json"]), "--html", html_out), "schema"),
        ((str(results["cur"]),), "--html PATH and/or --png PATH"),
        ((str(results["cur"]), "--html", str(tmp_path / "no" / "dir" / "o.html")), "--html: cannot write"),
        ((str(results["cur"]), "--html", html_out, "--max-regression", "lots"), "--max-regression"),
    ]
    for args, message in cases:
        p = report(*args)
        assert p.returncode == 2, (args, p.stderr)
        assert message in p.stderr, (args, p.stderr)
        assert p.stderr.count("\n") == 1 and "Traceback" not in p.stderr
    assert not (tmp_path / "o.html").exists()


def test_a_run_with_only_errors_still_reports(tmp_path):
    # Every request times out: no latency at all, errors every second.
    with peers.fastload_server(delay="300ms", status=503) as slow:
        doc = run_to_file(tmp_path / "err.json", slow.url, "-d", "1s", "-c", "2", "-w", "1",
                          "--timeout", "100ms")
    assert doc["requests"] == 0 and doc["errors"]["timeout"] > 0
    out = tmp_path / "err.html"
    p = report(str(tmp_path / "err.json"), "--html", str(out))
    assert p.returncode == 0, p.stderr
    page = out.read_text()
    dist = re.search(r'<svg id="latency-distribution".*?</svg>', page, re.S).group(0)
    assert 'class="marker"' not in dist and "<polyline" not in dist  # no latency: no curve
    rps_pts, _ = polyline(page, "rps-over-time", "current")  # 0 req/s is data: drawn
    assert len(rps_pts) == len(doc["timeline"])
    bars = re.findall(r'<rect class="bar current"[^>]*><title>[^<]*: (\d+)</title>', page)
    assert sum(int(b) for b in bars) == doc["errors"]["total"]
    assert re.search(rf'<td>timeout</td><td class="num">{doc["errors"]["timeout"]}</td>', page)
    assert card_value(page, "errors")[1] == f"{doc['errors']['total']} (100%)"


def test_time_slos_of_every_section_are_shown_as_times(results):
    # ttfb_/ttfe_/event_gap_ gates hold µs like p99 does; the table formats them alike.
    doc = dict(results["doc"], slo=[
        {"expr": "ttfe_p50<1s", "metric": "ttfe_p50", "op": "<", "threshold": 1e6, "value": 30783,
         "passed": True},
        {"expr": "events_mean>=5", "metric": "events_mean", "op": ">=", "threshold": 5.0, "value": 5.0,
         "passed": True}])
    page = render_page(doc)
    assert (f'<code>ttfe_p50&lt;1s</code></td><td class="num">{format_us(30783)}</td>'
            f'<td class="num">&lt; {format_us(1e6)}</td>') in page
    assert '<code>events_mean&gt;=5</code></td><td class="num">5</td><td class="num">&gt;= 5</td>' in page

"""`fastload compare`: did this build get slower? A side-by-side table with relative changes,
decided by statistics over the per-second timelines, not by one number: a one-sided
Mann–Whitney U test per metric and a bootstrap confidence interval of the change of the
per-second median.

A metric is a regression only when three things agree: the whole-run value is worse than the
allowed change, the per-second samples are significantly worse (Mann–Whitney), and the 95%
interval of the per-second median's change lies wholly on the bad side of zero. Tail
percentiles of two runs against the same server routinely differ by 10% and, with a handful of
per-second samples, the rank test alone passes by chance about once in twenty per metric; the
interval keeps one noisy second from failing a job."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from fastload.errors import UsageError, attempts, error_rate

SIGNIFICANCE = 0.05
BOOTSTRAP_RESAMPLES = 2000


def mann_whitney_greater(x: list[float], y: list[float]) -> float:
    """One-sided p-value for "x tends to be greater than y" (normal approximation with tie and
    continuity corrections; fine from about 5 samples a side)."""
    n1, n2 = len(x), len(y)
    if not n1 or not n2:
        return 1.0
    pooled = sorted([(v, 0) for v in x] + [(v, 1) for v in y])
    ranks = [0.0] * len(pooled)
    ties = 0.0
    i = 0
    while i < len(pooled):
        j = i
        while j + 1 < len(pooled) and pooled[j + 1][0] == pooled[i][0]:
            j += 1
        r = (i + j) / 2 + 1
        for k in range(i, j + 1):
            ranks[k] = r
        t = j - i + 1
        ties += t ** 3 - t
        i = j + 1
    r1 = sum(r for r, (_, g) in zip(ranks, pooled, strict=True) if g == 0)
    u1 = r1 - n1 * (n1 + 1) / 2
    n = n1 + n2
    var = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1))) if n > 1 else 0.0
    if var <= 0:
        return 1.0 if u1 <= n1 * n2 / 2 else 0.0
    z = (u1 - n1 * n2 / 2 - 0.5) / math.sqrt(var)
    return 0.5 * math.erfc(z / math.sqrt(2))


def bootstrap_median_change(base: list[float], cur: list[float], seed: int = 1) -> tuple[float, float]:
    """95% interval of median(cur)/median(base) - 1 by resampling both series."""
    if not base or not cur:
        return (math.nan, math.nan)
    rng = random.Random(seed)
    changes = []
    for _ in range(BOOTSTRAP_RESAMPLES):
        b = _median([rng.choice(base) for _ in base])
        c = _median([rng.choice(cur) for _ in cur])
        if b:
            changes.append(c / b - 1)
    if not changes:
        return (math.nan, math.nan)
    changes.sort()
    return changes[int(0.025 * len(changes))], changes[int(0.975 * len(changes)) - 1]


def _median(v: list[float]) -> float:
    s = sorted(v)
    n = len(s)
    return (s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2) if n else math.nan


def _series(doc: dict, key: str) -> list[float]:
    """Per-second values of the full seconds of the run (the first and last, often partial,
    are left out when there are enough)."""
    tl = [iv for iv in doc.get("timeline", []) if iv.get(key) is not None]
    if len(tl) > 4:
        tl = tl[1:-1]
    return [float(iv[key]) for iv in tl]


@dataclass
class Row:
    metric: str
    base: float
    current: float
    change: float  # relative; positive = current larger
    worse: bool  # beyond the allowed regression in the bad direction
    p_value: float | None
    ci: tuple[float, float] | None
    regression: bool

    def to_dict(self) -> dict:
        return {"metric": self.metric, "baseline": self.base, "current": self.current,
                "change": self.change, "worse_than_allowed": self.worse, "p_value": self.p_value,
                "median_change_ci95": list(self.ci) if self.ci else None,
                "regression": self.regression}


def parse_max_regression(value: float | str) -> float:
    """A fraction (0.05) or a percentage string ('5%', or '5' as the CLI reads it) -> 0.05."""
    if isinstance(value, str):
        try:
            limit = float(value.strip().rstrip("%")) / 100
        except ValueError:
            raise UsageError(f"--max-regression: {value!r} is not a percentage (e.g. 5%)") from None
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        limit = float(value)
    else:
        raise UsageError(f"max_regression: {value!r} is not a fraction or a percentage")
    if not limit >= 0 or math.isinf(limit):  # also refuses NaN
        raise UsageError("--max-regression must be a finite number, not negative")
    return limit


def compare(base: dict, cur: dict, max_regression: float) -> dict:
    """max_regression: allowed relative worsening, e.g. 0.05."""
    rows = []
    rps_b, rps_c = _series(base, "rps"), _series(cur, "rps")
    p50_b, p50_c = _series(base, "p50_us"), _series(cur, "p50_us")
    p99_b, p99_c = _series(base, "p99_us"), _series(cur, "p99_us")
    tests = {
        # metric: (baseline value, current value, higher is better, per-second samples)
        "rps": (base["rps"], cur["rps"], True, (rps_b, rps_c)),
        "p50": (base["latency_us"]["p50"], cur["latency_us"]["p50"], False, (p50_b, p50_c)),
        "p90": (base["latency_us"]["p90"], cur["latency_us"]["p90"], False, (p50_b, p50_c)),
        "p99": (base["latency_us"]["p99"], cur["latency_us"]["p99"], False, (p99_b, p99_c)),
        "p99.9": (base["latency_us"]["p99.9"], cur["latency_us"]["p99.9"], False, (p99_b, p99_c)),
    }
    enough = min(len(rps_b), len(rps_c)) >= 3
    for metric, (b, c, higher_better, (sb, sc)) in tests.items():
        change = (c - b) / b if b else (0.0 if c == b else math.inf)
        worse = (-change if higher_better else change) > max_regression
        p = ci = None
        if len(sb) >= 3 and len(sc) >= 3:
            p = mann_whitney_greater(sb, sc) if higher_better else mann_whitney_greater(sc, sb)
            ci = bootstrap_median_change(sb, sc)
        # Without enough per-second samples the threshold alone decides (and the report says so).
        regression = worse and (p is None or (p < SIGNIFICANCE and _ci_on_bad_side(ci, higher_better)))
        rows.append(Row(metric, b, c, change, worse, p, ci, regression))
    eb = error_rate(base)
    ec = error_rate(cur)
    p_err = _two_proportion_greater(cur, base)
    worse = ec - eb > max(max_regression * eb, 0.001)
    rows.append(Row("errors", eb, ec, (ec - eb) / eb if eb else (0.0 if ec == eb else math.inf), worse,
                    p_err, None, worse and p_err < SIGNIFICANCE))
    out = {
        "max_regression": max_regression,
        "significance": SIGNIFICANCE,
        "per_second_samples": [len(rps_b), len(rps_c)],
        "note": None if enough else "fewer than 3 per-second samples: decided by thresholds only",
        "rows": [r.to_dict() for r in rows],
        "regression": any(r.regression for r in rows),
    }
    if base.get("phases") and cur.get("phases"):
        out["phases"] = compare_phases(base["phases"], cur["phases"])
    return out


def compare_phases(base: list[dict], cur: list[dict]) -> list[dict]:
    """Side by side per phase name present in both runs: p50, p99, error rate and, for windows,
    the time to recover. Shown, not decided on: a phase has too few per-second samples for the
    tests above, and its gates belong in --slo NAME:..."""
    cur_by = {p["name"]: p for p in cur}
    out = []
    for b in base:
        c = cur_by.get(b["name"])
        if c is None:
            continue
        row: dict = {"name": b["name"], "kind": b["kind"]}
        for key in ("p50", "p99"):
            row[key] = _pair(b["latency_us"][key], c["latency_us"][key])
        row["error_rate"] = _pair(error_rate(b), error_rate(c))
        if "time_to_recover_s" in b or "time_to_recover_s" in c:
            row["time_to_recover_s"] = _pair(b.get("time_to_recover_s"), c.get("time_to_recover_s"))
        out.append(row)
    return out


def _pair(b: float | None, c: float | None) -> dict:
    change = None
    if b is not None and c is not None:
        change = (c - b) / b if b else (0.0 if c == b else None)
    return {"baseline": b, "current": c, "change": change}


def phase_table(rows: list[dict]) -> str:
    """The per-phase comparison as text (for `fastload compare`)."""
    def cell(pair: dict, fmt) -> str:
        b, c = pair["baseline"], pair["current"]
        text = f"{fmt(b)} -> {fmt(c)}"
        return text + (f" ({pair['change'] * 100:+.0f}%)" if pair["change"] is not None else "")

    def ms(v):
        return "-" if v is None else f"{v / 1000:.2f}ms"

    def pct(v):
        return "-" if v is None else f"{v * 100:.3f}%"

    def sec(v):
        return "never" if v is None else f"{v:.1f}s"

    lines = ["per phase (shown, not decided on):"]
    for r in rows:
        parts = [f"p50 {cell(r['p50'], ms)}", f"p99 {cell(r['p99'], ms)}",
                 f"errors {cell(r['error_rate'], pct)}"]
        if "time_to_recover_s" in r:
            parts.append(f"recovery {cell(r['time_to_recover_s'], sec)}")
        lines.append(f"  {r['name']:<16} " + ", ".join(parts))
    return "\n".join(lines) + "\n"


def _ci_on_bad_side(ci: tuple[float, float] | None, higher_better: bool) -> bool:
    if ci is None or math.isnan(ci[0]):
        return True  # no interval to disagree with the rank test
    return ci[1] < 0 if higher_better else ci[0] > 0


def _two_proportion_greater(cur: dict, base: dict) -> float:
    """p-value that the current error rate is greater than the baseline's."""
    e1, e0 = cur.get("errors", {}).get("total", 0), base.get("errors", {}).get("total", 0)
    n1, n0 = attempts(cur), attempts(base)
    if not n1 or not n0:
        return 1.0
    p = (e1 + e0) / (n1 + n0)
    se = math.sqrt(p * (1 - p) * (1 / n1 + 1 / n0))
    if se == 0:
        return 1.0 if e1 / n1 <= e0 / n0 else 0.0
    z = (e1 / n1 - e0 / n0) / se
    return 0.5 * math.erfc(z / math.sqrt(2))


def _formatter(metric: str):
    if metric == "errors":
        return lambda v: f"{v * 100:.3f}%"
    unit = "" if metric == "rps" else "us"
    return lambda v: f"{v:,.1f}{unit}"


def format_row(r: dict) -> dict[str, str]:
    """The texts of one verdict row, shared by the text table and the HTML report."""
    fmt = _formatter(r["metric"])
    ci = r["median_change_ci95"]
    return {
        "metric": r["metric"],
        "baseline": fmt(r["baseline"]),
        "current": fmt(r["current"]),
        "change": f"{r['change'] * 100:+.1f}%" if math.isfinite(r["change"]) else "new",
        "p_value": f"{r['p_value']:.3g}" if r["p_value"] is not None else "-",
        "ci": f"[{ci[0] * 100:+.1f}%, {ci[1] * 100:+.1f}%]" if ci and not math.isnan(ci[0]) else "-",
        "verdict": "REGRESSION" if r["regression"] else (
            "worse (not significant)" if r["worse_than_allowed"] else "ok"),
    }


def table(result: dict) -> str:
    lines = [f"{'metric':<8} {'baseline':>14} {'current':>14} {'change':>9} {'p-value':>9}  "
             f"{'median change 95% CI':>22}  verdict"]
    for r in result["rows"]:
        t = format_row(r)
        lines.append(f"{t['metric']:<8} {t['baseline']:>14} {t['current']:>14} {t['change']:>9} "
                     f"{t['p_value']:>9}  {t['ci']:>22}  {t['verdict']}")
    lines.append(f"allowed regression {result['max_regression'] * 100:g}%, significance {result['significance']}"
                 + (f"; {result['note']}" if result["note"] else ""))
    lines.append("verdict: " + ("REGRESSION" if result["regression"] else "no significant regression"))
    return "\n".join(lines) + "\n" + (phase_table(result["phases"]) if result.get("phases") else "")

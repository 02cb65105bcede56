"""SLO gates: expressions like `p99<800ms`, `rps>=100000`, `errors<0.5%`, `status_5xx==0`,
`checks<0.1%`, parsed before the run and checked against the result document afterwards.

`checks` is about response checks (--check-*, scenario checks): with '%' the share of checked
responses that failed a check (failed / checked), without it the number that failed.

With windows (--phase, --fault) a gate may name a phase, `fault1:p99<800ms` or
`baseline:errors<0.1%`, and is then checked against that phase's entry in `phases`.
`recovery<47s` gates a window's time_to_recover_s: `fault1:recovery<47s` for one window, bare
for every window (a window that never recovered fails it)."""

from __future__ import annotations

import json
import operator
import re
from dataclasses import dataclass

from fastload.errors import ERROR_CLASSES, UsageError, attempts, read_input_text

_OPS = {"<=": operator.le, ">=": operator.ge, "==": operator.eq, "!=": operator.ne,
        "<": operator.lt, ">": operator.gt}
_EXPR_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*(<=|>=|==|!=|<|>)\s*([0-9][0-9_]*(?:\.[0-9]+)?)\s*([A-Za-zµ%]*)\s*$")
_LATENCY_KEYS = ("min", "mean", "stdev", "max", "p50", "p90", "p95", "p99", "p99.9", "p99.99")
_TIME_US = {"us": 1.0, "µs": 1.0, "ms": 1_000.0, "s": 1_000_000.0, "m": 60_000_000.0}
_COUNT_MULT = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6}
# Timing sections of the result a latency key may be prefixed with: ttfb_p99 -> ttfb_us.p99.
_TIMING_PREFIXES = ("ttfb", "ttfe", "event_gap", "service_time", "schedule_lag")
_EVENT_METRICS = ("events_mean", "events_p50", "events_max")
# `NAME:expr`: a phase name as config.windows allows it (no ':').
_SCOPED_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*:(.*)$")
_SECONDS = {"": 1.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "m": 60.0}
RECOVERY = "recovery"


@dataclass(frozen=True)
class Slo:
    expr: str
    metric: str
    op: str
    threshold: float  # in the metric's unit: µs for latencies, percent for rates with '%'
    percent: bool
    phase: str | None = None  # `NAME:expr`: checked against phases[NAME]

    def value_of(self, doc: dict) -> float | None:
        if self.metric == RECOVERY:
            return _recovery_value(doc, self.phase)
        if self.phase is not None:
            entry = next((p for p in doc.get("phases") or () if p["name"] == self.phase), None)
            return None if entry is None else metric_value(entry, self.metric, self.percent)
        return metric_value(doc, self.metric, self.percent)

    def check(self, doc: dict) -> dict:
        value = self.value_of(doc)
        passed = value is not None and _OPS[self.op](value, self.threshold)
        out = {"expr": self.expr, "metric": self.metric, "op": self.op, "threshold": self.threshold,
               "value": value, "passed": bool(passed)}
        if self.phase is not None:
            out["phase"] = self.phase
        return out


def _recovery_value(doc: dict, phase: str | None) -> float | None:
    """time_to_recover_s of the window named phase, or the longest of every window (None if
    one never recovered: the gate fails)."""
    windows = [p for p in doc.get("phases") or () if "time_to_recover_s" in p]
    if phase is not None:
        windows = [p for p in windows if p["name"] == phase]
    values = [p["time_to_recover_s"] for p in windows]
    if not values or any(v is None for v in values):
        return None
    return max(values)


def check_scopes(slos: list[Slo], phases: list[tuple[str, str]]) -> None:
    """Before any traffic: every gate names a phase of this run, and a recovery gate a window.
    phases: (name, kind) of the run's phases."""
    kinds = dict(phases)
    windows = [n for n, k in phases if k not in ("baseline", "recovery")]
    for g in slos:
        if g.phase is not None and g.phase not in kinds:
            known = ", ".join(kinds) if kinds else "none: give --phase or --fault windows"
            raise UsageError(f"--slo {g.expr!r}: no phase {g.phase!r} in this run (phases: {known})")
        if g.metric == RECOVERY:
            if not windows:
                raise UsageError(f"--slo {g.expr!r}: recovery needs a window (--phase or --fault)")
            if g.phase is not None and g.phase not in windows:
                raise UsageError(f"--slo {g.expr!r}: {g.phase!r} is not a window; recovery is "
                                 f"measured for {', '.join(windows)}")


def _latency_metric(name: str) -> tuple[str, str] | None:
    """'p99' -> ('latency_us', 'p99'); 'ttfb_p99' -> ('ttfb_us', 'p99')."""
    prefix, _, key = name.rpartition("_")
    if key in _LATENCY_KEYS and (not prefix or prefix in _TIMING_PREFIXES):
        return ((prefix + "_us") if prefix else "latency_us"), key
    return None


def is_time_metric(metric: str) -> bool:
    """The metric is a time in µs (p99, ttfb_p99, service_time_max, ...)."""
    return _latency_metric(metric) is not None


def parse(expr: str, what: str = "--slo") -> Slo:
    """One gate; `NAME:expr` scopes it to a phase (--slo only: --recover judges intervals)."""
    scoped = _SCOPED_RE.match(expr)
    if scoped and what == "--slo":
        inner = parse(scoped.group(2), what)
        return Slo(expr, inner.metric, inner.op, inner.threshold, inner.percent, scoped.group(1))
    m = _EXPR_RE.match(expr)
    if not m:
        bad = _first_bad_token(expr)
        raise UsageError(f"{what} {expr!r}: cannot parse at {bad!r} (expected e.g. p99<800ms, "
                         "rps>=1000, errors<0.5%, status_5xx==0)")
    metric, op, number, unit = m.groups()
    value = float(number.replace("_", ""))
    if metric == RECOVERY and what == "--slo":
        if unit not in _SECONDS:
            raise UsageError(f"{what} {expr!r}: unit {unit!r} is not a time unit (s, ms)")
        return Slo(expr, metric, op, value * _SECONDS[unit], False)
    if _latency_metric(metric):
        if unit in ("", "ms"):
            threshold = value * 1_000.0  # bare numbers are milliseconds, as in k6 thresholds
        elif unit in _TIME_US:
            threshold = value * _TIME_US[unit]
        else:
            raise UsageError(f"{what} {expr!r}: unit {unit!r} is not a time unit (us, ms, s)")
        return Slo(expr, metric, op, threshold, False)
    if metric in _EVENT_METRICS:
        if unit not in _COUNT_MULT:
            raise UsageError(f"{what} {expr!r}: unit {unit!r} does not apply to {metric}")
        return Slo(expr, metric, op, value * _COUNT_MULT[unit], False)
    if metric in ("rps", "requests") or metric.startswith("status_") or metric in ("errors", "error_rate") \
            or metric in _error_classes() or metric == "checks":
        if unit == "%":
            if metric in ("rps", "requests"):
                raise UsageError(f"{what} {expr!r}: {metric} cannot be a percentage")
            return Slo(expr, metric, op, value, True)
        if unit not in _COUNT_MULT:
            raise UsageError(f"{what} {expr!r}: unit {unit!r} does not apply to {metric}")
        if metric.startswith("status_") and not re.fullmatch(r"status_([1-5]xx|[1-5][0-9][0-9])", metric):
            raise UsageError(f"{what} {expr!r}: unknown status metric {metric!r} (status_5xx, status_404)")
        return Slo(expr, metric, op, value * _COUNT_MULT[unit], False)
    raise UsageError(f"{what} {expr!r}: unknown metric {metric!r} (latency: p50..p99.99, min, mean, max,"
                     " stdev, also as ttfb_, ttfe_, event_gap_, service_time_p99...; rps, requests,"
                     " errors, status_5xx, status_NNN, events_mean, checks)")


def _error_classes() -> tuple[str, ...]:
    return tuple(f"errors_{c}" for c in ERROR_CLASSES)


def _first_bad_token(expr: str) -> str:
    m = re.match(r"\s*[A-Za-z_][A-Za-z0-9_.]*", expr)
    if not m:
        return expr.strip()[:10] or expr
    rest = expr[m.end():]
    m2 = re.match(r"\s*(<=|>=|==|!=|<|>)", rest)
    if not m2:
        return rest.strip()[:10] or "<end>"
    rest2 = rest[m2.end():]
    return rest2.strip()[:10] or "<end>"


def metric_value(doc: dict, metric: str, percent: bool) -> float | None:
    lat = _latency_metric(metric)
    if lat is not None:
        section = doc.get(lat[0])
        return None if not section else section.get(lat[1])
    if metric in _EVENT_METRICS:
        events = doc.get("events")
        return None if not events else float(events[metric[len("events_"):]])
    requests = doc.get("requests", 0)
    if metric == "rps":
        return doc.get("rps")
    if metric == "requests":
        return requests
    if metric.startswith("status_"):
        code = metric[len("status_"):]
        codes = doc.get("status_codes", {})
        if code.endswith("xx"):
            count = sum(n for c, n in codes.items() if c[:1] == code[0])
        else:
            count = codes.get(code, 0)
        if percent:
            return 100.0 * count / requests if requests else 0.0
        return float(count)
    if metric == "checks":
        checks = doc.get("checks")
        if checks is None:
            return None  # no checks ran: the gate cannot pass
        if percent:
            return 100.0 * checks["failed"] / checks["checked"] if checks["checked"] else 0.0
        return float(checks["failed"])
    errors = doc.get("errors", {})
    count = errors.get("total", 0) if metric in ("errors", "error_rate") else errors.get(metric[len("errors_"):], 0)
    if percent:
        n = attempts(doc)
        return 100.0 * count / n if n else 0.0
    return float(count)


def load_file(path: str) -> list[str]:
    """A YAML or JSON list of expressions (a mapping with an 'slo' list is accepted too)."""
    text = read_input_text(path, "--slo-file")
    try:
        data = json.loads(text)
    except ValueError:
        import yaml  # loaded on use, as for scenario files

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise UsageError(f"--slo-file {path!r}: invalid YAML: {e}") from None
    if isinstance(data, dict):
        data = data.get("slo", data.get("slos"))
    if not isinstance(data, list) or not all(isinstance(x, str) for x in data):
        raise UsageError(f"--slo-file {path!r}: expected a list of expressions like [\"p99<800ms\"]")
    return data


def check_all(slos: list[Slo], doc: dict) -> tuple[list[dict], bool]:
    rows = [s.check(doc) for s in slos]
    return rows, all(r["passed"] for r in rows)

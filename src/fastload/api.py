"""The Python API: `fastload.run()`, `fastload.compare()` and `Result`.

run() takes the CLI's options under their snake_case names and goes through the same code path
as `fastload run` (execute.execute: same validation, same worker processes, same document).
Heavy modules are imported inside the functions so that `import fastload` stays light."""

from __future__ import annotations

import json as _json
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from .errors import RunError, UsageError

Duration = str | float  # "10s", "500ms", or a number of seconds


class Result(Mapping[str, Any]):
    """A result document (schema fastload.result/1), read-only and dict-like:
    result["latency_us"]["p99"], plus shortcuts for the numbers tests assert on."""

    def __init__(self, doc: Mapping[str, Any]) -> None:
        self.doc: dict[str, Any] = dict(doc)

    def __getitem__(self, key: str) -> Any:
        return self.doc[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.doc)

    def __len__(self) -> int:
        return len(self.doc)

    def __repr__(self) -> str:
        url = self.doc.get("target", {}).get("url")
        return (f"<fastload.Result {url} requests={self.requests} rps={self.rps:.1f} "
                f"errors={self.errors} passed={self.passed}>")

    @classmethod
    def from_json(cls, source: str | os.PathLike[str]) -> Result:
        """A document from JSON text, or from a file path (what `fastload run --json` wrote)."""
        from . import combine

        if isinstance(source, str) and source.lstrip().startswith("{"):
            try:
                doc = _json.loads(source)
            except ValueError as e:
                raise UsageError(f"not a JSON result document: {e}") from None
            return cls(combine.check_document(doc, "<text>"))
        return cls(combine.load(os.fspath(source)))

    def to_json(self) -> str:
        """The document as `fastload run --json` writes it."""
        from .report import to_json

        return to_json(self.doc)

    def latency(self, percentile: float) -> float:
        """Latency in µs at any percentile (e.g. 99.9), from the exact merged histogram, with
        the same semantics as latency_us (the highest value of the bucket). NaN when nothing
        was measured, so that a comparison with it fails."""
        if isinstance(percentile, bool) or not 0 <= percentile <= 100:
            raise ValueError(f"percentile {percentile!r} is not between 0 and 100")
        from .histogram import decode, percentiles_us

        h = decode(self.doc.get("histogram"))
        if not h.get_total_count():
            return math.nan
        return float(percentiles_us(h, [float(percentile)])[0])

    @property
    def requests(self) -> int:
        return int(self.doc.get("requests", 0))

    @property
    def rps(self) -> float:
        return float(self.doc.get("rps", 0.0))

    @property
    def errors(self) -> int:
        """Failed requests of every class (result["errors"] has them by class)."""
        return int(self.doc.get("errors", {}).get("total", 0))

    @property
    def passed(self) -> bool:
        """Every SLO held (True when none were given)."""
        return bool(self.doc.get("passed", True))

    @property
    def slo(self) -> list[dict[str, Any]]:
        """One entry per SLO: expr, metric, op, threshold, value, passed."""
        return list(self.doc.get("slo", []))

    @property
    def warnings(self) -> list[str]:
        return list(self.doc.get("warnings", []))

    @property
    def complete(self) -> bool:
        """False when the run was interrupted or a worker failed (the numbers are partial)."""
        return bool(self.doc.get("complete", True))


def run(
    url: str,
    *,
    connections: int | str = 10,
    duration: Duration | None = None,
    requests: int | str | None = None,
    rate: float | str | None = None,
    slo: Sequence[str] | str = (),
    slo_file: str | None = None,
    streams: int | str | None = None,
    pipeline: int | str = 1,
    warmup: Duration | None = None,
    timeout: Duration = "10s",
    workers: int | str | None = None,
    cpus: str | None = None,
    protocol: str | None = None,
    h2c: bool = False,
    insecure: bool = False,
    ca: str | None = None,
    method: str = "GET",
    headers: Sequence[str] | Mapping[str, str] = (),
    body: str | None = None,
    body_file: str | None = None,
    stages: str | None = None,
    arrival: str = "constant",
    seed: int = 1,
    start_at: float | None = None,
    tags: Mapping[str, str] | Sequence[str] = (),
    hdr_log: str | None = None,
    json: str | None = None,
    metrics_port: int | None = None,
    scenario: str | None = None,
    replay: str | None = None,
    replay_speed: float = 1.0,
    check_status: str | None = None,
    check_body_contains: Sequence[str] | str = (),
    check_body_regex: Sequence[str] | str = (),
    check_json: Sequence[str] | str = (),
    check_max_body: int | str | None = None,
    check_sample: float | str | None = None,
    on_progress: Callable[[Any], None] | None = None,
    **options: Any,
) -> Result:
    """Runs a load test like `fastload run URL ...` and returns its Result.

    Options mean what the CLI's do (`fastload run --help`); durations are "10s"-style strings
    or numbers of seconds, headers a list of "Name: value" or a mapping, tags a mapping or
    "K=V" strings, json a path to write the document to. Bad input raises UsageError before
    any traffic; a run that cannot produce results raises RunError. A failed SLO does not
    raise: check result.passed. on_progress(runner.Progress) is called once a second.
    """
    from .execute import execute

    if isinstance(headers, Mapping):
        headers = [f"{k}: {v}" for k, v in headers.items()]
    elif isinstance(headers, str):
        headers = [headers]
    if isinstance(tags, Mapping):
        tags = [f"{k}={v}" for k, v in tags.items()]
    elif isinstance(tags, str):
        tags = [tags]
    if json == "-":
        raise UsageError("json: give a file path; the document is the returned Result")
    outcome = execute(
        url, slo=slo, slo_file=slo_file, json_path=json, metrics_port=metrics_port,
        on_progress=on_progress, connections=connections, duration=duration, requests=requests,
        rate=rate, streams=streams, pipeline=pipeline, warmup=warmup, timeout=timeout,
        workers=workers, cpus=cpus, protocol=protocol, h2c=h2c, insecure=insecure, ca=ca,
        method=method, headers=list(headers), body=body, body_file=body_file, stages=stages,
        arrival=arrival, seed=seed, start_at=start_at, tags=list(tags), hdr_log=hdr_log,
        scenario=scenario, replay=replay, replay_speed=replay_speed, check_status=check_status,
        check_body_contains=check_body_contains, check_body_regex=check_body_regex,
        check_json=check_json, check_max_body=check_max_body, check_sample=check_sample,
        quiet=True, **options)
    if outcome.no_results:
        raise RunError("no worker produced results"
                       + "".join(f"; worker {w['index']}: {w['error']}"
                                 for w in outcome.doc.get("worker_errors", [])))
    return Result(outcome.doc)


class Verdict(Mapping[str, Any]):
    """What `fastload compare` decides: .regression, .rows (one per metric), .table()."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data: dict[str, Any] = dict(data)

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def __bool__(self) -> bool:
        return True  # a verdict is never "empty"; use .regression

    def __repr__(self) -> str:
        bad = [r["metric"] for r in self.rows if r["regression"]]
        return f"<fastload.Verdict regression={self.regression} {bad or ''}>"

    @property
    def regression(self) -> bool:
        return bool(self.data["regression"])

    @property
    def rows(self) -> list[dict[str, Any]]:
        return list(self.data["rows"])

    def table(self) -> str:
        from .compare import table

        return table(self.data)


ResultSource = Result | Mapping[str, Any] | str | os.PathLike[str]


def compare(baseline: ResultSource, current: ResultSource, max_regression: float | str = 0.05,
            *, force: bool = False) -> Verdict:
    """Did current get slower than baseline? Each is a Result, a document, or a path to a
    result file. max_regression: allowed worsening as a fraction (0.05) or a percentage
    string ("5%"). Results for different URLs raise UsageError unless force=True."""
    from . import combine
    from .compare import compare as compare_documents
    from .compare import parse_max_regression

    limit = parse_max_regression(max_regression)
    docs, names = [], []
    for source in (baseline, current):
        if isinstance(source, Result):
            docs.append(source.doc)
            names.append("<Result>")
        elif isinstance(source, Mapping):
            docs.append(combine.check_document(dict(source), "<document>"))
            names.append("<document>")
        else:
            path = os.fspath(source)
            docs.append(combine.load(path))
            names.append(path)
    combine.check_same_target(docs, names, force)
    return Verdict(compare_documents(docs[0], docs[1], limit))

"""Result documents as Python objects: Result (dict-like, with shortcuts), Verdict, and
compare(), which decides as `fastload compare` does. Reads JSON only: no engine, no extension."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Mapping
from typing import Any

from fastload.errors import UsageError
from fastload.results import merge
from fastload.results.compare import compare as compare_documents
from fastload.results.compare import parse_max_regression, table
from fastload.results.document import to_json
from fastload.results.histogram import decode, percentiles_us


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
        if isinstance(source, str) and source.lstrip().startswith("{"):
            try:
                doc = json.loads(source)
            except ValueError as e:
                raise UsageError(f"not a JSON result document: {e}") from None
            return cls(merge.check_document(doc, "<text>"))
        return cls(merge.load(os.fspath(source)))

    def to_json(self) -> str:
        """The document as `fastload run --json` writes it."""
        return to_json(self.doc)

    def latency(self, percentile: float) -> float:
        """Latency in µs at any percentile (e.g. 99.9), from the exact merged histogram, with
        the same semantics as latency_us (the highest value of the bucket). NaN when nothing
        was measured, so that a comparison with it fails."""
        if isinstance(percentile, bool) or not 0 <= percentile <= 100:
            raise ValueError(f"percentile {percentile!r} is not between 0 and 100")
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
        return table(self.data)


ResultSource = Result | Mapping[str, Any] | str | os.PathLike[str]


def compare(baseline: ResultSource, current: ResultSource, max_regression: float | str = 0.05,
            *, force: bool = False) -> Verdict:
    """Did current get slower than baseline? Each is a Result, a document, or a path to a
    result file. max_regression: allowed worsening as a fraction (0.05) or a percentage
    string ("5%"). Results for different URLs raise UsageError unless force=True."""
    limit = parse_max_regression(max_regression)
    docs, names = [], []
    for source in (baseline, current):
        if isinstance(source, Result):
            docs.append(source.doc)
            names.append("<Result>")
        elif isinstance(source, Mapping):
            docs.append(merge.check_document(dict(source), "<document>"))
            names.append("<document>")
        else:
            path = os.fspath(source)
            docs.append(merge.load(path))
            names.append(path)
    merge.check_same_target(docs, names, force)
    return Verdict(compare_documents(docs[0], docs[1], limit))

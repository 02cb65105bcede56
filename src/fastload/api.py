"""The Python API: `fastload.run()`, and the result objects of fastload.results.view
(`Result`, `Verdict`, `compare()`).

run() takes the CLI's options under their snake_case names and goes through the same code path
as `fastload run` (runtime.execute: same validation, same worker processes, same document)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastload.config.options import RunOptions
from fastload.errors import RunError, UsageError
from fastload.runtime.execute import Outcome, execute

if TYPE_CHECKING:
    from fastload.results.view import Result, Verdict, compare

__all__ = ["run", "compare", "Result", "Verdict", "execute_options"]


def execute_options(options: RunOptions, *, on_warning: Callable[[str], None] | None = None,
                    on_progress: Callable[[Any], None] | None = None) -> Outcome:
    """One run from its options, on this host or, with options.cluster, on several."""
    if options.cluster is None:
        return execute(options, on_warning=on_warning, on_progress=on_progress)
    try:
        # The cluster extra (Dask) is loaded only by runs that ask for it.
        from fastload.cluster.coordinator import execute_cluster
    except ImportError as e:
        if "distributed" not in str(e) and "dask" not in str(e):
            raise
        raise UsageError("--cluster needs Dask: pip install 'fastload[cluster]'") from None
    return execute_cluster(options, on_warning=on_warning, on_progress=on_progress)


def run(url: str, *, json: str | None = None, on_progress: Callable[[Any], None] | None = None,
        **options: Any) -> Result:
    """Runs a load test like `fastload run URL ...` and returns its Result.

    options are the fields of config.options.RunOptions: the CLI's options under their
    snake_case names (connections, duration, requests, rate, slo, streams, workers, cpus, h2c,
    headers, tags, scenario, check_status, ...). Durations are "10s"-style strings or numbers
    of seconds, headers a list of "Name: value" or a mapping, tags a mapping or "K=V" strings,
    json a path to write the document to. Bad input (an unknown option too) raises UsageError
    before any traffic; a run that cannot produce results raises RunError. A failed SLO does
    not raise: check result.passed. on_progress(runner.Progress) is called once a second.
    cluster="tcp://HOST:PORT" (or tls://, or "local:N") runs it from several load hosts, as
    `fastload run --cluster`.
    """
    from fastload.results.view import Result

    if json == "-":
        raise UsageError("json: give a file path; the document is the returned Result")
    opts = RunOptions.build(url, **{**options, "json_path": json, "quiet": True})
    outcome = execute_options(opts, on_progress=on_progress)
    if outcome.no_results:
        raise RunError("no worker produced results"
                       + "".join(f"; worker {w['index']}: {w['error']}"
                                 for w in outcome.doc.get("worker_errors", [])))
    return Result(outcome.doc)


def __getattr__(name: str) -> Any:
    # The result objects are loaded on first use: `fastload run` itself never needs them.
    if name in ("Result", "Verdict", "compare"):
        from fastload.results import view

        return getattr(view, name)
    raise AttributeError(f"module 'fastload.api' has no attribute {name!r}")

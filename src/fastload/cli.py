"""Command line. The only module that prints and chooses exit codes:
0 success, 1 an SLO failed, 2 bad usage or input (before any traffic), 3 no results."""

from __future__ import annotations

import sys
import traceback

import click

from . import __version__
from .errors import FastloadError, UsageError

CONTEXT = {"help_option_names": ["-h", "--help"], "auto_envvar_prefix": "FASTLOAD",
           "max_content_width": 100}


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, prog_name="fastload")
def main() -> None:
    """fastload: HTTP/1.1 and HTTP/2 load generator with a native hot path."""


@main.command(context_settings=CONTEXT)
@click.argument("url")
@click.option("-c", "--connections", default="10", show_default=True,
              help="Total connections, spread over the workers.")
@click.option("-m", "--streams", default=None,
              help="Max concurrent streams per HTTP/2 connection [default: 10 for h2, 1 for h1].")
@click.option("--pipeline", default="1", show_default=True,
              help="HTTP/1.1 requests in flight per connection (pipelining).")
@click.option("-d", "--duration", default=None,
              help="Measured duration, e.g. 500ms, 10s, 2m [default: 10s unless -n is given].")
@click.option("-n", "--requests", default=None,
              help="Stop after exactly N completed requests in total (across workers).")
@click.option("--warmup", default=None,
              help="Warm-up before measuring; its requests are not recorded (e.g. 2s).")
@click.option("--timeout", default="10s", show_default=True,
              help="Per-request timeout; a late request is counted as a timeout error.")
@click.option("-w", "--workers", default=None,
              help="Worker processes [default: one per CPU in the allowed set or --cpus].")
@click.option("--cpus", default=None,
              help="CPUs to pin workers to (1, 2-7, 0,2,4), with os.sched_setaffinity.")
@click.option("--protocol", type=click.Choice(["h1", "h2"]), default=None,
              help="Force HTTP/1.1 or HTTP/2 [default: h1 for http://, ALPN h2 then h1 for https://].")
@click.option("--h2c", is_flag=True, help="HTTP/2 over cleartext with prior knowledge.")
@click.option("--insecure", "-k", is_flag=True, help="Skip TLS certificate verification.")
@click.option("--ca", default=None, metavar="FILE", help="Trust the CA certificate(s) in FILE.")
@click.option("-X", "--method", default="GET", show_default=True, help="HTTP method.")
@click.option("-H", "--header", "headers", multiple=True, metavar="'K: V'",
              help="Request header (repeatable).")
@click.option("--body", default=None, help="Request body (string).")
@click.option("--body-file", default=None, metavar="PATH", help="Request body read from a file.")
@click.option("-R", "--rate", default=None,
              help="Open model: total requests/s across workers (e.g. 2000, 10k), sent on a schedule "
                   "independent of responses; latency counts from each request's intended time.")
@click.option("--stages", default=None, metavar="D:RATE,...",
              help="Rate ramps like k6 stages, e.g. '30s:1000,1m:5000,30s:0' (from --rate or 0).")
@click.option("--arrival", type=click.Choice(["constant", "poisson"]), default="constant",
              show_default=True, help="Open model inter-arrival times.")
@click.option("--seed", default=1, show_default=True, type=int, help="Seed for --arrival poisson.")
@click.option("--start-at", default=None, type=float, metavar="UNIX_TIME",
              help="Start the load at this wall-clock instant (several hosts together).")
@click.option("--tag", "tags", multiple=True, metavar="K=V", help="Label the result (repeatable).")
@click.option("--hdr-log", default=None, metavar="PATH",
              help="Write an HdrHistogram interval log (.hlog), one interval per second.")
@click.option("--metrics-port", default=None, type=click.IntRange(1, 65535), metavar="PORT",
              help="Serve live Prometheus metrics on http://127.0.0.1:PORT/metrics during the run.")
@click.option("--json", "json_path", default=None, metavar="PATH",
              help="Write the result document (schema fastload.result/1) to PATH, '-' for stdout.")
@click.option("--quiet", "-q", is_flag=True, help="No progress line and no summary.")
@click.option("--slo", "slos", multiple=True, metavar="EXPR",
              help="Service level gate, repeatable: p99<800ms, p50<=20ms, rps>=100000, errors<0.5%, "
                   "status_5xx==0, max<2s. Any failure makes the exit code 1.")
@click.option("--slo-file", default=None, metavar="FILE",
              help="SLO expressions from a YAML or JSON list (added to --slo).")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
def run(url: str, json_path: str | None, quiet: bool, debug: bool, slos: tuple[str, ...],
        slo_file: str | None, metrics_port: int | None, **options) -> None:
    """Run a load test against URL and print a wrk-like summary."""
    try:
        code = _run(url, json_path, quiet, slos, slo_file, metrics_port, options)
    except FastloadError as e:
        if debug:
            traceback.print_exc()
        click.echo(f"fastload: error: {e}", err=True)
        sys.exit(getattr(e, "exit_code", 3))
    sys.exit(code)


def _run(url: str, json_path: str | None, quiet: bool, slos: tuple[str, ...], slo_file: str | None,
         metrics_port: int | None, options: dict) -> int:
    from . import report
    from .execute import execute

    live = not quiet and sys.stderr.isatty()

    def on_progress(p) -> None:
        line = report.progress_line(p.elapsed_s, p.rps, p.p99_us, p.errors)
        sys.stderr.write("\r" + line)
        sys.stderr.flush()

    outcome = execute(url, slo=slos, slo_file=slo_file, json_path=json_path,
                      metrics_port=metrics_port, quiet=quiet, on_warning=_warn,
                      on_progress=on_progress if live else None, **options)
    if live:
        sys.stderr.write("\r\033[K")
    for warning in outcome.late_warnings:
        _warn(warning)
    doc = outcome.doc
    if not quiet:
        stream = sys.stderr if json_path == "-" else sys.stdout
        stream.write(report.summary(doc))
    if json_path == "-":
        sys.stdout.write(report.to_json(doc))
    if outcome.no_results:
        click.echo("fastload: error: no worker produced results", err=True)
        return 3
    if outcome.failed_workers:
        _warn(f"{outcome.failed_workers} worker(s) failed; results are from the others")
    return 0 if outcome.passed else 1


def _warn(text: str) -> None:
    click.echo(f"fastload: warning: {text}", err=True)


@main.command("merge", context_settings=CONTEXT)
@click.argument("results", nargs=-1, required=True, metavar="RESULT.json...")
@click.option("--json", "json_path", default="-", show_default=True, metavar="PATH",
              help="Where to write the merged result document.")
@click.option("--force", is_flag=True, help="Merge results for different targets.")
def merge_cmd(results: tuple[str, ...], json_path: str, force: bool) -> None:
    """Merge results of several hosts or runs into one (exact histogram merge, summed
    counters, timelines aligned by wall time)."""
    from . import combine, report
    from .execute import check_writable

    try:
        docs = [combine.load(p) for p in results]
        combine.check_same_target(docs, list(results), force)
        if json_path != "-":
            check_writable(json_path)
        merged = combine.merge_documents(docs)
    except FastloadError as e:
        click.echo(f"fastload: error: {e}", err=True)
        sys.exit(e.exit_code if isinstance(e, UsageError) else 3)
    text = report.to_json(merged)
    if json_path == "-":
        sys.stdout.write(text)
    else:
        with open(json_path, "w") as f:
            f.write(text)
        sys.stderr.write(report.summary(merged) if "config" in merged and merged["config"] else "")


@main.command("compare", context_settings=CONTEXT)
@click.argument("baseline", metavar="BASELINE.json")
@click.argument("current", metavar="CURRENT.json")
@click.option("--max-regression", default="5%", show_default=True,
              help="Allowed worsening of a metric before it can count as a regression.")
@click.option("--force", is_flag=True, help="Compare results for different targets.")
@click.option("--json", "json_path", default=None, metavar="PATH", help="Write the verdict as JSON.")
def compare_cmd(baseline: str, current: str, max_regression: str, force: bool,
                json_path: str | None) -> None:
    """Did CURRENT get slower than BASELINE? Exit 0: no significant regression, 1: regression,
    2: bad input."""
    import json as _json

    from . import api

    try:
        verdict = api.compare(baseline, current, max_regression, force=force)
    except FastloadError as e:
        click.echo(f"fastload: error: {e}", err=True)
        sys.exit(2)
    sys.stdout.write(verdict.table())
    if json_path is not None:
        with open(json_path, "w") as f:
            _json.dump(verdict.data, f, indent=2)
    sys.exit(1 if verdict.regression else 0)


@main.command(context_settings=CONTEXT)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--delay", default="0", show_default=True, help="Delay before each response (e.g. 5ms).")
@click.option("--status", default=200, show_default=True, type=int)
@click.option("--body-size", default=None, type=int, help="Response body size in bytes.")
def serve(host: str, port: int, delay: str, status: int, body_size: int | None) -> None:
    """Run the built-in test server (HTTP/1.1 and h2c prior knowledge) on HOST:PORT."""
    from . import serve as serve_mod

    argv = ["--host", host, "--port", str(port), "--delay", delay, "--status", str(status)]
    if body_size is not None:
        argv += ["--body-size", str(body_size)]
    sys.exit(serve_mod.main(argv) or 0)


if __name__ == "__main__":  # pragma: no cover
    main()

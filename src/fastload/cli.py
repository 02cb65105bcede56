"""Command line. The only module that prints and chooses exit codes:
0 success, 1 an SLO failed, 2 bad usage or input (before any traffic), 3 no results."""

from __future__ import annotations

import atexit
import gc
import json
import os
import sys
import traceback

import click

from fastload import __version__
from fastload.errors import FastloadError, UsageError, check_writable
from fastload.units import format_bytes, parse_duration_ns

CONTEXT = {"help_option_names": ["-h", "--help"], "auto_envvar_prefix": "FASTLOAD",
           "max_content_width": 100}


class LoadCommand(click.Command):
    """`run` and `grpc`: `--perf-stat` takes an optional value, so in `--perf-stat URL` the
    parser would read the URL as the event list; a value with "://" is the URL."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        fixed = list(args)
        for i, a in enumerate(fixed[:-1]):
            if a == "--perf-stat" and "://" in fixed[i + 1]:
                fixed[i] = "--perf-stat=default"
        return super().parse_args(ctx, fixed)


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, prog_name="fastload")
@click.pass_context
def main(ctx: click.Context) -> None:
    """fastload: HTTP/1.1, HTTP/2 and HTTP/3 load generator with a native hot path."""
    if ctx.invoked_subcommand not in ("run", "grpc"):
        gc.enable()  # entry() held collection off for a load run's start-up only


def entry() -> None:
    """The `fastload` command (and `python -m fastload`). A run's client CPU counts the whole
    process tree, start-up and exit included, so neither pays for garbage it cannot have:
    start-up only creates objects that live until exit (no collection during the imports; they
    are frozen out of every later one before the workers fork), and exit skips the
    interpreter's teardown of them: atexit handlers run, streams are flushed, then _exit."""
    gc.disable()
    code: object = 0
    try:
        main()
    except SystemExit as e:
        code = e.code
    finally:
        gc.enable()
    if code is None:
        code = 0
    elif not isinstance(code, int):  # as the interpreter does with sys.exit("message")
        sys.stderr.write(f"{code}\n")
        code = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be written anyway
            pass
    os._exit(code)


@main.command(cls=LoadCommand, context_settings=CONTEXT)
@click.argument("url")
@click.option("-c", "--connections", default="10", show_default=True,
              help="Total connections, spread over the workers.")
@click.option("-m", "--streams", default=None,
              help="Max concurrent streams per HTTP/2 or HTTP/3 connection [default: 10 for h2 and "
                   "h3, 1 for h1].")
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
@click.option("--coalesce", default=None, metavar="DURATION",
              help="Read responses in batches: while they flow, the event loop polls at most once "
                   "per DURATION (up to 1ms, e.g. 100us) and reads every ready connection at "
                   "once. Less client CPU per request when the server is the limit; a response "
                   "may be read, and its latency recorded, up to DURATION late. Closed model "
                   "only [default: off, each response is read as it arrives].")
@click.option("-w", "--workers", default=None,
              help="Worker processes [default: one per CPU in the allowed set or --cpus].")
@click.option("--cpus", default=None,
              help="CPUs to pin workers to (1, 2-7, 0,2,4); see --pin-mode.")
@click.option("--numa-node", default=None, type=click.IntRange(min=0), metavar="N",
              help="Pin the workers to NUMA node N's CPUs (with --cpus: those CPUs, which must be "
                   "on node N); --pin-mode numactl also binds their memory to it.")
@click.option("--pin-mode", type=click.Choice(["affinity", "taskset", "numactl"]), default="affinity",
              show_default=True,
              help="How workers are pinned: os.sched_setaffinity in the worker, or started under "
                   "'taskset -c CPUS' or 'numactl --physcpubind=CPUS --membind=NODES'.")
@click.option("--avoid-cpus", default=None, metavar="LIST",
              help="CPUs the workers must not use, e.g. the server's (2-3).")
@click.option("--server-pid", default=None, type=int, metavar="PID",
              help="The server's process (and its children): warn if the workers share its CPUs and "
                   "report its CPU time over the measured interval (server_cpu in the JSON).")
@click.option("--protocol", type=click.Choice(["h1", "h2", "h3"]), default=None,
              help="Force HTTP/1.1, HTTP/2 or HTTP/3 [default: h1 for http://, ALPN h2 then h1 for "
                   "https://]. h3 is HTTP/3 over QUIC (UDP, aioquic) and needs an https:// URL.")
@click.option("--h3-backend", type=click.Choice(["aioquic", "qh3"]), default=None,
              help="The QUIC library of --protocol h3: aioquic (pure Python, the default) or qh3 "
                   "(native packet core; pip install qh3).")
@click.option("--tls-path", type=click.Choice(["native", "python"]), default=None,
              help="TLS of https:// over TCP: native (OpenSSL records in the native core, the "
                   "default where built) or python (uvloop's TLS). `fastload info` shows which.")
@click.option("--h2c", is_flag=True, help="HTTP/2 over cleartext with prior knowledge.")
@click.option("--insecure", "-k", is_flag=True, help="Skip TLS certificate verification.")
@click.option("--ca", default=None, metavar="FILE", help="Trust the CA certificate(s) in FILE.")
@click.option("-X", "--method", default="GET", show_default=True, help="HTTP method.")
@click.option("-H", "--header", "headers", multiple=True, metavar="'K: V'",
              help="Request header (repeatable).")
@click.option("--body", default=None, help="Request body (string).")
@click.option("--body-file", default=None, metavar="PATH", help="Request body read from a file.")
@click.option("--scenario", default=None, metavar="FILE",
              help="Weighted request variants from a YAML/JSON file (method, path or url, headers, "
                   "body / body_file / generated body_size, weight, checks); picked per request, "
                   "results per variant in by_request. HTTP/1.1 and HTTP/2. "
                   "See README 'Scenarios'.")
@click.option("--replay", default=None, metavar="FILE",
              help="Replay a trace (JSON lines or CSV: offset, method, path, body or size, headers): "
                   "each request is sent at its recorded offset, open loop, latency from that "
                   "intended time. The run lasts as long as the trace.")
@click.option("--replay-speed", default=1.0, show_default=True, type=float, metavar="X",
              help="Replay X times faster (2: offsets halved).")
@click.option("--check-status", default=None, metavar="CODES",
              help="Response check: status in this set, e.g. 200,204 or 2xx,304.")
@click.option("--check-body-contains", multiple=True, metavar="TEXT",
              help="Response check: the body contains TEXT (repeatable).")
@click.option("--check-body-regex", multiple=True, metavar="RE",
              help="Response check: the body matches the regular expression (repeatable).")
@click.option("--check-json", multiple=True, metavar="PATH=VALUE",
              help="Response check: the JSON body's field at a dotted path equals VALUE (parsed as "
                   "JSON if it can be, else text), e.g. data.items.0.id=5 (repeatable).")
@click.option("--check-max-body", default=None, metavar="BYTES",
              help="Response check: the body is at most BYTES long.")
@click.option("--check-sample", default=None, metavar="P",
              help="Check this fraction of responses (0.01 or 1%) [default: all]. A failed check "
                   "counts as errors.check_failed; SLO metric `checks` (checks<0.1%).")
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
@click.option("--phase", multiple=True, metavar="NAME=START-END",
              help="Mark a window of run time (after --warmup), e.g. deploy=30s-45s, for per-phase "
                   "results (baseline, NAME, recovery-NAME) and recovery time; applies nothing "
                   "(repeatable). Gates: --slo 'NAME:p99<800ms', --slo 'recovery<47s'.")
@click.option("--at", multiple=True, metavar="OFFSET:COMMAND",
              help="Run `sh -c COMMAND` at OFFSET of run time without blocking the load "
                   "(repeatable); what it did goes into the JSON `hooks`.")
@click.option("--recover", multiple=True, metavar="EXPR",
              help="Recovery criterion per 100 ms interval, in SLO syntax (p99<50ms, errors<1%; "
                   "repeatable) [default: p99 <= max(1.5 x baseline p99, baseline p99 + 1 ms) "
                   "and errors <= baseline + 0.1 points].")
@click.option("--fault", "fault", multiple=True, metavar="'START-END[@TARGET]:KIND[=V][,P=V]'",
              help="Inject a fault in a window of run time (after the warm-up), repeatable: "
                   "latency=D[,jitter=D][,dir=down|up|both], bandwidth=RATE, reset, blackhole, down, "
                   "http_status=CODE (HTTP/1.1), loss=P (netem); p=P, name=NAME. Without @TARGET it "
                   "applies to fastload's own connections (through a proxy in front of the URL). "
                   "Each window gets per-phase results, impact and recovery time (see README).")
@click.option("--fault-proxy", "fault_proxy", multiple=True, metavar="NAME=LISTEN=UPSTREAM",
              help="Run a fault proxy for the run (e.g. redis=127.0.0.1:16379=127.0.0.1:6379); point "
                   "the service under test at LISTEN; --fault ...@NAME applies there.")
@click.option("--fault-via", type=click.Choice(["proxy", "netem"]), default="proxy",
              show_default=True,
              help="proxy: a userspace proxy (no root); netem: tc netem/tbf on --fault-dev (root; "
                   "latency, jitter, loss, bandwidth only).")
@click.option("--fault-dev", default=None, metavar="IFACE",
              help="The device for --fault-via netem [default: the route's to the target].")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.option("--cluster", default=None, metavar="ADDRESS",
              help="Run from several load hosts: a Dask scheduler (tcp://HOST:PORT, tls://HOST:PORT) "
                   "with `fastload agent` on each host, or local:N agents started here. -c, -n, -R "
                   "and --stages are totals split over the hosts by their worker counts; -w, --cpus, "
                   "--numa-node and --pin-mode apply on each host (needs fastload[cluster]).")
@click.option("--hosts", default=None, metavar="N",
              help="With --cluster: use N agents, waiting up to --timeout for them [default: all].")
@click.option("--cluster-tls-ca-file", default=None, metavar="FILE",
              help="With a tls:// --cluster: the CA of the cluster's certificates.")
@click.option("--cluster-tls-cert", default=None, metavar="FILE",
              help="With a tls:// --cluster: this client's certificate.")
@click.option("--cluster-tls-key", default=None, metavar="FILE",
              help="With a tls:// --cluster: this client's private key.")
@click.option("--perf-stat", is_flag=False, flag_value="default", default=None, metavar="[=EVENTS]",
              help="Count each worker with `perf stat` over the measured interval (not the warm-up); "
                   "counters per worker and summed go into the JSON `perf`. Default events: cycles, "
                   "instructions, cache-misses, context-switches, cpu-migrations, task-clock (software "
                   "events only, with a note, where hardware counters are unsupported). "
                   "--perf-stat=EVENTS counts a comma-separated list instead (write it with '=' or "
                   "after the URL). Needs perf (apt install linux-perf) and "
                   "kernel.perf_event_paranoid <= 1 (2: user space only) for non-root users.")
def run(url: str, json_path: str | None, quiet: bool, debug: bool, slos: tuple[str, ...],
        slo_file: str | None, metrics_port: int | None, **options) -> None:
    """Run a load test against URL and print a wrk-like summary."""
    try:
        code = _run(url, json_path, quiet, debug, slos, slo_file, metrics_port, options)
    except FastloadError as e:
        if debug:
            traceback.print_exc()
        click.echo(f"fastload: error: {e}", err=True)
        sys.exit(getattr(e, "exit_code", 3))
    sys.exit(code)


@main.command("grpc", cls=LoadCommand, context_settings=CONTEXT)
@click.argument("url")
@click.option("--method", "grpc_method", required=True, metavar="pkg.Service/Method",
              help="The gRPC method to call, e.g. helloworld.Greeter/SayHello.")
@click.option("--data-file", "grpc_data_file", default=None, metavar="MSG.bin",
              help="The request message, serialized (protobuf bytes), read from a file.")
@click.option("--data-b64", "grpc_data_b64", default=None, metavar="B64",
              help="The request message, serialized, as base64 [default: an empty message].")
@click.option("--proto", "grpc_proto", default=None, metavar="FILE",
              help="A .proto file declaring the method; with --message (needs fastload[grpc]).")
@click.option("--message", "grpc_message", default=None, metavar="JSON",
              help="The request message as JSON, encoded with the method's input type from --proto.")
def grpc_cmd(**kwargs) -> None:
    """gRPC calls against URL (http:// for h2c, https:// for TLS) over the HTTP/2 engine.
    Every call's grpc-status is counted per code (grpc_status in the JSON). Server-streaming
    calls work too: each response message is an event (events, ttfe_us = time to the first
    message, event_gap_us). The other options are those of `fastload run`."""
    run.callback(**kwargs)


# The same load options as `run`, minus what gRPC fixes (method, body, protocol, pipelining).
grpc_cmd.params.extend(p for p in run.params
                       if p.name not in ("url", "method", "body", "body_file", "protocol", "pipeline",
                                         "h3_backend")
                       and not p.name.startswith(("scenario", "replay", "check_")))


def _run(url: str, json_path: str | None, quiet: bool, debug: bool, slos: tuple[str, ...],
         slo_file: str | None, metrics_port: int | None, options: dict) -> int:
    # Loaded when the command runs: merge, compare and report must work without the engine.
    from fastload.api import execute_options
    from fastload.config.options import RunOptions
    from fastload.report import summary as report
    from fastload.results.document import to_json

    if not gc.isenabled():  # entry(): what was imported lives until exit
        gc.freeze()
        gc.enable()
    live = not quiet and sys.stderr.isatty()

    def on_progress(p) -> None:
        line = report.progress_line(p.elapsed_s, p.rps, p.p99_us, p.errors)
        sys.stderr.write("\r" + line)
        sys.stderr.flush()

    opts = RunOptions(url=url, slo=slos, slo_file=slo_file, json_path=json_path,
                      metrics_port=metrics_port, quiet=quiet, **options)
    outcome = execute_options(opts, on_warning=_warn, on_progress=on_progress if live else None)
    if live:
        sys.stderr.write("\r\033[K")
    for warning in outcome.late_warnings:
        _warn(warning)
    if debug and outcome.check_traceback:
        sys.stderr.write(outcome.check_traceback)
    doc = outcome.doc
    if not quiet:
        stream = sys.stderr if json_path == "-" else sys.stdout
        stream.write(report.summary(doc))
    if json_path == "-":
        sys.stdout.write(to_json(doc))
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
    from fastload.report import summary as report
    from fastload.results import merge as combine
    from fastload.results.document import to_json

    try:
        docs = [combine.load(p) for p in results]
        combine.check_same_target(docs, list(results), force)
        if json_path != "-":
            check_writable(json_path)
        merged = combine.merge_documents(docs)
    except FastloadError as e:
        click.echo(f"fastload: error: {e}", err=True)
        sys.exit(e.exit_code if isinstance(e, UsageError) else 3)
    text = to_json(merged)
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
    from fastload.results.view import compare

    try:
        verdict = compare(baseline, current, max_regression, force=force)
    except FastloadError as e:
        click.echo(f"fastload: error: {e}", err=True)
        sys.exit(2)
    sys.stdout.write(verdict.table())
    if json_path is not None:
        with open(json_path, "w") as f:
            json.dump(verdict.data, f, indent=2)
    sys.exit(1 if verdict.regression else 0)


@main.command("report", context_settings=CONTEXT)
@click.argument("result", metavar="RESULT.json")
@click.argument("baseline", metavar="[BASELINE.json]", required=False)
@click.option("--html", "html_path", default=None, metavar="PATH",
              help="Write a self-contained HTML page (inline SVG, no network needed).")
@click.option("--png", "png_path", default=None, metavar="PATH",
              help="Write the same plots as a PNG (needs matplotlib: pip install 'fastload[report]').")
@click.option("--max-regression", default="5%", show_default=True, metavar="PCT",
              help="Allowed worsening against BASELINE.json, as in `fastload compare`.")
def report_cmd(result: str, baseline: str | None, html_path: str | None,
               png_path: str | None, max_regression: str) -> None:
    """Write an HTML page (--html) and/or PNG (--png) of a result's plots and tables: latency
    by percentile (log percentile axis, from the histogram), requests/s, p99 and errors over
    time, status codes, SLOs, warnings, config and tags. With BASELINE.json its curves are overlaid and a side-by-side table shows the relative
    changes, decided as `fastload compare` does (--max-regression). Exit 0: written,
    2: bad input."""
    from fastload.report import html as report_html
    from fastload.report import plots as report_plots
    from fastload.report import png as report_png
    from fastload.results import merge as combine
    from fastload.results.compare import parse_max_regression

    try:
        if html_path is None and png_path is None:
            raise UsageError("nothing to write: give --html PATH and/or --png PATH")
        limit = parse_max_regression(max_regression)
        if png_path is not None:
            report_png.check_available()
        for flag, path in (("--html", html_path), ("--png", png_path)):
            if path is not None:
                check_writable(path, flag)
        doc = combine.load(result)
        report_plots.check(doc, result)
        base = None
        if baseline is not None:
            base = combine.load(baseline)
            report_plots.check(base, baseline)
        names = (os.path.basename(result), os.path.basename(baseline or ""))
        if names[0] == names[1]:
            names = ("current", "baseline")
        if html_path is not None:
            page = report_html.render_page(doc, base, names, limit)
            with open(html_path, "w", encoding="utf-8") as f:
                f.write(page)
        if png_path is not None:
            report_png.write_png(png_path, doc, base, names)
    except FastloadError as e:
        click.echo(f"fastload: error: {e}", err=True)
        sys.exit(e.exit_code if isinstance(e, UsageError) else 3)


@main.command("agent", context_settings=CONTEXT)
@click.argument("scheduler", metavar="SCHEDULER_ADDRESS")
@click.option("--name", default=None, help="This host's name in results [default: its address].")
@click.option("--cpus", default=None, metavar="LIST",
              help="CPUs for runs that give no --cpus/--numa-node of their own (1, 2-7, 0,2,4).")
@click.option("--numa-node", default=None, type=click.IntRange(min=0), metavar="N",
              help="NUMA node for runs that give no --cpus/--numa-node of their own.")
@click.option("--tls-ca-file", default=None, metavar="FILE", help="CA of the cluster (tls://).")
@click.option("--tls-cert", default=None, metavar="FILE", help="This agent's certificate (tls://).")
@click.option("--tls-key", default=None, metavar="FILE", help="This agent's private key (tls://).")
def agent_cmd(scheduler: str, name: str | None, cpus: str | None, numa_node: int | None,
              tls_ca_file: str | None, tls_cert: str | None, tls_key: str | None) -> None:
    """Serve this host as a load host of `fastload run --cluster`: a Dask worker (one thread,
    resource fastload=1) joined to SCHEDULER_ADDRESS, the scheduler started by `dask scheduler`.
    Runs until Ctrl-C. Each run's share goes through the normal pinned engine here."""
    try:
        try:
            import distributed
        except ImportError:
            raise UsageError("fastload agent needs Dask: pip install 'fastload[cluster]'") from None
        from fastload.cluster import agent

        files = (tls_ca_file, tls_cert, tls_key)
        if any(files) and not all(files):
            raise UsageError("--tls-ca-file, --tls-cert and --tls-key go together")
        for flag, path in zip(("--tls-ca-file", "--tls-cert", "--tls-key"), files, strict=True):
            if path is not None and not os.path.isfile(path):
                raise UsageError(f"{flag}: file {path!r} does not exist")
        security = None
        if all(files):
            security = distributed.Security(tls_ca_file=tls_ca_file, tls_worker_cert=tls_cert,
                                            tls_worker_key=tls_key, require_encryption=True)
        agent.serve(scheduler, name, cpus, numa_node, security,
                    on_joined=lambda line: click.echo(line, err=True))
    except FastloadError as e:
        click.echo(f"fastload: error: {e}", err=True)
        sys.exit(e.exit_code)


@main.command(context_settings=CONTEXT)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int, help="0 picks a free port.")
@click.option("--delay", default="0", show_default=True, help="Delay before each response (e.g. 5ms).")
@click.option("--status", default=200, show_default=True, type=int)
@click.option("--body-size", default=None, type=int,
              help="Response body size in bytes (default: the 12 bytes 'hello world\\n').")
def serve(host: str, port: int, delay: str, status: int, body_size: int | None) -> None:
    """Run the built-in test server (HTTP/1.1 and h2c prior knowledge) on HOST:PORT."""
    from fastload.serve import server as serve_mod

    try:
        delay_s = parse_duration_ns(delay, "--delay", allow_zero=True) / 1e9
        serve_mod.serve_forever(host, port, delay_s, status, body_size)
    except UsageError as e:
        click.echo(f"fastload: error: {e}", err=True)
        sys.exit(e.exit_code)


@main.command("info", context_settings=CONTEXT)
@click.option("--json", "as_json", is_flag=True, help="Print the host description as JSON.")
def info_cmd(as_json: bool) -> None:
    """Describe this host as a load generator sees it: CPUs, NUMA nodes, SMT siblings, affinity,
    frequency governor, how idle CPUs wait (cpuidle, a VM's halt polling), file descriptor
    limit, ephemeral ports, somaxconn, perf/taskset/numactl and whether hardware counters are
    readable."""
    from fastload.host import info as host

    facts = host.info()
    sys.stdout.write(json.dumps(facts, indent=2) + "\n" if as_json else _info_text(facts))


def _info_text(f: dict) -> str:
    from fastload.host.info import format_cpulist

    def show(v: object) -> str:
        return "unknown" if v is None else str(v)

    lines = [f"CPUs:            {format_cpulist(f['cpus'])} ({len(f['cpus'])} online)",
             f"Affinity:        {format_cpulist(f['affinity'])}"]
    for n in f["numa_nodes"]:
        mem = n["memory"]
        size = f", {format_bytes(mem['total_bytes'])}" if mem and "total_bytes" in mem else ""
        lines.append(f"NUMA node {n['node']}:     CPUs {format_cpulist(n['cpus'])}{size}")
    if not f["numa_nodes"]:
        lines.append("NUMA nodes:      unknown (no /sys/devices/system/node)")
    smt = [g for g in f["smt_siblings"] if len(g) > 1]
    lines.append("SMT siblings:    " + (" ".join(format_cpulist(g) for g in smt) if smt else "none"))
    lines.append(f"Governor:        {show(f['governor'])}")
    lines.append(f"CPU idle:        {_idle_text(f['cpu_idle'])}")
    lim = f["rlimit_nofile"]
    soft, hard = ("unlimited" if v is None else v for v in (lim["soft"], lim["hard"]))
    lines.append(f"Open files:      soft {soft}, hard {hard}")
    ports = f["ephemeral_ports"]
    lines.append("Ephemeral ports: " + (f"{ports['low']}-{ports['high']} ({ports['count']})"
                                        if ports else "unknown"))
    lines.append(f"somaxconn:       {show(f['somaxconn'])}")
    lines.append("Tools:           " + ", ".join(f"{t} {'yes' if p else 'no'}" for t, p in f["tools"].items()))
    hw = f["hw_counters"]
    lines.append("HW counters:     " + ("unknown (no perf)" if hw is None else "yes" if hw else "no"))
    tls = f["tls"]
    lines.append("TLS path:        " + (
        f"native (OpenSSL in the core; {tls['openssl']})" if tls["path"] == "native" else
        f"python (uvloop's TLS; {tls['openssl']}): built without OpenSSL's headers"))
    lines.append("Kernel TLS:      " + ("yes" if tls["kernel_tls"] else "no (no tls ULP in this kernel)"))
    return "\n".join(lines) + "\n"


def _idle_text(idle: dict) -> str:
    from fastload.host.info import wakeups_exit_the_vm

    if idle["driver"] is None:
        return "unknown"
    text = f"{idle['driver']} driver, {idle['governor'] or 'unknown'} governor"
    if wakeups_exit_the_vm(idle):
        return text + ("; halts without polling (guest_halt_poll_ns 0): waking an idle CPU costs "
                       "the waker a VM exit")
    if idle["halt_poll_ns"] is not None:
        return text + f"; polls up to {idle['halt_poll_ns'] / 1e3:g}us before halting"
    return text


if __name__ == "__main__":  # pragma: no cover
    main()

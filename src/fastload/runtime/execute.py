"""One load test from options to the finished result document: the single code path behind
`fastload run` and `fastload.run()`. Prints nothing and chooses no exit code: warnings and
progress go to callbacks, bad input is raised as UsageError before any traffic."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastload.config.options import RunOptions
from fastload.config.plan import Plan, plan_from
from fastload.errors import UsageError
from fastload.host import perfstat, placement
from fastload.report import summary
from fastload.results import slo
from fastload.results.document import build_result, first_check_error, to_json
from fastload.runtime import preflight, runner
from fastload.runtime.faults import FaultRun
from fastload.runtime.hooks import Hooks


@dataclass
class Outcome:
    doc: dict
    plan: Plan
    passed: bool  # every SLO held (True without SLOs)
    no_results: bool  # no worker produced results: the CLI exits 3, the API raises RunError
    failed_workers: int
    # Found before the run and already given to on_warning; the rest of doc["warnings"] are new.
    early_warnings: list[str] = field(default_factory=list)
    # The traceback of the first exception a response check raised (for --debug), else None.
    check_traceback: str | None = None

    @property
    def late_warnings(self) -> list[str]:
        return [w for w in self.doc.get("warnings", []) if w not in self.early_warnings]


@dataclass
class Prepared:
    """A run checked and ready: its gates, its Plan (after preflight for a local run) and the
    warnings already given."""

    gates: list[slo.Slo]
    plan: Plan
    early: list[str]


def prepare(options: RunOptions, on_warning: Callable[[str], None] | None,
            place_here: bool = True) -> Prepared:
    """Everything checked before any traffic. place_here False: a --cluster run, where each
    load host places its own workers and checks its own limits."""
    gates = parse_slos(options.slo, options.slo_file)
    for expr in options.recover:
        slo.parse(expr, what="--recover")
    plan = plan_from(options, place_here=place_here)
    slo.check_scopes(gates, [(p.name, p.kind) for p in plan.phases])
    if any(g.metric == "checks" for g in gates) and (plan.mix is None or not plan.mix.has_checks):
        raise UsageError("--slo checks...: no response checks are configured (--check-*, scenario checks)")
    early = (placement.warnings(plan.cpus, plan.server_pid, coalescing=bool(plan.coalesce_ns))
             if place_here else [])
    if plan.windows and not plan.paced and not plan.replay:
        early.append("windows without -R: a closed model slows down with the server and hides the "
                     "latency a fault causes (coordinated omission); -R RATE measures it")
    if place_here:
        preflight.ensure_fd_limit(plan)
        preflight.ensure_ports(plan)
    if plan.perf_stat is not None and place_here:
        plan = dataclasses.replace(plan, perf_stat=perfstat.check(plan.perf_stat))
        if plan.perf_stat.note:
            early.append(plan.perf_stat.note)
    for warning in early:
        if on_warning is not None:
            on_warning(warning)
    return Prepared(gates=gates, plan=plan, early=early)


def execute(options: RunOptions, *, on_warning: Callable[[str], None] | None = None,
            on_progress: Callable[[Any], None] | None = None) -> Outcome:
    """Validates everything, runs the workers, builds the result document, checks the SLOs and
    writes the files asked for (hlog, and the JSON unless json_path is '-', which is the
    caller's stdout)."""
    prep = prepare(options, on_warning)
    plan = prep.plan
    live = server = None
    hooks = Hooks(plan.hooks) if plan.hooks else None
    faults: FaultRun | None = None
    if options.metrics_port is not None:
        # Loaded on use: its HTTP server is --metrics-port's alone.
        from fastload.runtime import metrics

        live = metrics.LiveMetrics(plan)
        server = metrics.MetricsServer(live, options.metrics_port)  # binds now: a taken port is exit 2
    try:
        plan = preflight.preflight(plan)
        if live is not None:
            live.set_plan(plan)
        if plan.faults:
            faults = FaultRun(plan)  # after the pre-flight: ALPN has settled the protocol
            plan, fault_warnings = faults.start()
            prep.early.extend(fault_warnings)
            for warning in fault_warnings:
                if on_warning is not None:
                    on_warning(warning)

        def on_start(start_ns: int) -> None:
            # Run time 0, for hooks and fault windows alike, is the end of the warm-up.
            if faults is not None:
                faults.schedule(start_ns + plan.warmup_ns)
            if hooks is not None:
                hooks.start(start_ns + plan.warmup_ns)

        out = runner.run(
            plan,
            on_progress=both(on_progress, live.on_progress if live is not None else None),
            on_tick=live.on_tick if live is not None else None,
            on_spawned=server.start if server is not None else None,
            on_start=on_start if hooks is not None or faults is not None else None,
        )
    finally:
        if server is not None:
            server.close()
        if faults is not None:
            faults.stop()  # the proxies' last counters; tc's tree removed, whatever happened
        if hooks is not None:
            # Waited for up to --timeout, then killed: a hook never outlives the run by more.
            done = hooks.finish(plan.timeout_ns / 1e9)
    if hooks is not None:
        out.hooks = done
    out.warnings[:0] = prep.early
    doc = build_result(out)
    if faults is not None:
        doc["faults"], late = faults.report()
        if late:
            doc.setdefault("warnings", []).extend(late)
    raised = first_check_error(out.workers)
    return finish(options, prep, plan, doc, out.intervals, no_results=not out.workers,
                  failed_workers=len(out.failed_workers),
                  check_traceback=raised["traceback"] if raised is not None else None)


def finish(options: RunOptions, prep: Prepared, plan: Plan, doc: dict, intervals: list[dict],
           no_results: bool, failed_workers: int, check_traceback: str | None) -> Outcome:
    """The gates checked on the finished document, and the files written (hlog, JSON)."""
    if plan.hdr_log is not None:
        with open(plan.hdr_log, "w") as f:
            f.write(summary.hlog(intervals, doc["started_at"], dict(plan.tags)))
    passed = True
    if prep.gates:
        doc["slo"], passed = slo.check_all(prep.gates, doc)
        doc["passed"] = passed
    if options.json_path not in (None, "-"):
        with open(options.json_path, "w") as f:
            f.write(to_json(doc))
    return Outcome(doc=doc, plan=plan, passed=passed, no_results=no_results,
                   failed_workers=failed_workers, early_warnings=prep.early,
                   check_traceback=check_traceback)


def parse_slos(exprs: Sequence[str], path: str | None) -> list[slo.Slo]:
    all_exprs = list(exprs)
    if path is not None:
        all_exprs += slo.load_file(path)
    return [slo.parse(e) for e in all_exprs]


def both(a: Callable[[Any], None] | None, b: Callable[[Any], None] | None
          ) -> Callable[[Any], None] | None:
    if a is None or b is None:
        return a or b

    def call(p: Any) -> None:
        a(p)
        b(p)

    return call

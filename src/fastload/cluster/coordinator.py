"""`fastload run URL --cluster ADDRESS`: one run over several load hosts (Dask workers started
by `fastload agent`, or a LocalCluster for local:N).

Order: every check before any traffic (options here; then each host's version, placement and
its own pre-flight connection to the target), clocks measured, one start instant translated
into each host's clock, per-second ticks merged for progress and --metrics-port, hosts lost
on the way recorded and never rerun, and the result built by results.merge exactly as
`fastload merge` builds it, plus `hosts`."""

from __future__ import annotations

import dataclasses
import logging
import os
import pickle
import queue
import signal
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import dask
import distributed

from fastload import __version__
from fastload.cluster import agent, clock
from fastload.cluster.split import split_plan
from fastload.config.options import RunOptions
from fastload.config.plan import Placement, Plan
from fastload.errors import RunError, UsageError
from fastload.results.document import hook_warnings, sum_counts
from fastload.results.histogram import encode, merge, summary_us
from fastload.results.merge import merge_documents
from fastload.runtime import runner
from fastload.runtime.execute import Outcome, both, finish, prepare
from fastload.runtime.faults import FaultRun, describe
from fastload.runtime.hooks import Hooks
from fastload.units import parse_count

LOCAL = "local:"
# From the go signal to the start instant: time for the signal to reach every host.
START_MARGIN_S = 0.3
# A host that sends nothing for this long while running is lost (its network is gone even if
# the scheduler has not noticed yet).
SILENCE_S = 5.0
# Beyond the runner's own 2 s stop grace: a stopped host that has not answered by then is lost.
STOP_WAIT_S = 4.0
WAKE: dict = {}  # an event that only wakes the watch loop


@dataclass
class Host:
    index: int
    address: str
    name: str
    facts: dict
    plan: Plan | None = None
    offset: clock.Offset | None = None
    future: Any = None
    ready: dict | None = None
    report: dict | None = None
    lost: str | None = None  # why, once lost
    last_seen: float = 0.0
    ticks: list[tuple[int, int, dict]] = field(default_factory=list)  # (worker, second, tick)


def parse_address(address: str) -> tuple[str, str | int]:
    """("local", N) or (scheme, address) for tcp:// and tls://."""
    if address.startswith(LOCAL):
        n = address[len(LOCAL):]
        if not n.isdigit() or int(n) < 1:
            raise UsageError(f"--cluster {address}: local:N needs N >= 1 agents")
        return "local", int(n)
    parts = urlsplit(address)
    if parts.scheme not in ("tcp", "tls") or not parts.hostname or parts.path not in ("", "/"):
        raise UsageError(f"--cluster: {address!r} must be tcp://HOST:PORT, tls://HOST:PORT or local:N")
    try:
        parts.port  # noqa: B018 - validates the port
    except ValueError:
        raise UsageError(f"--cluster: {address!r} has a bad port") from None
    return parts.scheme, address


def security_for(options: RunOptions, scheme: str) -> distributed.Security | None:
    """Dask's mutual TLS for tls:// (the flags, else Dask's own distributed.comm.tls config)."""
    files = {"--cluster-tls-ca-file": options.cluster_tls_ca_file,
             "--cluster-tls-cert": options.cluster_tls_cert,
             "--cluster-tls-key": options.cluster_tls_key}
    given = {k: v for k, v in files.items() if v is not None}
    if given and scheme != "tls":
        raise UsageError(f"{', '.join(given)}: only for a tls:// --cluster address")
    if scheme != "tls":
        return None
    if given and len(given) < 3:
        missing = [k for k in files if k not in given]
        raise UsageError(f"tls:// needs all three of the CA, certificate and key: {', '.join(missing)} missing")
    for flag, path in given.items():
        if not os.path.isfile(path):
            raise UsageError(f"{flag}: file {path!r} does not exist")
    if given:
        return distributed.Security(tls_ca_file=options.cluster_tls_ca_file,
                                    tls_client_cert=options.cluster_tls_cert,
                                    tls_client_key=options.cluster_tls_key, require_encryption=True)
    sec = distributed.Security()
    if not sec.tls_ca_file:
        raise UsageError("tls:// needs --cluster-tls-ca-file, --cluster-tls-cert and --cluster-tls-key "
                         "(or Dask's distributed.comm.tls configuration)")
    return sec


def execute_cluster(options: RunOptions, *, on_warning: Callable[[str], None] | None = None,
                    on_progress: Callable[[Any], None] | None = None) -> Outcome:
    """The --cluster counterpart of runtime.execute.execute: same checks, same document (the
    exact merge of the hosts' documents), same gates and files."""
    if options.cluster is None:
        raise UsageError("no --cluster address")
    kind, where = parse_address(options.cluster)
    wanted = parse_count(options.hosts, "--hosts") if options.hosts is not None else None
    if kind == "local" and wanted is not None and wanted > where:
        raise UsageError(f"--hosts {wanted} is more than the {where} agents of {options.cluster}")
    security = security_for(options, kind)
    prep = prepare(options, on_warning, place_here=False)
    cluster_warnings: list[str] = []

    def warn(text: str) -> None:
        prep.early.append(text)  # given now: the CLI does not repeat it at the end
        if on_warning is not None:
            on_warning(text)

    if kind == "tcp":
        cluster_warnings.append(f"{options.cluster} is not encrypted and Dask runs pickled code "
                                "that comes over it: use tcp:// on trusted networks only (tls:// otherwise)")
        warn(cluster_warnings[-1])
    _quiet_dask()
    wait_s = max(prep.plan.timeout_ns / 1e9, 1.0)
    with _connect(kind, where, security, wait_s) as client:
        hosts = _agents(client, wanted or (int(where) if kind == "local" else None), wait_s,
                        options.cluster)
        _check_versions(client, hosts)
        plans = _split(client, hosts, prep.plan, options)
        for h, p in zip(hosts, plans, strict=True):
            h.plan = p
            h.offset = clock.measure(lambda h=h: client.run(time.time, workers=[h.address])[h.address])
            w = clock.warning(h.name, h.offset)
            if w is not None:
                cluster_warnings.append(w)
                warn(w)
        live = server = None
        if options.metrics_port is not None:
            from fastload.runtime import metrics  # as runtime.execute: --metrics-port's alone

            live = metrics.LiveMetrics(dataclasses.replace(
                prep.plan, workers=sum(h.plan.workers for h in hosts)))
            server = metrics.MetricsServer(live, options.metrics_port)
            server.start()
        here = _Here(prep.plan)  # the --at hooks and named fault proxies, on this machine
        try:
            here.start()
            run = _Run(client, hosts, prep.plan, warn,
                       both(on_progress, live.on_progress if live is not None else None),
                       live.on_tick if live is not None else None, on_start=here.schedule)
            run.go()
        finally:
            if server is not None:
                server.close()
            here.stop()
    doc = _document(prep.plan, options.cluster, hosts, run, cluster_warnings)
    here.report(doc)
    done = [h for h in hosts if h.report is not None and not h.report["no_results"]]
    return finish(options, prep, _plan_of(prep.plan, hosts, doc), doc, run.intervals,
                  no_results=not done and not any(h.ticks for h in hosts),
                  failed_workers=sum(len(h.report["failed_workers"]) for h in done),
                  check_traceback=None)


def _plan_of(plan: Plan, hosts: list[Host], doc: dict) -> Plan:
    """The Plan as the run went: all hosts' workers, the protocol the hosts negotiated."""
    return dataclasses.replace(plan, workers=sum(h.plan.workers for h in hosts),
                               protocol=doc["target"].get("protocol", plan.protocol))


def _quiet_dask() -> None:
    # Dask logs every worker that joins or leaves; fastload reports what matters itself.
    for name in ("distributed", "distributed.client", "distributed.scheduler", "distributed.worker",
                 "distributed.nanny", "distributed.core", "distributed.comm"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


class _connect:
    """A Client to the scheduler, or to a LocalCluster of agents started for local:N."""

    def __init__(self, kind: str, where: str | int, security: distributed.Security | None,
                 wait_s: float) -> None:
        self.cluster = None
        try:
            if kind == "local":
                dask.config.set(agent.QUIET_WORKER)  # the Nannies pass it to the agents
                self.cluster = distributed.LocalCluster(
                    n_workers=int(where), threads_per_worker=1, processes=True, host="127.0.0.1",
                    resources={agent.RESOURCE: 1}, silence_logs=logging.CRITICAL, scheduler_port=0,
                    # The scheduler always serves HTTP (health, metrics): on a free port, not
                    # on 8787, which another Dask may hold; and no dashboard.
                    dashboard_address=":0", scheduler_kwargs={"dashboard": False})
                self.client = distributed.Client(self.cluster, set_as_default=False)
            else:
                self.client = distributed.Client(str(where), security=security, timeout=wait_s,
                                                 set_as_default=False)
        except (OSError, TimeoutError) as e:
            if self.cluster is not None:
                self.cluster.close()
            raise RunError(f"cannot reach the scheduler at {where}: {_one_line(e)}") from None

    def __enter__(self) -> distributed.Client:
        return self.client

    def __exit__(self, *exc: object) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def _agents(client: distributed.Client, n: int | None, wait_s: float, address: str) -> list[Host]:
    """The first n agents by name (workers with the fastload resource), waiting up to wait_s
    for them to join; n None: all agents present, at least one."""
    deadline = time.monotonic() + wait_s
    while True:
        workers = client.scheduler_info()["workers"]
        found = sorted(((str(w.get("name", a)), a) for a, w in workers.items()
                        if w.get("resources", {}).get(agent.RESOURCE)), key=lambda x: (x[0], x[1]))
        if len(found) >= (n or 1):
            break
        if time.monotonic() > deadline:
            raise RunError(f"{'--hosts ' + str(n) if n else 'the cluster'}: {len(found)} of "
                           f"{n or 1} fastload agent(s) joined {address} within {wait_s:g}s "
                           "(start them with: fastload agent SCHEDULER_ADDRESS)")
        time.sleep(0.2)
    n = n or len(found)
    facts = client.run(agent.facts, workers=[a for _, a in found[:n]], on_error="return")
    hosts = []
    for i, (name, address_) in enumerate(found[:n]):
        f = facts.get(address_)
        if isinstance(f, BaseException) or f is None:
            raise UsageError(f"host {name} ({address_}) does not answer as a fastload agent: "
                             f"{_one_line(f) if f is not None else 'no reply'}")
        hosts.append(Host(index=i, address=address_, name=name, facts=f))
    return hosts


def _check_versions(client: distributed.Client, hosts: list[Host]) -> None:
    for h in hosts:
        if h.facts["version"] != __version__:
            raise UsageError(f"host {h.name} ({h.address}) runs fastload {h.facts['version']}, "
                             f"this is {__version__}: every host must run the same version")


def _split(client: distributed.Client, hosts: list[Host], plan: Plan,
           options: RunOptions) -> list[Plan]:
    """Each host places its workers (its CPUs, --cpus/--numa-node as the run or its agent
    gives them); the totals are then split in proportion."""
    only = RunOptions(url=options.url, workers=options.workers, cpus=options.cpus,
                      numa_node=options.numa_node, pin_mode=options.pin_mode,
                      avoid_cpus=options.avoid_cpus)
    replies = client.run(agent.host_placement, only, workers=[h.address for h in hosts],
                         on_error="return")
    places: list[Placement] = []
    numa: list[int | None] = []
    for h in hosts:
        r = replies.get(h.address)
        if isinstance(r, BaseException) or r is None:
            raise RunError(f"host {h.name}: placement failed: {_one_line(r) if r else 'no reply'}")
        if r[0] == "error":
            raise UsageError(f"host {h.name}: {r[1]}")
        places.append(r[1])
        numa.append(r[2])
    return split_plan(plan, places, numa, [h.name for h in hosts])


class _Here:
    """What a cluster run does where the command was started: the --at hooks and the named
    --fault-proxy proxies (the service under test calls them), on the common start. The
    faults on fastload's own connections run on the hosts (cluster.split gives them theirs)."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.hooks = Hooks(plan.hooks) if plan.hooks else None
        named = tuple(f for f in plan.faults if f.target is not None)
        self.proxies = FaultRun(dataclasses.replace(plan, faults=named, fault_via="proxy")) \
            if plan.fault_proxies else None
        self.done: list[dict] = []

    def start(self) -> None:
        if self.proxies is not None:
            self.proxies.start()  # named proxies only: the plan the hosts run is not changed

    def schedule(self, start_wall: float) -> None:
        """start_wall: the common start on this machine's clock; run time 0 is after warm-up."""
        origin = time.monotonic_ns() + int((start_wall - time.time()) * 1e9) + self.plan.warmup_ns
        if self.proxies is not None:
            self.proxies.schedule(origin)
        if self.hooks is not None:
            self.hooks.start(origin)

    def stop(self) -> None:
        if self.proxies is not None:
            self.proxies.stop()
        if self.hooks is not None:
            self.done = self.hooks.finish(self.plan.timeout_ns / 1e9)

    def report(self, doc: dict) -> None:
        if self.done:
            doc["hooks"] = self.done
            late = hook_warnings(self.done)
            if late:
                doc.setdefault("warnings", []).extend(late)
        if self.plan.faults:
            hosts = {h["name"]: h.pop("faults", None) for h in doc.get("hosts", [])}
            doc["faults"] = {
                "via": self.plan.fault_via,
                "windows": describe(self.plan.faults),
                "proxies": self.proxies.report()[0]["proxies"] if self.proxies is not None else {},
                "hosts": {k: v for k, v in hosts.items() if v is not None},
            }


class _Run:
    """Submits one task per host, starts them together, watches them to the end."""

    def __init__(self, client: distributed.Client, hosts: list[Host], plan: Plan,
                 warn: Callable[[str], None], on_progress: Callable[[Any], None] | None,
                 on_tick: Callable[[int, dict, float], None] | None,
                 on_start: Callable[[float], None] | None = None) -> None:
        self.on_start = on_start
        self.client = client
        self.hosts = hosts
        self.plan = plan
        self.warn = warn
        self.on_progress = on_progress
        self.on_tick = on_tick
        self.run_id = uuid.uuid4().hex[:12]
        self.events: queue.Queue = queue.Queue()
        self.intervals: list[dict] = []
        self.warnings: list[str] = []
        self.interrupted = False
        self.start: float | None = None  # the start instant, coordinator's clock
        self.cpu_s = 0.0  # the coordinator's own CPU from the start to the end
        self.wall_s = 0.0
        self._sigint = False
        self._stop_sent: float | None = None
        self._tick_buf: dict[int, list[dict]] = {}
        self._removed: set[str] = set()  # workers the scheduler removed (its "all" topic)
        self._totals = {"requests": 0, "errors": 0}
        self._worker_base = []
        base = 0
        for h in hosts:
            self._worker_base.append(base)
            base += h.plan.workers

    def go(self) -> None:
        topic = agent.TOPIC_PREFIX + self.run_id
        self.client.subscribe_topic(topic, self.events.put)
        # The scheduler announces a worker it removed on its "all" topic: a lost host is
        # known at once, without polling the scheduler.
        self.client.subscribe_topic("all", self._on_cluster_event)
        prev = self._trap_sigint()
        try:
            for h in self.hosts:
                h.future = self.client.submit(
                    agent.run_host, self.run_id, h.index, h.plan, key=f"fastload-{self.run_id}-{h.index}",
                    workers=[h.address], allow_other_workers=False, resources={agent.RESOURCE: 1},
                    pure=False, retries=0)
                h.future.add_done_callback(self._wake)
            self._await_ready()
            if not self._sigint:
                self._start()
                self._watch()
        finally:
            self._restore_sigint(prev)
            self.client.unsubscribe_topic(topic)
            self.client.unsubscribe_topic("all")
            for h in self.hosts:
                if h.future is not None and not h.future.done():
                    h.future.cancel()  # never runs anywhere else

    # -- phases

    def _await_ready(self) -> None:
        deadline = time.monotonic() + max(runner.READY_TIMEOUT_S, 2 * self.plan.timeout_ns / 1e9)
        while not all(h.ready or h.lost for h in self.hosts):
            self._pump(0.05)
            for h in self.hosts:
                if h.ready is None and h.future.done():
                    self._stop_all()
                    self._raise_for(h)
            if self._sigint:
                self.interrupted = True
                self._stop_all()
                self._drain(time.monotonic() + STOP_WAIT_S)
                return
            if time.monotonic() > deadline:
                self._stop_all()
                late = [h.name for h in self.hosts if not h.ready]
                raise RunError(f"host(s) {', '.join(late)} did not get ready within "
                               f"{deadline - time.monotonic() + runner.READY_TIMEOUT_S:.0f}s")
        if all(h.lost for h in self.hosts):
            raise RunError("every host was lost before the start")

    def _raise_for(self, h: Host) -> None:
        result = _result(h.future)
        if result is not None and result["kind"] == "error":
            code, message = result["body"]
            cls = UsageError if code == 2 else RunError
            raise cls(f"host {h.name}: {message}")
        raise RunError(f"host {h.name}: its task ended before it was ready "
                       f"({_one_line(h.future.exception()) if h.future.status == 'error' else h.future.status})")

    def _start(self) -> None:
        worst = max(h.offset.uncertainty_s for h in self.hosts if not h.lost)
        now = time.time()
        # --start-at, if given and not too near, else now plus the time the signal needs.
        self.start = max(self.plan.start_at or 0.0, now + START_MARGIN_S + 2 * worst)
        for h in self.hosts:
            if not h.lost:
                self._send(h, ("go", h.offset.to_host(self.start)))
                h.last_seen = time.monotonic() + (self.start - now)  # silent until it starts
        if self.on_start is not None:
            self.on_start(self.start)

    def _watch(self) -> None:
        cpu0, wall0 = time.process_time(), time.monotonic()
        while not all(h.report is not None or h.lost for h in self.hosts):
            self._pump(1.0)
            now = time.monotonic()
            for h in self.hosts:
                if h.report is None and not h.lost and h.future.done():
                    result = _result(h.future)
                    if result is not None and result["kind"] == "done":
                        h.report = result["body"][0]
                    else:
                        why = (result["body"][1] if result is not None else
                               f"its task ended ({h.future.status})")
                        self._lose(h, why)
            if self._sigint and self._stop_sent is None:
                self.interrupted = True
                self._stop_all()
            for h in self.hosts:
                if h.address in self._removed and h.report is None and not h.lost:
                    self._lose(h, "its agent left the cluster")
            for h in self.hosts:
                if h.report is None and not h.lost and not h.future.done():
                    if now - h.last_seen > SILENCE_S:
                        self._lose(h, f"nothing heard from it for {SILENCE_S:g}s")
                    elif self._stop_sent is not None and now - self._stop_sent > STOP_WAIT_S:
                        self._lose(h, f"it did not stop within {STOP_WAIT_S:g}s of the stop request")
        self.cpu_s = time.process_time() - cpu0
        self.wall_s = time.monotonic() - wall0
        self._flush_ticks()

    def _drain(self, deadline: float) -> None:
        while time.monotonic() < deadline and not all(h.future.done() or h.lost for h in self.hosts):
            self._pump(0.05)

    # -- signals and events

    def _send(self, h: Host, message: tuple) -> None:
        try:
            self.client.run(agent.deliver, self.run_id, message, workers=[h.address], on_error="ignore")
        except (OSError, TimeoutError, KeyError):
            pass  # a host that cannot be reached is found lost by the watch

    def _stop_all(self) -> None:
        self._stop_sent = time.monotonic()
        for h in self.hosts:
            if not h.lost and h.report is None:
                self._send(h, ("stop",))

    def _lose(self, h: Host, why: str) -> None:
        h.lost = why
        h.future.cancel()  # restricted to its own address: it would never run elsewhere anyway
        message = f"host {h.name} ({h.address}) lost: {why}; its share is not rerun, results are from the others"
        self.warnings.append(message)
        self.warn(message)

    def _pump(self, timeout: float) -> None:
        try:
            event = self.events.get(timeout=timeout)
        except queue.Empty:
            return
        while True:
            self._event(event[1])
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                return

    def _on_cluster_event(self, event: tuple) -> None:
        # Runs in the Client's event loop thread: a set add, read by the watch loop.
        msg = event[1]
        if isinstance(msg, dict) and msg.get("action") == "remove-worker":
            self._removed.add(msg.get("worker"))
            self._wake()

    def _wake(self, *_: object) -> None:
        """Wakes the watch loop, which otherwise sleeps until the next tick (or 1 s): the
        coordinator's CPU is to be negligible, so it does not poll."""
        self.events.put((0.0, WAKE))

    def _event(self, msg: dict) -> None:
        if msg is WAKE:
            return
        h = self.hosts[msg["host"]]
        if h.lost:
            return
        data = pickle.loads(msg["data"])
        h.last_seen = time.monotonic()
        if data[0] == "ready":
            h.ready = data[1]
        elif data[0] == "tick":
            _, worker, second, tick = data
            h.ticks.append((worker, second, tick))
            self._totals["requests"] += tick["requests"]
            self._totals["errors"] += tick["errors"]
            if self.on_tick is not None:
                self.on_tick(self._worker_base[h.index] + worker, tick, float(second))
            buf = self._tick_buf.setdefault(second, [])
            buf.append(tick)
            expected = sum(x.plan.workers for x in self.hosts if not x.lost)
            if len(buf) >= expected:
                self._emit(second, self._tick_buf.pop(second))

    def _emit(self, second: int, ticks: list[dict]) -> None:
        interval = runner.merge_ticks(second, ticks)
        self.intervals.append(interval)
        if self.on_progress is not None:
            self.on_progress(runner.Progress(
                elapsed_s=second, rps=interval["requests"], p99_us=interval["p99_us"],
                errors=self._totals["errors"], requests=self._totals["requests"], interval=interval))

    def _flush_ticks(self) -> None:
        for second in sorted(self._tick_buf):
            self.intervals.append(runner.merge_ticks(second, self._tick_buf[second]))
        self._tick_buf.clear()
        self.intervals.sort(key=lambda x: x["t"])

    def _trap_sigint(self) -> object:
        if threading.current_thread() is not threading.main_thread():
            return None

        def on_sigint(signum: int, frame: object) -> None:  # noqa: ARG001
            self._sigint = True
            self._wake()

        return (signal.signal(signal.SIGINT, on_sigint), signal.signal(signal.SIGTERM, on_sigint))

    def _restore_sigint(self, prev: object) -> None:
        if prev is not None:
            signal.signal(signal.SIGINT, prev[0])
            signal.signal(signal.SIGTERM, prev[1])


def _result(future: Any) -> dict | None:
    if future.status != "finished":
        return None
    try:
        return future.result(timeout=5)
    except Exception:  # noqa: BLE001 - a task that failed is reported as such by the caller
        return None


def _document(plan: Plan, address: str, hosts: list[Host], run: _Run,
              cluster_warnings: list[str]) -> dict:
    """The hosts' documents on the coordinator's clock, merged as `fastload merge` does; a lost
    host contributes what its ticks told before it was lost."""
    docs, entries, warnings = [], [], list(cluster_warnings) + run.warnings
    for h in hosts:
        doc = None
        skew_ms = None
        if h.report is not None and not h.report["no_results"]:
            doc = h.report["doc"]
            doc["started_at"] = h.offset.from_host(doc["started_at"])
            if h.report["start_lag_s"] is not None and run.start is not None:
                skew_ms = (doc["started_at"] + h.report["start_lag_s"] - run.start) * 1e3
            warnings += [f"host {h.name}: {w}" for w in doc.get("warnings", [])]
        elif h.lost and h.ticks and run.start is not None:
            doc = _partial(plan, h, run.start)
        if doc is not None:
            docs.append(doc)
        cpus = h.report["cpus"] if h.report is not None else sorted(
            {c for g in h.plan.cpus for c in g})
        requests = doc["requests"] if doc is not None else 0
        entries.append({
            "name": h.name, "address": h.address, "cpus": cpus, "workers": h.plan.workers,
            "requests": requests, "errors": doc["errors"]["total"] if doc is not None else 0,
            "rps": doc["rps"] if doc is not None else 0.0,
            "clock_offset_ms": h.offset.offset_s * 1e3,
            "clock_uncertainty_ms": h.offset.uncertainty_s * 1e3,
            "start_skew_ms": skew_ms, "lost": h.lost is not None,
            **({"lost_reason": h.lost} if h.lost else {}),
            "hostname": h.facts.get("hostname"),
            "histogram": doc["histogram"] if doc is not None else None,
            **({"faults": doc["faults"]} if doc is not None and "faults" in doc else {}),
        })
    if not docs:
        if all(h.lost for h in hosts):
            raise RunError("every host was lost: no results")
        merged = _empty(plan)
    else:
        merged = merge_documents(docs)
    merged["config"] = {**plan.config(), "workers": sum(h.plan.workers for h in hosts),
                        "cpus": [e["cpus"] for e in entries], "cluster": address,
                        "hosts": len(hosts)}
    merged.pop("merged_from", None)
    lost = any(h.lost for h in hosts)
    merged["interrupted"] = run.interrupted or merged.get("interrupted", False)
    merged["complete"] = merged.get("complete", True) and not lost and not run.interrupted
    merged["hosts"] = entries
    merged["worker_errors"] = [{**e, "host": h.name} for h in hosts if h.report is not None
                               for e in h.report["failed_workers"]]
    per_min = run.cpu_s / len(hosts) / (run.wall_s / 60) if run.wall_s > 0 else None
    merged["cluster"] = {"address": address, "run_id": run.run_id, "hosts": len(hosts),
                         "coordinator_cpu_s": run.cpu_s, "coordinator_wall_s": run.wall_s,
                         "coordinator_cpu_s_per_host_per_min": per_min}
    if warnings:
        merged["warnings"] = warnings
    return merged


def _partial(plan: Plan, h: Host, start: float) -> dict:
    """A lost host's document from the ticks it sent: its requests, histogram, errors and
    status codes up to its last tick (the totals its workers carried in them)."""
    hist = merge([t["histogram"] for _, _, t in h.ticks])
    requests = sum(t["requests"] for _, _, t in h.ticks)
    last: dict[int, dict] = {}
    for worker, _, t in h.ticks:
        last[worker] = t
    errors = sum_counts(t.get("error_counts", {}) for t in last.values())
    seconds = max(s for _, s, _ in h.ticks)
    timeline = []
    for second in sorted({s for _, s, _ in h.ticks}):
        timeline.append(runner.merge_ticks(second, [t for _, s, t in h.ticks if s == second]))
    return {"target": {"url": plan.target.url, "protocol": plan.protocol}, "started_at": start,
            "duration_s": max(seconds, 1), "requests": requests, "rps": requests / max(seconds, 1),
            "histogram": encode(hist), "latency_us": summary_us(hist),
            "errors": {"total": sum(errors.values()), **errors},
            "status_codes": sum_counts(t.get("status_codes", {}) for t in last.values()),
            "timeline": timeline, "complete": False}


def _empty(plan: Plan) -> dict:
    return merge_documents([{"target": {"url": plan.target.url, "protocol": plan.protocol},
                             "started_at": time.time(), "duration_s": 0.0, "requests": 0,
                             "histogram": None, "latency_us": {}, "errors": {"total": 0}}])

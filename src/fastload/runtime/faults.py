"""The faults of one run, on the run's clock: the fault proxies (a child process; fastload's
own connections go through the one in front of the URL) or the netem windows on a device.
Started before the workers, scheduled from the end of the warm-up (run time 0), stopped after
the run, also after an exception or Ctrl-C; what they did goes into the document's `faults`."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING

from fastload.config.plan import Plan
from fastload.faults import spec as fault_spec
from fastload.faults.spec import FaultSpec

if TYPE_CHECKING:
    from fastload.faults.netem import Netem
    from fastload.faults.proxy import ProxyProcess


class FaultRun:
    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.proxies: ProxyProcess | None = None
        self.netem: Netem | None = None
        self.listen: dict[str, tuple[str, int]] = {}
        self.final: dict = {}

    def start(self) -> tuple[Plan, list[str]]:
        """Before any traffic: the proxies listening (or the tc tree installed). Returns the
        plan the workers run (connecting to the proxy in front of the URL, if any) and
        warnings. A problem is a UsageError or FastloadError: nothing was sent."""
        plan = self.plan
        # ALPN has settled the protocol of an https:// URL by now.
        fault_spec.check_protocol(plan.faults, plan.protocol)
        t = plan.target
        if plan.fault_via == "netem":
            from fastload.faults.netem import Netem

            self.netem = Netem(plan.faults, t.host, t.port, plan.fault_dev)
            return plan, self.netem.install()
        from fastload.faults.proxy import LOAD_PATH, ProxyProcess, proxies_for

        self.proxies = ProxyProcess(proxies_for(plan.faults, plan.fault_proxies, t.host, t.port),
                                    seed=plan.seed)
        self.listen = self.proxies.start()
        if LOAD_PATH in self.listen:
            plan = dataclasses.replace(plan, connect_to=self.listen[LOAD_PATH])
        return plan, []

    def schedule(self, t0_ns: int) -> None:
        """Run time 0 is t0_ns on CLOCK_MONOTONIC (the end of the warm-up)."""
        if self.netem is not None:
            self.netem.schedule(t0_ns)
        if self.proxies is not None:
            self.proxies.schedule(t0_ns)

    def stop(self) -> None:
        if self.netem is not None:
            self.netem.remove()
        if self.proxies is not None:
            self.final = self.proxies.stop()
            self.proxies = None

    def report(self) -> tuple[dict, list[str]]:
        """The document's `faults` section, and warnings (tc failures during the run)."""
        plan = self.plan
        out: dict = {"via": plan.fault_via, "windows": describe(plan.faults)}
        warnings: list[str] = []
        if self.netem is not None:
            out["device"] = self.netem.dev
            out["applied"] = self.netem.applied
            out["errors"] = self.netem.errors
            warnings += [f"--fault-via netem: {e}" for e in self.netem.errors]
        else:
            out["proxies"] = {name: {**self.final.get(name, {}), "listen": f"{h}:{p}"}
                              for name, (h, p) in self.listen.items()}
        return out, warnings


def describe(faults: Sequence[FaultSpec]) -> list[dict]:
    """The `faults.windows` of the result document."""
    return [{"name": f.name, "spec": f.spec, "kind": f.kind, "target": f.target,
             "start_s": f.start_ns / 1e9, "end_s": f.end_ns / 1e9} for f in faults]

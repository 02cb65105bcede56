"""A real Dask cluster for tests: `dask scheduler` and `fastload agent` processes (optionally
each agent in its own network namespace), started and torn down by the tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from support.peers import free_port


def _env() -> dict[str, str]:
    # The installed fastload, as the tests' own `python -m fastload` uses: the checkout's src/
    # has no compiled extension unless it was built in place.
    return dict(os.environ)


class Process:
    """A child process with its output in a file; killed (its whole group) on stop()."""

    def __init__(self, name: str, cmd: list[str], workdir: Path) -> None:
        self.name = name
        self.log = workdir / f"{name}.log"
        self._out = open(self.log, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self._out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True, env=_env())

    def wait_for(self, text: str, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if text in self.log.read_text(errors="replace"):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"{self.name}: no {text!r} within {timeout_s}s "
                           f"(exit {self.proc.poll()}):\n{self.output()[-3000:]}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._out.close()


class DaskCluster:
    """`dask scheduler` on host:port plus agents added with agent()."""

    def __init__(self, host: str = "127.0.0.1", tls: dict[str, str] | None = None) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="fastload-cluster-")
        self.dir = Path(self._tmp.name)
        self.port = free_port(host)
        self.tls = tls
        self.address = f"{'tls' if tls else 'tcp'}://{host}:{self.port}"
        cmd = [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", host,
               "--port", str(self.port), "--no-dashboard", "--no-show"]
        if tls:
            cmd += ["--tls-ca-file", tls["ca"], "--tls-cert", tls["cert"], "--tls-key", tls["key"]]
        self.scheduler = Process("scheduler", cmd, self.dir)
        self.agents: list[Process] = []
        try:
            self.scheduler.wait_for("Scheduler at:")
        except BaseException:
            self.stop()
            raise

    def agent(self, name: str, netns: str | None = None, *extra: str) -> Process:
        cmd = [sys.executable, "-m", "fastload", "agent", self.address, "--name", name, *extra]
        if self.tls:
            cmd += ["--tls-ca-file", self.tls["ca"], "--tls-cert", self.tls["cert"],
                    "--tls-key", self.tls["key"]]
        if netns is not None:
            cmd = ["ip", "netns", "exec", netns, *cmd]
        p = Process(f"agent-{name}", cmd, self.dir)
        self.agents.append(p)
        p.wait_for(f"fastload agent {name}: joined")
        return p

    def stop(self) -> None:
        for p in self.agents:
            p.kill(signal.SIGTERM)
        self.scheduler.kill(signal.SIGTERM)
        self._tmp.cleanup()

    def __enter__(self) -> DaskCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Namespaces:
    """Network namespaces on one bridge, addresses from 198.18.0.0/15 (RFC 2544's benchmark
    range): the bridge has .1, namespace i has .(i + 2). Removed on close()."""

    def __init__(self, count: int, net: str = "198.18.0") -> None:
        tag = uuid.uuid4().hex[:5]
        self.bridge = f"flbr{tag}"
        self.host_ip = f"{net}.1"
        self.names = [f"flns{tag}{i}" for i in range(count)]
        self.ips = [f"{net}.{i + 2}" for i in range(count)]
        self._veths: list[str] = []
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
            _ip("addr", "add", f"{self.host_ip}/24", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
            for i, (ns, addr) in enumerate(zip(self.names, self.ips, strict=True)):
                outer, inner = f"flv{tag}{i}", f"flp{tag}{i}"
                _ip("netns", "add", ns)
                _ip("link", "add", outer, "type", "veth", "peer", "name", inner)
                self._veths.append(outer)
                _ip("link", "set", outer, "master", self.bridge)
                _ip("link", "set", outer, "up")
                _ip("link", "set", inner, "netns", ns)
                _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", inner)
                _ip("-n", ns, "link", "set", inner, "up")
                _ip("-n", ns, "link", "set", "lo", "up")
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        for ns in self.names:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        for v in self._veths:
            subprocess.run(["ip", "link", "del", v], capture_output=True)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)

    def __enter__(self) -> Namespaces:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)

"""Reference servers for the benchmarks.

The launchers live with the test suite (tests/support/peers.py). Bench does not import test
code: it runs that file as a program, which starts one server, prints its URL and pid as one
JSON line, and stops the server when its stdin closes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PEERS = REPO / "tests" / "support" / "peers.py"


def have(binary: str) -> bool:
    return shutil.which(binary) is not None


def checkout_env() -> dict[str, str]:
    """The environment with this checkout's src/ first on PYTHONPATH (whatever is installed)."""
    return dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")])))


class Server:
    """``Server("nginx", cpu=0, "--no-access-log")``: a running reference server (see
    ``python tests/support/peers.py --help`` for the kinds); a context manager."""

    def __init__(self, kind: str, *options: str, cpu: int | None = None,
                 wrap: tuple[str, ...] = ()):
        # wrap: a command prefix, e.g. ("ip", "netns", "exec", NS) to start it in a namespace.
        cmd = [*wrap, sys.executable, str(PEERS), kind, *options]
        if cpu is not None:
            cmd += ["--cpu", str(cpu)]
        self.kind = kind
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line:
            raise RuntimeError(f"{kind}: server did not start (exit {self.proc.wait()})")
        info = json.loads(line)
        self.url: str = info["url"]
        self.pid: int = info["pid"]  # the server process itself, for --server-pid
        self.cert_path: str | None = info["cert"]

    def stop(self) -> None:
        if self.proc.stdin and not self.proc.stdin.closed:
            self.proc.stdin.close()  # the launcher stops the server and exits
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            self.proc.wait()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

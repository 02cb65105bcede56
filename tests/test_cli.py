"""The command line as a user sees it: help, version, live progress only on a terminal."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time

from click.testing import CliRunner

from fastload import __version__
from fastload.cli import main


def test_version_and_help_document_every_option():
    r = CliRunner().invoke(main, ["--version"])
    assert r.exit_code == 0 and __version__ in r.output
    r = CliRunner().invoke(main, ["run", "--help"])
    assert r.exit_code == 0
    for flag in ("--connections", "--streams", "--pipeline", "--duration", "--requests", "--warmup",
                 "--timeout", "--workers", "--cpus", "--protocol", "--h2c", "--insecure", "--ca",
                 "--method", "--header", "--body", "--body-file", "--json", "--quiet", "--perf-stat"):
        assert flag in r.output, flag


def test_summary_without_progress_when_not_a_tty(nginx_h1):
    p = subprocess.run([sys.executable, "-m", "fastload", "run", nginx_h1.url, "-d", "2s", "-c", "2",
                        "-w", "1"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "Requests/sec:" in p.stdout and "Latency" in p.stdout
    assert "req/s" not in p.stderr and "\r" not in p.stderr


def test_live_progress_on_a_tty(nginx_h1):
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "fastload", "run", nginx_h1.url, "-d", "3s", "-c", "2",
                             "-w", "1"], stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            r, _, _ = select.select([master], [], [], 0.5)
            if r:
                try:
                    chunk = os.read(master, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                seen += chunk
            elif proc.poll() is not None:
                break
        out = proc.communicate(timeout=30)[0]
    finally:
        os.close(master)
    assert proc.returncode == 0
    assert b"req/s" in seen and b"p99" in seen and b"errors" in seen
    assert b"Requests/sec:" in out


def test_serve_on_a_port_in_use_exits_2_with_one_line():
    import socket

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        p = subprocess.run([sys.executable, "-m", "fastload", "serve", "--port", str(port)],
                           capture_output=True, text=True, timeout=30)
    assert p.returncode == 2
    assert p.stderr == f"fastload: error: cannot listen on 127.0.0.1:{port}: address already in use\n"
    assert p.stdout == ""


def test_serve_bad_delay_exits_2_with_one_line():
    p = subprocess.run([sys.executable, "-m", "fastload", "serve", "--port", "0", "--delay", "soon"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2
    assert p.stderr == "fastload: error: --delay: 'soon' is not a duration (examples: 500ms, 10s, 2m)\n"


ENTRY = """
import atexit, gc, json, sys
state = sys.argv[1]
def report():
    with open(state, "w") as f:
        json.dump({"enabled": gc.isenabled(), "frozen": gc.get_freeze_count()}, f)
atexit.register(report)
sys.argv = ["fastload", *sys.argv[2:]]
from fastload.cli import entry
entry()
"""


def test_the_command_exits_fast_and_loses_nothing(nginx_h1, tmp_path):
    """`fastload` skips the interpreter's teardown (its CPU is the run's): atexit handlers still
    run, piped output is whole, exit codes hold; a run's start-up objects are frozen out of
    collection with collection on, and other commands leave collection as it was."""
    state = tmp_path / "gc.json"
    p = subprocess.run([sys.executable, "-c", ENTRY, str(state), "run", nginx_h1.url, "-n", "200",
                        "-c", "2", "-w", "1", "--json", "-", "-q"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["requests"] == 200
    gc_state = json.loads(state.read_text())
    assert gc_state["enabled"] and gc_state["frozen"] > 10_000, gc_state

    p = subprocess.run([sys.executable, "-c", ENTRY, str(state), "run", nginx_h1.url, "-n", "20",
                        "-c", "1", "-w", "1", "--slo", "p99<1us"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1, p.stderr
    assert "Requests/sec:" in p.stdout

    p = subprocess.run([sys.executable, "-c", ENTRY, str(state), "run", "ftp://x/"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "error" in p.stderr

    p = subprocess.run([sys.executable, "-c", ENTRY, str(state), "info", "--json"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and json.loads(p.stdout)
    assert json.loads(state.read_text()) == {"enabled": True, "frozen": 0}

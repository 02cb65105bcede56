"""Soak: a long run with RSS per worker sampled every interval (not a test; 10 min default).

    python3 bench/soak.py [--minutes 10] [--interval 60] [--protocol h1|h2]

Starts nginx (h1) or h2o (h2c) on CPU 0, runs `fastload run -d MINUTES` with 2 workers on CPU 1,
reads each worker's VmRSS from /proc every interval and prints a table; growth beyond noise
means a leak (histograms are fixed-size, sessions reuse their buffers).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time

from servers import Server


def rss_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--interval", type=float, default=60)
    ap.add_argument("--protocol", choices=["h1", "h2"], default="h1")
    args = ap.parse_args(argv)
    server = Server("nginx" if args.protocol == "h1" else "h2o", "--no-access-log", cpu=0)
    extra = ["--h2c", "-c", "8", "-m", "32"] if args.protocol == "h2" else ["-c", "64"]
    with server:
        proc = subprocess.Popen(["taskset", "-c", "1", sys.executable, "-m", "fastload", "run", server.url,
                                 *extra, "-w", "2", "-d", f"{args.minutes * 60:.0f}s", "--json", "-",
                                 "--quiet"], stdout=subprocess.PIPE, text=True)
        # taskset execs python, so the fastload parent is proc.pid itself. Its JSON (with the
        # per-second histograms) can outgrow a pipe buffer: read it while the run goes on.
        chunks: list[str] = []
        reader = threading.Thread(target=lambda: chunks.append(proc.stdout.read()), daemon=True)
        reader.start()
        start = time.monotonic()
        samples: list[tuple[float, list[int | None]]] = []
        while proc.poll() is None:
            time.sleep(min(args.interval, 5) if not samples else args.interval)
            workers = children(proc.pid)
            if workers:
                samples.append((time.monotonic() - start, [rss_kb(w) for w in workers]))
                print(f"{samples[-1][0]:7.0f}s  RSS per worker (KiB): {samples[-1][1]}", flush=True)
        proc.wait()
        reader.join()
        doc = json.loads("".join(chunks))
    print(f"requests {doc['requests']:,}  rps {doc['rps']:,.0f}  errors {doc['errors']['total']}")
    if len(samples) >= 2:
        first, last = samples[0][1], samples[-1][1]
        growth = [(b or 0) - (a or 0) for a, b in zip(first, last, strict=False)]
        print(f"RSS growth from first to last sample (KiB): {growth}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

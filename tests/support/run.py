"""Running the fastload CLI as a subprocess and checking its JSON result document."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hdrh.histogram import HdrHistogram

RUN_TIMEOUT_S = 120


def fastload(*args: str, timeout: float = RUN_TIMEOUT_S) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fastload", *args], capture_output=True, text=True,
                          timeout=timeout)


def run_json(*args: str) -> dict:
    p = fastload("run", *args, "--json", "-", "--quiet")
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def check_document(doc: dict, requests: int) -> None:
    assert doc["schema"] == "fastload.result/1"
    assert doc["requests"] == requests
    assert sum(doc["status_codes"].values()) == requests
    h = HdrHistogram.decode(doc["histogram"])
    assert h.get_total_count() == requests
    lat = doc["latency_us"]
    assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p99.9"] <= lat["p99.99"]
    assert lat["p99.99"] <= lat["max"] * 1.001 + 1
    assert set(doc["errors"]) == {"total", "connect", "timeout", "reset", "protocol", "check_failed",
                                 "check_error"}
    assert doc["rps"] == pytest.approx(requests / doc["duration_s"])

"""The README's pytest perf-regression example, run as it is printed there: it records a
baseline, passes against it, and fails when the baseline was faster."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import fastload

README = Path(__file__).resolve().parent.parent / "README.md"
MARKER = "<!-- perf-test-example -->"


def example_code() -> str:
    text = README.read_text()
    assert MARKER in text, "the README lost its perf test example"
    block = text[text.index(MARKER):]
    start = block.index("```python\n") + len("```python\n")
    return block[start:block.index("```\n", start)]


def pytest_run(path: Path) -> subprocess.CompletedProcess:
    # The example runs from its own directory: the fastload under test must come first on the
    # path by absolute name (a relative PYTHONPATH=src would not resolve from there).
    here = str(Path(fastload.__file__).resolve().parent.parent)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")])))
    # -p no:cacheprovider: nothing written next to the example but what it writes itself.
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
                           str(path)], capture_output=True, text=True, timeout=240,
                          cwd=path.parent, env=env)


def test_readme_perf_example_records_passes_and_catches_a_regression(tmp_path):
    example = tmp_path / "test_perf.py"
    example.write_text(example_code())
    baseline = tmp_path / "perf_baseline.json"

    first = pytest_run(example)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "1 passed, 1 skipped" in first.stdout
    assert "baseline recorded" in first.stdout
    doc = json.loads(baseline.read_text())
    assert doc["schema"] == "fastload.result/1" and doc["requests"] > 0

    second = pytest_run(example)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "2 passed" in second.stdout

    # A baseline from a server ten times faster: the same test must now fail on rps.
    doc["rps"] *= 10
    for iv in doc["timeline"]:
        iv["rps"] *= 10
    baseline.write_text(json.dumps(doc))
    third = pytest_run(example)
    assert third.returncode == 1, third.stdout + third.stderr
    assert "1 failed, 1 passed" in third.stdout
    assert "REGRESSION" in third.stdout

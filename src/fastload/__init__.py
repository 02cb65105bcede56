"""fastload: a load generator with a native hot path.

    from fastload import run, compare, Result
    result = run("http://127.0.0.1:8080/", connections=8, duration="5s", slo=["p99<50ms"])
"""

from __future__ import annotations

import importlib
from typing import Any

from fastload.errors import FastloadError, RunError, UsageError

__version__ = "0.1.0"

# Resolved on first use, so that importing a light part of the package (fastload.results for
# merge/compare/report, fastload.errors) never loads the engine and its native extension.
_API = {"run": "fastload.api", "compare": "fastload.results.view",
        "Result": "fastload.results.view", "Verdict": "fastload.results.view"}

__all__ = ["run", "compare", "Result", "Verdict", "FastloadError", "UsageError", "RunError",
           "__version__"]


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'fastload' has no attribute {name!r}")
    value = getattr(importlib.import_module(_API[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))

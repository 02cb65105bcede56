"""The package's structure, enforced: imports run one way between subpackages, no module
imports another in a cycle, imports sit at module level (except optional extras, a few heavy
features loaded where they are used, and the CLI's commands), and the JSON-only commands work
without the native extension."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import fastload

SRC = Path(fastload.__file__).parent
# Third-party modules that are optional extras: importing them inside a function is how an
# extra stays optional.
OPTIONAL = ("matplotlib", "grpc_tools", "google.protobuf", "dask", "distributed", "qh3",
            "fastload.grpc.proto")
# Loaded where a feature is used, because every run would otherwise pay for them at start-up
# (measured: importing aioquic costs ~0.2 s of CPU, which a 3 s benchmark counts in its CPU
# per request). Each is named here with its reason; nothing else is.
LOAD_ON_USE = {
    "fastload.h3": "HTTP/3 on aioquic or qh3: only --protocol h3 runs import it",
    "fastload.runtime.metrics": "its HTTP server: only --metrics-port runs need it",
    "yaml": "only a scenario or SLO file that is not JSON is parsed as YAML",
    "fastload.cluster": "the cluster extra (Dask): only --cluster runs import it",
    "aioquic": "an HTTP/3 run imports only the QUIC library it runs on (--h3-backend)",
    # Measured as what each adds to a plain run's imports (median of 7, this 2-core VM):
    # together with the HdrHistogram layout tables no longer built, 0.1 s of CPU per run.
    "fastload.faults.proxy": "only --fault runs through the proxy: 11.6 ms",
    "fastload.faults.netem": "only --fault-via netem runs: 5.6 ms",
    "fastload.workload.replay": "only --replay runs (csv): 10.9 ms with the scenario parser",
    "fastload.workload.scenario": "only --scenario and --replay runs: 6.2 ms",
    "fastload.results.view": "the API's result objects: `fastload run` never needs them: 10.3 ms",
}
# What each part of the package may import from the rest of it (besides itself). Reading the
# table from the bottom up gives the layers: errors/units, results, report, ..., api/cli.
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "units": {"errors"},
    "results": {"errors", "units", "version"},
    "report": {"results", "errors", "units", "version"},
    "config.syntax": {"errors"},
    "config.options": {"errors"},
    "host": {"results", "errors", "units"},
    "grpc": {"errors"},
    "workload": {"config.syntax", "results", "errors", "units", "version"},
    "native": {"workload", "errors"},
    "config.plan": {"config.options", "config.rates", "config.syntax", "config.windows", "faults", "workload",
                    "grpc", "host", "errors", "units"},
    "config.windows": {"errors", "units"},
    "config.rates": {"errors", "units"},
    "h3": {"native", "config.plan", "workload", "errors"},
    "serve": {"errors", "units", "version"},
    # Fault injection stands alone: nothing imports it yet (the run will, to start its proxies
    # and netem windows), and it needs only the syntax of what users type.
    "faults": {"config.syntax", "units", "errors"},
    "runtime": {"native", "h3", "config.plan", "config.options", "config.windows", "workload", "host", "results", "faults",
                "report", "errors", "units", "version"},
    "cluster": {"runtime", "config.plan", "config.options", "faults", "host", "results", "errors", "units",
                "version"},
    "api": {"cluster", "runtime", "results", "config.options", "errors"},
    "cli": {"cluster", "runtime", "results", "report", "config.options", "host", "serve", "errors",
            "units", "version", "api"},
    "__main__": {"cli"},
    "__init__": {"errors"},
}


def _part(module: str) -> str:
    """fastload.config.plan -> 'config.plan'; fastload.results.merge -> 'results'."""
    rest = module.split(".")[1:]
    if not rest:
        return "version"  # `from fastload import __version__`
    if rest[0] == "config" and len(rest) > 1:
        return "config." + rest[1]
    return rest[0]


def _modules() -> dict[str, Path]:
    out = {}
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC.parent).with_suffix("")
        name = ".".join(rel.parts)
        out[name.removesuffix(".__init__")] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def _imports(path: Path, module: str) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """(module-level imports, imports inside functions), as (imported module, line)."""
    tree = ast.parse(path.read_text())
    top: list[tuple[str, int]] = []
    nested: list[tuple[str, int]] = []
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]

    def names(node: ast.AST) -> list[str]:
        if isinstance(node, ast.Import):
            return [a.name for a in node.names]
        assert isinstance(node, ast.ImportFrom)
        base = node.module or ""
        if node.level:
            parts = package.split(".")
            base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
        # `from fastload.results import merge` imports the submodule fastload.results.merge.
        return [f"{base}.{a.name}" if f"{base}.{a.name}" in ALL else base for a in node.names]

    def walk(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                continue  # annotations only: no import at run time
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                (nested if in_function else top).extend((n, child.lineno) for n in names(child))
            walk(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)))

    walk(tree, False)
    return top, nested


ALL = _modules()
GRAPH = {m: _imports(p, m) for m, p in ALL.items()}


def test_every_import_follows_the_layers():
    bad = []
    for module, (top, nested) in GRAPH.items():
        src = "__init__" if module == "fastload" else _part(module)
        for target, line in top + nested:
            if not target.startswith("fastload"):
                continue
            dst = _part(target)
            if dst != src and dst not in ALLOWED[src]:
                bad.append(f"{module}:{line} imports {target} ({src} -> {dst})")
    assert not bad, "\n".join(bad)


def test_results_and_report_need_neither_engine_nor_extension():
    for module, (top, _) in GRAPH.items():
        if _part(module) in ("results", "report"):
            assert not [t for t, _ in top if _part(t) in ("runtime", "native", "h3", "config.plan")], module


def test_no_import_cycles_between_modules():
    edges = {m: {t for t, _ in top if t in ALL and t != m} for m, (top, _) in GRAPH.items()}
    # A package's __init__ runs before its submodules: `fastload.x.y` depends on `fastload.x`.
    for m in ALL:
        parent = m.rpartition(".")[0]
        while parent in ALL and parent != "fastload":  # the root only imports errors
            edges[m].add(parent)
            parent = parent.rpartition(".")[0]
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(edges[m]):
            if state.get(n) == 1:
                cycle = stack[stack.index(n):] + [n]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(ALL):
        if m not in state:
            visit(m)


def test_function_level_imports_only_for_optional_extras_features_and_cli_commands():
    bad = []
    for module, (_, nested) in GRAPH.items():
        if module == "fastload.cli":
            continue  # a command loads its implementation when it runs
        for target, line in nested:
            if not target.startswith(OPTIONAL + tuple(LOAD_ON_USE)):
                bad.append(f"{module}:{line} imports {target} inside a function")
    assert not bad, "\n".join(bad)


# Refuses fastload's compiled modules, as on a machine where the extension did not build.
_NO_EXTENSION = """
import importlib.abc, importlib.machinery, sys
class NoExtension(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.startswith("fastload."):
            spec = importlib.machinery.PathFinder.find_spec(name, path)
            if spec is not None and spec.origin and spec.origin.endswith((".so", ".pyd")):
                raise ImportError(f"{name}: no extension on this machine")
        return None
sys.meta_path.insert(0, NoExtension())
from fastload.cli import main
sys.argv = ["fastload"] + sys.argv[1:]
main()
"""


def test_merge_compare_and_report_work_without_the_native_extension(nginx_h1, tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    for path, n in ((a, 1000), (b, 1100)):
        fastload.run(nginx_h1.url, requests=n, connections=2, workers=1, duration=None,
                     json=str(path))

    def fastload_cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", _NO_EXTENSION, *args], capture_output=True,
                              text=True, timeout=120)

    blocked = subprocess.run([sys.executable, "-c", _NO_EXTENSION.replace(
        "from fastload.cli import main\nsys.argv = [\"fastload\"] + sys.argv[1:]\nmain()",
        "import fastload.runtime.engine")], capture_output=True, text=True, timeout=60)
    assert blocked.returncode != 0 and "no extension on this machine" in blocked.stderr
    merged = fastload_cli("merge", str(a), str(b), "--json", str(tmp_path / "m.json"))
    assert merged.returncode == 0, merged.stderr
    assert json.loads((tmp_path / "m.json").read_text())["requests"] == 2100
    compared = fastload_cli("compare", str(a), str(b))
    assert compared.returncode in (0, 1), compared.stderr
    assert "requests/s" in compared.stdout or "rps" in compared.stdout
    page = tmp_path / "r.html"
    reported = fastload_cli("report", str(a), str(b), "--html", str(page))
    assert reported.returncode == 0, reported.stderr
    assert page.read_text().startswith("<!DOCTYPE html>")


@pytest.mark.parametrize("name", ["run", "compare", "Result", "Verdict"])
def test_the_api_names_resolve(name):
    assert getattr(fastload, name) is getattr(fastload, name)

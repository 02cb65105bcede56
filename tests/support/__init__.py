"""Helpers shared by test modules (importable as ``support``: pyproject sets pytest's
``pythonpath = ["tests"]``). Test modules import from here, never from each other."""

from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
SERVERS = TESTS / "servers"  # test servers, started as subprocesses by file path

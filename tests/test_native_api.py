"""The Python face of the native core: fastload.native exports what the Python layers use, and
its error classes are the pure-Python list's."""

from __future__ import annotations

from fastload import errors, native


def test_error_classes_are_declared_once():
    assert native.ERROR_CLASS_NAMES == errors.ERROR_CLASSES
    for i, name in enumerate(errors.ERROR_CLASSES):
        constant = "ERROR_CHECK" if name == "check_failed" else f"ERROR_{name.upper()}"
        assert getattr(native, constant) == i


def test_worker_errors_are_keyed_by_the_error_classes():
    assert tuple(native.WorkerStats().error_counts()) == errors.ERROR_CLASSES


def test_attempts_count_a_checked_response_once():
    doc = {"requests": 10, "errors": {"total": 5, "reset": 1, "check_failed": 2, "check_error": 2}}
    assert errors.attempts(doc) == 11


def test_the_facade_exports_what_it_lists():
    for name in native.__all__:
        assert getattr(native, name) is not None

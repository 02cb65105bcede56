"""Exceptions shared by the native core and the Python layers.

Plain Python so that it imports without the extension being built.
"""

import os


class FastloadError(Exception):
    """Base class of every error fastload raises on purpose."""


class UsageError(FastloadError):
    """Bad user input, detected before any traffic. The CLI exits 2."""

    exit_code = 2


class RunError(FastloadError):
    """The run could not produce results (e.g. no connection could be made). The CLI exits 3."""

    exit_code = 3


class ProtocolError(FastloadError):
    """The peer sent bytes that violate HTTP/1.1, HTTP/2 or HPACK."""


def certificate_rejected(host: str, reason: str) -> str:
    """The one line for a server certificate that failed verification (TCP TLS or QUIC)."""
    return (f"TLS certificate verification failed for {host}: {reason}"
            " (use --ca FILE to trust it, or --insecure to skip verification)")


def read_input(path: str, label: str, shown: str | None = None) -> bytes:
    """A file the user named (--body-file, --scenario, ...): its bytes, or a UsageError that
    names the option and the reason. shown: how to name the file (default: its path)."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise UsageError(f"{label}: cannot read {shown or repr(path)}: {e.strerror}") from None


def read_input_text(path: str, label: str) -> str:
    """read_input() of a UTF-8 text file."""
    try:
        return read_input(path, label).decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{label} {path!r}: not UTF-8 text") from None


# Error classes counted per request/connection; names are the keys of the JSON "errors" object.
# check_failed: a response that arrived but failed a response check (it also counts in requests).
# check_error: a response whose check raised an exception: a defect in the check, not a failed
# response (it also counts in requests, and not in checks.failed).
# The native core declares the same list (fastload.native.ERROR_CLASS_NAMES; a test holds them
# equal); this copy lets results be merged and compared without the extension.
ERROR_CLASSES = ("connect", "timeout", "reset", "protocol", "check_failed", "check_error")


def attempts(doc: dict) -> int:
    """Requests a result document attempted: responses plus failures, where a response that
    failed a check, or whose check raised, is one attempt (it is in requests already), not two."""
    errors = doc.get("errors", {})
    return (doc.get("requests", 0) + errors.get("total", 0) - errors.get("check_failed", 0)
            - errors.get("check_error", 0))


def error_rate(doc: dict) -> float:
    """errors.total / attempts(doc)."""
    n = attempts(doc)
    return doc.get("errors", {}).get("total", 0) / n if n else 0.0


def check_writable(path: str, flag: str = "--json") -> None:
    """An output file the user named (--json, --hdr-log, merge --json, report --html): its
    directory must exist and be writable, checked before any work."""
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d) or not os.access(d, os.W_OK):
        raise UsageError(f"{flag}: cannot write {path!r} (directory missing or not writable)")

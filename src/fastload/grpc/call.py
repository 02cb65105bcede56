"""Unary gRPC over the HTTP/2 engine: the request is an ordinary HTTP/2 POST with gRPC's
length-prefixed message framing and headers, built once per run like any other request."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import re

from fastload.errors import UsageError, read_input

# Package-qualified service, then the method: pkg.sub.Service/Method (gRPC's :path, minus "/").
_METHOD_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*/[A-Za-z_][A-Za-z0-9_]*$")
MAX_MESSAGE = 4 * 1024 * 1024  # gRPC's default receive limit: servers refuse larger messages


def frame_message(message: bytes) -> bytes:
    """One uncompressed gRPC message: flag 0, 4-byte big-endian length, the bytes."""
    return b"\x00" + len(message).to_bytes(4, "big") + message


def grpc_request(target, method: str, data_file: str | None, data_b64: str | None,
                 headers: tuple[str, ...], proto: str | None = None, message_json: str | None = None,
                 ) -> tuple[object, str, tuple[str, ...], bytes]:
    """(target with the method's :path, "POST", headers with gRPC's, framed body)."""
    path = method.strip().lstrip("/")
    if not _METHOD_RE.match(path):
        raise UsageError(f"--method: {method!r} is not a gRPC method (expected pkg.Service/Method)")
    given_sources = [n for n, v in (("--data-file", data_file), ("--data-b64", data_b64),
                                    ("--proto", proto)) if v is not None]
    if len(given_sources) > 1:
        raise UsageError(f"{' and '.join(given_sources)} are exclusive: give one")
    if (message_json is None) != (proto is None):
        raise UsageError("--proto and --message go together: the .proto gives the message type, "
                         "--message its JSON")
    message = b""
    if proto is not None:
        from fastload.grpc.proto import encode_message  # the grpc extra's code

        message = encode_message(proto, path, message_json or "")
    elif data_file is not None:
        message = read_input(data_file, "--data-file")
    elif data_b64 is not None:
        try:
            message = base64.b64decode(data_b64, validate=True)
        except (binascii.Error, ValueError):
            raise UsageError(f"--data-b64: {data_b64[:40]!r} is not valid base64") from None
    if len(message) > MAX_MESSAGE:
        raise UsageError(f"the message is {len(message)} bytes; gRPC servers refuse more than "
                         f"{MAX_MESSAGE} by default")
    given = {h.split(":", 1)[0].strip().lower() for h in headers}
    extra = []
    if "content-type" not in given:
        extra.append("content-type: application/grpc")
    if "te" not in given:
        extra.append("te: trailers")  # required by gRPC: proxies must pass trailers through
    target = dataclasses.replace(target, path="/" + path)
    return target, "POST", tuple(headers) + tuple(extra), frame_message(message)

"""`fastload grpc --proto FILE --message JSON`: the request message written as JSON and encoded
with the method's input type from a .proto file, once, before the run. Needs grpcio-tools (its
bundled protoc) and protobuf: `pip install 'fastload[grpc]'`."""

from __future__ import annotations

import importlib.resources
import os
import tempfile

from fastload.errors import UsageError


def encode_message(proto_path: str, method: str, message_json: str) -> bytes:
    """The serialized request message for pkg.Service/Method, or a UsageError naming the
    problem (missing tools, a .proto that does not compile, an unknown service or method, a
    JSON message that does not fit the input type, a client-streaming method)."""
    try:
        from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
        from grpc_tools import protoc
    except ImportError:
        raise UsageError("--proto needs grpcio-tools and protobuf: pip install 'fastload[grpc]'") from None
    if not os.path.isfile(proto_path):
        raise UsageError(f"--proto: {proto_path!r} does not exist")
    descriptors = _compile(protoc, proto_path)
    pool = descriptor_pool.DescriptorPool()
    fds = descriptor_pb2.FileDescriptorSet.FromString(descriptors)
    for f in fds.file:
        pool.Add(f)
    service_name, _, method_name = method.strip().lstrip("/").partition("/")
    try:
        service = pool.FindServiceByName(service_name)
    except KeyError:
        known = sorted(s.full_name for f in fds.file for s in pool.FindFileByName(f.name).services_by_name.values())
        raise UsageError(f"--method: service {service_name!r} is not in {proto_path} "
                         f"(it has: {', '.join(known) or 'no services'})") from None
    m = service.methods_by_name.get(method_name)
    if m is None:
        raise UsageError(f"--method: {service_name} has no method {method_name!r} "
                         f"(it has: {', '.join(sorted(service.methods_by_name))})")
    if m.client_streaming:
        raise UsageError(f"--method: {method_name} is client-streaming; fastload sends one request "
                         "message per call (unary and server-streaming methods)")
    cls = message_factory.GetMessageClass(m.input_type)
    try:
        return json_format.Parse(message_json, cls()).SerializeToString()
    except json_format.ParseError as e:
        detail = " ".join(str(e).split())  # protobuf's messages span lines
        raise UsageError(f"--message: not a valid {m.input_type.full_name}: {detail}") from None


def _compile(protoc, proto_path: str) -> bytes:
    """A FileDescriptorSet (with imports) from grpcio-tools' protoc, which reports its errors on
    file descriptor 2: they are captured to quote them in one line."""
    include = str(importlib.resources.files("grpc_tools") / "_proto")
    proto_dir = os.path.dirname(os.path.abspath(proto_path))
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "set.pb")
        err_path = os.path.join(d, "err")
        saved = os.dup(2)
        try:
            with open(err_path, "wb") as err:
                os.dup2(err.fileno(), 2)
                rc = protoc.main(["protoc", f"-I{proto_dir}", f"-I{include}", "--include_imports",
                                  f"--descriptor_set_out={out}", os.path.basename(proto_path)])
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        if rc != 0:
            with open(err_path, "rb") as f:
                lines = f.read().decode(errors="replace").strip().splitlines()
            raise UsageError(f"--proto: {proto_path} does not compile: "
                             f"{lines[0] if lines else 'protoc failed'}")
        with open(out, "rb") as f:
            return f.read()

"""Property-based hostile requests: every method of the service, every field of its
request drawn from its whole range (NaN, infinities, the integer extremes, unknown
enum values, 100 KiB strings, NUL bytes), and bodies of random bytes, sent by
grpcio (a client we did not write) to a real `jobs serve` process.

No answer may be UNKNOWN or INTERNAL, or too large for the client to accept, and
the server logs no bug.
"""

from __future__ import annotations

import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message_factory import GetMessageClass
from harness import JOBS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pki_fixtures import Certificates

from gen import service_pb2 as wire

SERVICE = wire.DESCRIPTOR.services_by_name["JobService"]
METHODS = {m.name: m for m in SERVICE.methods}
ALLOWED = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.UNIMPLEMENTED,
}
"""What a hostile request may get. RESOURCE_EXHAUSTED is the server's cap on the
request's size (checked below: never the client refusing the answer)."""
EXAMPLES = 100
"""Requests per method and test."""
CALL_TIMEOUT = 10.0

_T = FieldDescriptor
_INTS = {
    _T.TYPE_INT32: (-(1 << 31), (1 << 31) - 1),
    _T.TYPE_SINT32: (-(1 << 31), (1 << 31) - 1),
    _T.TYPE_SFIXED32: (-(1 << 31), (1 << 31) - 1),
    _T.TYPE_INT64: (-(1 << 63), (1 << 63) - 1),
    _T.TYPE_SINT64: (-(1 << 63), (1 << 63) - 1),
    _T.TYPE_SFIXED64: (-(1 << 63), (1 << 63) - 1),
    _T.TYPE_UINT32: (0, (1 << 32) - 1),
    _T.TYPE_FIXED32: (0, (1 << 32) - 1),
    _T.TYPE_UINT64: (0, (1 << 64) - 1),
    _T.TYPE_FIXED64: (0, (1 << 64) - 1),
}


def _strings() -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(max_size=30),
        st.sampled_from(["/bin/true", "true", "/", "/tmp", "sda", "8:0", "\0", "a=b", "é"]),
        # Long values: error messages must not echo them whole.
        st.integers(1000, 150_000).map(lambda n: "x" * n),
    )


def _scalar(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind in (_T.TYPE_DOUBLE, _T.TYPE_FLOAT):
        return st.one_of(
            st.floats(width=32 if kind == _T.TYPE_FLOAT else 64),
            st.sampled_from([0.0, -0.0, 1e-300, 1e308, -1.0, 0.5, float("inf"), float("nan")]),
        )
    if kind in _INTS:
        low, high = _INTS[kind]
        return st.one_of(
            st.integers(low, high), st.sampled_from([low, high, 0, 1, 2, 3, 9, 15, 64])
        )
    if kind == _T.TYPE_BOOL:
        return st.booleans()
    if kind == _T.TYPE_STRING:
        return _strings()
    if kind == _T.TYPE_BYTES:
        return st.binary(max_size=64)
    if kind == _T.TYPE_ENUM:
        return st.integers(-2, 12)  # open enums: unknown numbers arrive too
    assert field.message_type is not None, field.full_name
    return messages(field.message_type, depth + 1)


def messages(
    descriptor: Descriptor, depth: int = 0, fixed: dict[str, st.SearchStrategy[Any]] | None = None
) -> st.SearchStrategy[Any]:
    """Messages of ``descriptor`` with any subset of their fields set to any value."""
    cls = GetMessageClass(descriptor)
    if depth > 2:
        return st.just(cls())
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for field in descriptor.fields:
        value: st.SearchStrategy[Any]
        entry = field.message_type
        if entry is not None and entry.GetOptions().map_entry:
            key, item = entry.fields_by_name["key"], entry.fields_by_name["value"]
            value = st.dictionaries(_scalar(key, depth), _scalar(item, depth), max_size=3)
        elif field.is_repeated:
            value = st.lists(_scalar(field, depth), max_size=4)
        else:
            value = _scalar(field, depth)
        fields[field.name] = (fixed or {}).get(field.name, value)
    return st.fixed_dictionaries({}, optional=fields).map(lambda kwargs: cls(**kwargs))


class Server:
    """`jobs serve` in a process of its own, and a grpcio channel to it."""

    def __init__(self, pki: Certificates, directory: Path) -> None:
        self.log_path = directory / "serve.log"
        self.log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [
                JOBS,
                "serve",
                "--listen=127.0.0.1:0",
                f"--ca={pki.ca}",
                f"--cert={pki.server.cert}",
                f"--key={pki.server.key}",
                f"--state-dir={directory / 'state'}",
                "--grace=1s",
            ],
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )
        deadline = time.monotonic() + 20
        while not (found := re.search(r"listening on 127.0.0.1:(\d+)", self.text())):
            assert self.process.poll() is None, self.text()
            assert time.monotonic() < deadline, self.text()
            time.sleep(0.05)
        files = pki.clients["alice"]
        credentials = grpc.ssl_channel_credentials(
            root_certificates=pki.ca.read_bytes(),
            private_key=files.key.read_bytes(),
            certificate_chain=files.cert.read_bytes(),
        )
        self.channel = grpc.secure_channel(f"localhost:{found[1]}", credentials)

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def call(self, method: MethodDescriptor, body: bytes) -> grpc.StatusCode:
        """Send ``body`` as the request of ``method``; the call's final status."""
        path = f"/{SERVICE.full_name}/{method.name}"
        try:
            if method.server_streaming:
                stream: grpc.UnaryStreamMultiCallable[bytes, bytes]
                stream = self.channel.unary_stream(path)
                for _ in stream(body, timeout=CALL_TIMEOUT):
                    pass
            else:
                unary: grpc.UnaryUnaryMultiCallable[bytes, bytes]
                unary = self.channel.unary_unary(path)
                unary(body, timeout=CALL_TIMEOUT)
        except grpc.RpcError as error:
            code: grpc.StatusCode = error.code()
            details: str = error.details() or ""
            assert code in ALLOWED, (method.name, code, details[:300])
            if code is grpc.StatusCode.RESOURCE_EXHAUSTED:
                # The server's own cap, not grpcio refusing an oversized answer.
                assert "this call accepts at most" in details, details[:300]
            return code
        return grpc.StatusCode.OK

    def close(self) -> None:
        self.channel.close()
        self.process.terminate()
        try:
            self.process.wait(20)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            self.log.close()


@pytest.fixture(scope="module")
def hostile_server(
    test_pki: Certificates, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, str]]:
    """A real server and the id of a job of alice's that has ended (so calls find it)."""
    server = Server(test_pki, tmp_path_factory.mktemp("hostile"))
    try:
        run: grpc.UnaryUnaryMultiCallable[bytes, wire.RunResponse]
        run = server.channel.unary_unary(
            "/jobs.v1.JobService/Run", response_deserializer=wire.RunResponse.FromString
        )
        request = wire.RunRequest(command=["sh", "-c", "printf 'a\\nb\\nc\\n'; echo e >&2"])
        job_id = run(request.SerializeToString(), timeout=CALL_TIMEOUT).job.id
        yield server, job_id
        log = server.text()
    finally:
        server.close()
    assert "bug:" not in log, log[-5000:]
    assert "Traceback" not in log, log[-5000:]


_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.mark.parametrize("name", METHODS)
@_SETTINGS
@given(data=st.data())
def test_any_request(hostile_server: tuple[Server, str], name: str, data: st.DataObject) -> None:
    server, job_id = hostile_server
    method = METHODS[name]
    fixed: dict[str, st.SearchStrategy[Any]] = {
        "job_id": st.one_of(
            st.just(job_id), st.just(str(uuid.uuid4())), st.text(max_size=40), _strings()
        ),
        "command": st.one_of(st.just(["/bin/true"]), st.lists(_strings(), max_size=3)),
    }
    message = data.draw(messages(method.input_type, fixed=fixed))
    server.call(method, message.SerializeToString())


def _paths(descriptor: Descriptor, depth: int = 0) -> list[tuple[FieldDescriptor, ...]]:
    """Every scalar field reachable from ``descriptor`` (through sub-messages, and the
    first element of repeated ones)."""
    paths: list[tuple[FieldDescriptor, ...]] = []
    for field in descriptor.fields:
        entry = field.message_type
        if entry is None:
            paths.append((field,))
        elif not entry.GetOptions().map_entry and depth < 2:
            paths += [(field, *rest) for rest in _paths(entry, depth + 1)]
    return paths


def _set(message: Any, path: tuple[FieldDescriptor, ...], value: Any) -> None:
    for field in path[:-1]:
        message = getattr(message, field.name)
        message = message.add() if field.is_repeated else message
    last = path[-1]
    if last.is_repeated:
        getattr(message, last.name).append(value)
    else:
        setattr(message, last.name, value)


def _valid(method: MethodDescriptor, job_id: str) -> Any:
    """A request of ``method`` that succeeds, to put one hostile value into."""
    message: Any = GetMessageClass(method.input_type)()
    if "job_id" in method.input_type.fields_by_name:
        message.job_id = job_id
    if method.name == "Run":
        message.command.append("/bin/true")
    return message


@pytest.mark.parametrize("name", [n for n, m in METHODS.items() if _paths(m.input_type)])
@_SETTINGS
@given(data=st.data())
def test_one_hostile_field(
    hostile_server: tuple[Server, str], name: str, data: st.DataObject
) -> None:
    """A request that would succeed, but for one field at any value of its type:
    every numeric field meets NaN, infinities and the integer extremes (the limits,
    timeout, grace, signal, offsets, line counts, times)."""
    server, job_id = hostile_server
    method = METHODS[name]
    message = _valid(method, job_id)
    path = data.draw(st.sampled_from(_paths(method.input_type)))
    _set(message, path, data.draw(_scalar(path[-1], 0)))
    server.call(method, message.SerializeToString())


_FLOAT_EXTREMES = [0.0, -0.0, -1.0, 5e-324, 1e-9, 1e308, float("inf"), float("-inf"), float("nan")]
_PATHS = [
    (name, path)
    for name, method in METHODS.items()
    for path in _paths(method.input_type)
    if path[-1].type != _T.TYPE_MESSAGE
]


def _extremes(field: FieldDescriptor) -> list[Any]:
    if field.type in (_T.TYPE_DOUBLE, _T.TYPE_FLOAT):
        return _FLOAT_EXTREMES if field.type == _T.TYPE_DOUBLE else _FLOAT_EXTREMES[:3]
    if field.type in _INTS:
        low, high = _INTS[field.type]
        return sorted({low, low + 1, -1 if low else 0, 0, 1, high - 1, high})
    if field.type == _T.TYPE_ENUM:
        return [-1, 0, 1, 99, (1 << 31) - 1]
    if field.type == _T.TYPE_STRING:
        return ["", "\0", "x" * 100_000, "é" * 1000]
    return []


@pytest.mark.parametrize(
    ("name", "path"), _PATHS, ids=[f"{n}.{'.'.join(f.name for f in p)}" for n, p in _PATHS]
)
def test_every_field_at_its_extremes(
    hostile_server: tuple[Server, str], name: str, path: tuple[FieldDescriptor, ...]
) -> None:
    """Each scalar field of each request, alone at each extreme of its type, in a
    request that would otherwise succeed."""
    server, job_id = hostile_server
    method = METHODS[name]
    for value in _extremes(path[-1]):
        message = _valid(method, job_id)
        _set(message, path, value)
        server.call(method, message.SerializeToString())


@pytest.mark.parametrize("name", METHODS)
@_SETTINGS
@given(body=st.binary(max_size=256))
def test_any_bytes(hostile_server: tuple[Server, str], name: str, body: bytes) -> None:
    """Bodies that are not the request message (or a message of unknown fields)."""
    hostile_server[0].call(METHODS[name], body)

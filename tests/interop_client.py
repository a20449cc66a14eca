"""The grpcio (C-core) client that tests/test_interop.py runs in a process of its own:

    python tests/interop_client.py PORT CA CERT KEY

It runs a job on the server at localhost:PORT over mutual TLS, follows its output,
waits for it, lists the jobs and asks for one that does not exist, then prints what
it saw as one JSON object.

The messages are the committed gen/service_pb2 (protobuf's own module); no grpcio
stubs are generated: each method is bound the way grpcio-tools' generated code binds
it (as bench/_grpcio.py does), after checking its messages against the descriptor of
service.proto.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message

from gen import service_pb2 as pb

SERVICE = pb.DESCRIPTOR.services_by_name["JobService"]

Request = TypeVar("Request", bound=Message)
Response = TypeVar("Response", bound=Message)


def _path(method: str, request: type[Message], response: type[Message], streaming: bool) -> str:
    """The HTTP/2 path of ``method``, once service.proto agrees with its binding."""
    found = SERVICE.methods_by_name[method]
    assert (found.input_type, found.output_type) == (request.DESCRIPTOR, response.DESCRIPTOR)
    assert (found.client_streaming, found.server_streaming) == (False, streaming), method
    return f"/{SERVICE.full_name}/{method}"


def unary_unary(
    channel: grpc.Channel, method: str, request: type[Request], response: type[Response]
) -> grpc.UnaryUnaryMultiCallable[Request, Response]:
    """One of the service's unary methods."""
    return _registered(channel).unary_unary(  # type: ignore[no-any-return]
        _path(method, request, response, streaming=False),
        request_serializer=request.SerializeToString,
        response_deserializer=response.FromString,
        _registered_method=True,
    )


def unary_stream(
    channel: grpc.Channel, method: str, request: type[Request], response: type[Response]
) -> grpc.UnaryStreamMultiCallable[Request, Response]:
    """One of the service's server-streaming methods."""
    return _registered(channel).unary_stream(  # type: ignore[no-any-return]
        _path(method, request, response, streaming=True),
        request_serializer=request.SerializeToString,
        response_deserializer=response.FromString,
        _registered_method=True,
    )


def _registered(channel: grpc.Channel) -> Any:
    # `_registered_method=True` is what generated stubs pass; typeshed's stubs do not
    # declare it: one Any, here (as in bench/_grpcio.py).
    return channel


def main(port: str, ca: Path, cert: Path, key: Path) -> dict[str, object]:
    credentials = grpc.ssl_channel_credentials(ca.read_bytes(), key.read_bytes(), cert.read_bytes())
    with grpc.secure_channel(f"localhost:{port}", credentials) as channel:
        run = unary_unary(channel, "Run", pb.RunRequest, pb.RunResponse)
        logs = unary_stream(channel, "Logs", pb.LogsRequest, pb.LogsResponse)
        wait = unary_unary(channel, "Wait", pb.WaitRequest, pb.WaitResponse)
        status = unary_unary(channel, "Status", pb.StatusRequest, pb.StatusResponse)
        list_jobs = unary_unary(channel, "List", pb.ListRequest, pb.ListResponse)

        job = run(pb.RunRequest(command=["sh", "-c", "echo hello; echo oops >&2; exit 3"])).job
        out, err = b"", b""
        for message in logs(pb.LogsRequest(job_id=job.id, follow=True)):
            if message.stream == pb.STREAM_STDOUT:
                out += message.data
            else:
                err += message.data
        final = wait(pb.WaitRequest(job_id=job.id)).job
        try:
            status(pb.StatusRequest(job_id="nope"))
            not_found = None
        except grpc.RpcError as error:
            not_found = [error.code().name, error.details()]
        return {
            "out": out.decode(),
            "err": err.decode(),
            "state": pb.JobState.Name(final.state),
            "exit_code": final.exit_code,
            "listed": [j.id for j in list_jobs(pb.ListRequest()).jobs] == [job.id],
            "not_found": not_found,
        }


if __name__ == "__main__":
    port, ca, cert, key = sys.argv[1:5]
    print(json.dumps(main(port, Path(ca), Path(cert), Path(key))))

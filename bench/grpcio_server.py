"""A grpcio (C-core) server of the same service, the baseline our server is compared
to: Logs streams SIZE bytes from memory, Status answers one fixed job.

Run as `python -m bench.grpcio_server SIZE CA CERT KEY`; it prints its port on stdout,
then serves until killed.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc

from gen import service_pb2 as pb

from ._grpcio import SERVICE, server_credentials

PIECE = bytes(256 << 10)
JOB = pb.Job(id="0" * 32, owner="bench", command=["true"], state=pb.JOB_STATE_EXITED)


def serve(size: int, ca: Path, cert: Path, key: Path) -> None:
    """Serve Logs and Status on a free loopback port until the process is killed."""

    def logs(request: pb.LogsRequest, context: grpc.ServicerContext) -> Iterator[pb.LogsResponse]:
        sent = 0
        while sent < size:
            data = PIECE[: min(len(PIECE), size - sent)]
            yield pb.LogsResponse(offset=sent, stream=pb.STREAM_STDOUT, data=data)
            sent += len(data)

    def status(request: pb.StatusRequest, context: grpc.ServicerContext) -> pb.StatusResponse:
        return pb.StatusResponse(job=JOB)

    # As grpcio-tools' generated add_JobServiceServicer_to_server binds them.
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
        "Logs": grpc.unary_stream_rpc_method_handler(
            logs,
            request_deserializer=pb.LogsRequest.FromString,
            response_serializer=pb.LogsResponse.SerializeToString,
        ),
        "Status": grpc.unary_unary_rpc_method_handler(
            status,
            request_deserializer=pb.StatusRequest.FromString,
            response_serializer=pb.StatusResponse.SerializeToString,
        ),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    server.add_registered_method_handlers(SERVICE, handlers)
    port = server.add_secure_port("127.0.0.1:0", server_credentials(ca, cert, key))
    server.start()
    print(port, flush=True)
    server.wait_for_termination()


def main() -> None:
    """Parse the command line and serve."""
    parser = argparse.ArgumentParser(prog="python -m bench.grpcio_server", description=__doc__)
    parser.add_argument("size", type=int, help="bytes each Logs call streams")
    for name in ("ca", "cert", "key"):
        parser.add_argument(name, type=Path)
    args = parser.parse_args()
    serve(args.size, args.ca, args.cert, args.key)


if __name__ == "__main__":
    main()

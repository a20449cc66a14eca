"""The grpcio (C-core) side of the baselines: credentials and the JobService methods,
typed with gen/service_pb2 (protobuf's own module, with its .pyi) and typeshed's
grpcio stubs.

No grpcio stubs are generated: the few methods the baselines use are bound here the
way grpcio-tools' generated code binds them (same serializers, same registered
methods), with the service's name read from the descriptor of service.proto.
Only the programs run as subprocesses import this module: the suite itself never
loads grpcio next to grpclib.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import grpc.aio

from gen import service_pb2 as pb

SERVICE = pb.DESCRIPTOR.services_by_name["JobService"].full_name


def path(method: str) -> str:
    """The HTTP/2 path of one of the service's methods."""
    return f"/{SERVICE}/{method}"


def server_credentials(ca: Path, cert: Path, key: Path) -> grpc.ServerCredentials:
    """Mutual TLS as our server does it: the client must present a certificate of ``ca``."""
    return grpc.ssl_server_credentials(
        [(key.read_bytes(), cert.read_bytes())],
        root_certificates=ca.read_bytes(),
        require_client_auth=True,
    )


def channel_credentials(ca: Path, cert: Path, key: Path) -> grpc.ChannelCredentials:
    """A client identity and the CA it trusts."""
    return grpc.ssl_channel_credentials(ca.read_bytes(), key.read_bytes(), cert.read_bytes())


def logs_method(
    channel: grpc.Channel,
) -> grpc.UnaryStreamMultiCallable[pb.LogsRequest, pb.LogsResponse]:
    """Logs on a blocking channel."""
    return _registered(channel).unary_stream(  # type: ignore[no-any-return]
        path("Logs"),
        request_serializer=pb.LogsRequest.SerializeToString,
        response_deserializer=pb.LogsResponse.FromString,
        _registered_method=True,
    )


def status_method(
    channel: grpc.aio.Channel,
) -> grpc.aio.UnaryUnaryMultiCallable[pb.StatusRequest, pb.StatusResponse]:
    """Status on an asyncio channel."""
    return _registered(channel).unary_unary(  # type: ignore[no-any-return]
        path("Status"),
        request_serializer=pb.StatusRequest.SerializeToString,
        response_deserializer=pb.StatusResponse.FromString,
        _registered_method=True,
    )


def _registered(channel: grpc.Channel | grpc.aio.Channel) -> Any:
    # `_registered_method=True` is what generated stubs pass (C-core then looks the
    # path up once, not per call); typeshed's stubs do not declare it: one Any, here.
    return channel

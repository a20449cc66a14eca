"""The connection of a client command: its options, its channel, and the calls it makes.

Client commands speak to the server with protobuf's C messages
(``gen/service_pb2``) over grpclib, not with betterproto's generated stub: importing
betterproto and its stubs took a good part of every command's start-up, and
decoding in C is faster too.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncclick as click
from google.protobuf.message import Message
from grpclib.client import Channel
from grpclib.const import Cardinality, Status
from grpclib.exceptions import GRPCError

from gen import service_pb2 as wire
from jobs.client import ConnectionFailed, connection_errors, log_stream, open_channel

from ._errors import CliError
from ._render import OutputWriter
from ._settings import DEFAULT_ADDR, local_user, parse_address, pki_dir

__all__ = ["Api", "Server", "connect", "connection_options", "for_job", "stream_output"]

F = TypeVar("F", bound=Callable[..., Any])
Reply = TypeVar("Reply", bound=Message)

_SERVICE = "/jobs.v1.JobService/"


class Api:
    """The calls of jobs.v1.JobService over one channel, with the C messages."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel

    async def run(self, request: wire.RunRequest) -> wire.Job:
        """Run: the job started."""
        return (await _call(self.channel, "Run", request, wire.RunResponse)).job

    async def stop(self, request: wire.StopRequest) -> wire.Job:
        """Stop: the job's final status."""
        return (await _call(self.channel, "Stop", request, wire.StopResponse)).job

    async def status(self, job_id: str) -> wire.Job:
        """Status of one job."""
        request = wire.StatusRequest(job_id=job_id)
        return (await _call(self.channel, "Status", request, wire.StatusResponse)).job

    async def list(self, request: wire.ListRequest) -> list[wire.Job]:
        """List: the caller's jobs, oldest first."""
        return list((await _call(self.channel, "List", request, wire.ListResponse)).jobs)

    async def wait(self, job_id: str) -> wire.Job:
        """Wait until the job has ended: its final status."""
        request = wire.WaitRequest(job_id=job_id)
        return (await _call(self.channel, "Wait", request, wire.WaitResponse)).job

    async def info(self) -> wire.InfoResponse:
        """Info: who the server is, what it offers, its load."""
        return await _call(self.channel, "Info", wire.InfoRequest(), wire.InfoResponse)

    def logs(
        self, request: wire.LogsRequest
    ) -> contextlib.AbstractAsyncContextManager[AsyncIterator[wire.LogsResponse]]:
        """The job's output as a stream of ``LogsResponse`` messages, for the block."""
        return log_stream(self.channel, request)


async def _call(channel: Channel, method: str, request: Message, reply: type[Reply]) -> Reply:
    async with channel.request(
        _SERVICE + method, Cardinality.UNARY_UNARY, type(request), reply
    ) as stream:
        await stream.send_message(request, end=True)
        response: Reply | None = await stream.recv_message()
        await stream.recv_trailing_metadata()
    assert response is not None  # grpclib raises GRPCError when there is none
    return response


@dataclass(frozen=True)
class Server:
    """Where the server is and who we are: the connection options of a command."""

    addr: str
    ca: Path | None
    cert: Path | None
    key: Path | None

    def connect(self) -> contextlib.AbstractAsyncContextManager[Api]:
        """The calls, for the block's duration; see ``connect``."""
        return connect(self.addr, self.ca, self.cert, self.key)


def connection_options(command: F) -> F:
    """Add the options every client command takes, passed on as one ``server``."""

    @functools.wraps(command)
    async def with_server(
        *args: Any, addr: str, ca: Path | None, cert: Path | None, key: Path | None, **kwargs: Any
    ) -> Any:
        return await command(*args, server=Server(addr, ca, cert, key), **kwargs)

    decorated: Any = with_server
    for option in reversed(
        [
            click.option(
                "--addr",
                envvar="JOBS_ADDR",
                default=DEFAULT_ADDR,
                show_default=True,
                help="The server, HOST:PORT. [env: JOBS_ADDR]",
            ),
            click.option(
                "--ca",
                envvar="JOBS_CA",
                type=click.Path(dir_okay=False, path_type=Path),
                help="CA certificate the server must chain to. [env: JOBS_CA; "
                "default: $JOBS_HOME/pki/ca.crt]",
            ),
            click.option(
                "--cert",
                envvar="JOBS_CERT",
                type=click.Path(dir_okay=False, path_type=Path),
                help="Client certificate. [env: JOBS_CERT; default: $JOBS_HOME/pki/$USER.crt]",
            ),
            click.option(
                "--key",
                envvar="JOBS_KEY",
                type=click.Path(dir_okay=False, path_type=Path),
                help="Client private key. [env: JOBS_KEY; default: $JOBS_HOME/pki/$USER.key]",
            ),
        ]
    ):
        decorated = option(decorated)
    return decorated  # type: ignore[no-any-return]


CONNECT_TIMEOUT = 10.0
"""Seconds to connect and finish the TLS handshake: a server that accepts but never
answers (stopped, overloaded) must not hold a command for asyncio's 60 s."""


@contextlib.asynccontextmanager
async def connect(
    addr: str, ca: Path | None, cert: Path | None, key: Path | None
) -> AsyncIterator[Api]:
    """The calls over a channel that lives as long as the block; connection errors in
    the block become one clear ``ConnectionFailed``."""
    host, port = parse_address(addr)
    directory = pki_dir()
    user = local_user()
    channel = open_channel(
        host,
        port,
        ca=ca or directory / "ca.crt",
        cert=cert or directory / f"{user}.crt",
        key=key or directory / f"{user}.key",
    )
    try:
        with connection_errors(addr, channel):
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    await channel.__connect__()
            except TimeoutError:
                raise ConnectionFailed(
                    f"{addr} did not answer within {CONNECT_TIMEOUT:g}s (connection and TLS "
                    "handshake): is the server stopped or overloaded?"
                ) from None
            yield Api(channel)
    finally:
        channel.close()


async def stream_output(api: Api, request: wire.LogsRequest, *, timestamps: bool = False) -> None:
    """Write a job's output to our stdout and stderr as it arrives."""
    writer = OutputWriter(timestamps=timestamps)
    async with api.logs(request) as messages:
        async for message in messages:
            writer.write(message)
    writer.flush()


@contextlib.contextmanager
def for_job(job_id: str) -> Iterator[None]:
    """Name the job in a NOT_FOUND answer, which on the wire never names it."""
    try:
        yield
    except GRPCError as exc:
        if exc.status is Status.NOT_FOUND:
            raise CliError(f"job {job_id} not found") from None
        raise

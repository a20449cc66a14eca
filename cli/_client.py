"""The connection of a client command: its options, its channel, its stub."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncclick as click
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from gen.jobs import v1 as pb
from jobs.client import connection_errors, logs, open_channel

from ._errors import CliError
from ._render import write_output
from ._settings import DEFAULT_ADDR, local_user, parse_address, pki_dir

__all__ = ["Server", "connect", "connection_options", "for_job", "stream_output"]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Server:
    """Where the server is and who we are: the connection options of a command."""

    addr: str
    ca: Path | None
    cert: Path | None
    key: Path | None

    def connect(self) -> contextlib.AbstractAsyncContextManager[pb.JobServiceStub]:
        """A stub for the block's duration; see ``connect``."""
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


@contextlib.asynccontextmanager
async def connect(
    addr: str, ca: Path | None, cert: Path | None, key: Path | None
) -> AsyncIterator[pb.JobServiceStub]:
    """A stub over a channel that lives as long as the block; connection errors in
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
            yield pb.JobServiceStub(channel)
    finally:
        channel.close()


async def stream_output(
    stub: pb.JobServiceStub, job_id: str, *, follow: bool, offset: int = 0
) -> None:
    """Write a job's output to our stdout and stderr as it arrives."""
    async with logs(stub.channel, job_id, follow=follow, offset=offset) as messages:
        async for message in messages:
            write_output(message)


@contextlib.contextmanager
def for_job(job_id: str) -> Any:
    """Name the job in a NOT_FOUND answer, which on the wire never names it."""
    try:
        yield
    except GRPCError as exc:
        if exc.status is Status.NOT_FOUND:
            raise CliError(f"job {job_id} not found") from None
        raise

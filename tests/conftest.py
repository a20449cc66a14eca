"""Shared fixtures: the anyio backend (asyncio on uvloop), a job manager on tmp_path,
a session-wide PKI and a real server on an ephemeral port."""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from grpclib.client import Channel
from grpclib.const import Status
from grpclib.events import SendTrailingMetadata, listen
from grpclib.exceptions import StreamTerminatedError
from grpclib.server import Server
from pki_fixtures import Certificates, make_pki

from gen.jobs.v1 import JobServiceStub
from jobs import JobManager
from jobs._tls import client_context
from jobs.server import ServerConfig, serve


@pytest.fixture(scope="session")
def anyio_backend() -> tuple[str, dict[str, object]]:
    return "asyncio", {"use_uvloop": True}


@pytest.fixture
async def manager(tmp_path: Path) -> AsyncIterator[JobManager]:
    async with JobManager(tmp_path / "state", grace=2.0) as manager:
        yield manager


@pytest.fixture(scope="session")
def test_pki(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_pki(tmp_path_factory.mktemp("pki"))


@dataclass
class RunningServer:
    """A real server on an ephemeral port, and how to reach it."""

    host: str
    port: int
    config: ServerConfig
    pki: Certificates
    statuses: list[tuple[str, Status]]

    def channel(self, client: str = "alice", *, ca: Path | None = None) -> Channel:
        files = self.pki.clients[client]
        context = client_context(ca or self.pki.ca, files.cert, files.key)
        return Channel(self.host, self.port, ssl=context)

    @contextlib.asynccontextmanager
    async def stub(self, client: str = "alice") -> AsyncIterator[JobServiceStub]:
        channel = self.channel(client)
        try:
            yield JobServiceStub(channel)
        finally:
            channel.close()


@contextlib.asynccontextmanager
async def running_server(
    test_pki: Certificates, state_dir: Path, **options: Any
) -> AsyncIterator[RunningServer]:
    """Serve on 127.0.0.1 port 0 for the duration of the block.

    Every call's final status is recorded; leaving fails if any ended UNKNOWN.
    """
    config = ServerConfig(
        cert=test_pki.server.cert,
        key=test_pki.server.key,
        ca=test_pki.ca,
        state_dir=state_dir,
        port=0,
        grace=2.0,
        **options,
    )
    statuses: list[tuple[str, Status]] = []

    def record(server: Server) -> None:
        async def on_trailers(event: SendTrailingMetadata) -> None:
            # A call the client itself reset never receives its trailers: grpclib
            # still dispatches them (as UNKNOWN), but nobody can see that status.
            if not isinstance(sys.exception(), StreamTerminatedError):
                statuses.append((event.status_message or "", event.status))

        listen(server, SendTrailingMetadata, on_trailers)

    async with anyio.create_task_group() as tg:
        host, port = await tg.start(functools.partial(serve, config, setup=record))
        try:
            yield RunningServer(host, port, config, test_pki, statuses)
        finally:
            tg.cancel_scope.cancel()
    unknown = [message for message, status in statuses if status is Status.UNKNOWN]
    assert not unknown, f"calls ended UNKNOWN: {unknown}"


@pytest.fixture
async def server(test_pki: Certificates, tmp_path: Path) -> AsyncIterator[RunningServer]:
    async with running_server(test_pki, tmp_path / "state") as running:
        yield running

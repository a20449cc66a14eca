"""Shared fixtures: the anyio backend (asyncio on uvloop), a job manager on tmp_path,
a session-wide PKI and a real server on an ephemeral port."""

from __future__ import annotations

import contextlib
import functools
import re
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest
from grpclib.client import Channel
from grpclib.const import Status
from grpclib.events import SendTrailingMetadata, listen
from grpclib.exceptions import StreamTerminatedError
from grpclib.server import Server
from pki_fixtures import Certificates, make_pki

from gen.jobs.v1 import JobServiceStub
from jobs import JobManager
from jobs.client import open_channel
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
        return open_channel(
            self.host, self.port, ca=ca or self.pki.ca, cert=files.cert, key=files.key
        )

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


JOBS = str(Path(sys.executable).with_name("jobs"))


class ServerProcess:
    """`jobs serve` on an ephemeral port with the test PKI and a given state directory."""

    def __init__(self, pki: Certificates, state: Path, *options: str) -> None:
        self.pki = pki
        self.state = state
        self.options = options
        self.process: anyio.abc.Process | None = None
        self.port = 0
        self.log = b""

    async def start(self) -> None:
        command = [
            JOBS,
            "serve",
            "--listen=127.0.0.1:0",
            f"--ca={self.pki.ca}",
            f"--cert={self.pki.server.cert}",
            f"--key={self.pki.server.key}",
            f"--state-dir={self.state}",
            *self.options,
        ]
        self.process = await anyio.open_process(command)
        assert self.process.stderr is not None
        self.log = b""
        with anyio.fail_after(20):
            while not (found := re.search(rb"listening on 127.0.0.1:(\d+)", self.log)):
                try:
                    self.log += await self.process.stderr.receive()
                except anyio.EndOfStream:
                    pytest.fail(f"jobs serve ended early:\n{self.log.decode()}")
        self.port = int(found[1])

    async def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.process is not None
        self.process.send_signal(signal.Signals(sig))
        with anyio.fail_after(20):
            code = await self.process.wait()
        await self.process.aclose()
        self.process = None
        return code

    def rss(self) -> int:
        """The server's resident memory now, in bytes."""
        return self._memory("VmRSS:")

    def rss_peak(self) -> int:
        """The most the server's resident memory has been, in bytes."""
        return self._memory("VmHWM:")

    def _memory(self, key: str) -> int:
        assert self.process is not None
        with open(f"/proc/{self.process.pid}/status") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
        raise AssertionError(f"no {key}")

    @contextlib.asynccontextmanager
    async def stub(self) -> AsyncIterator[JobServiceStub]:
        files = self.pki.clients["alice"]
        channel = open_channel(
            "127.0.0.1", self.port, ca=self.pki.ca, cert=files.cert, key=files.key
        )
        try:
            yield JobServiceStub(channel)
        finally:
            channel.close()

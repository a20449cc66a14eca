"""Real ``jobs serve`` processes on any loopback address, with any options: the
servers of a fleet on one machine (127.0.0.2, 127.0.0.3, ...)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import anyio
import anyio.abc
import pytest
from harness import JOBS
from pki_fixtures import Certificates

from gen.jobs.v1 import JobServiceStub
from jobs.client import open_channel

STARTUP = 30.0
"""Seconds a server may take to start on a loaded machine."""


class ServeProcess:
    """``jobs serve --listen HOST:0`` with the test PKI (or given files) and a state dir.

    Its log (stderr) is read all along into ``log``, so the pipe never fills.
    """

    def __init__(
        self,
        pki: Certificates,
        state: Path,
        *options: str,
        host: str = "127.0.0.1",
        cert: Path | None = None,
        key: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.pki = pki
        self.state = state
        self.options = options
        self.host = host
        self.cert = cert or pki.server.cert
        self.key = key or pki.server.key
        self.env = {**os.environ, **(env or {})}
        self.process: anyio.abc.Process | None = None
        self.port = 0
        self.log = b""
        self._listening = anyio.Event()

    def __repr__(self) -> str:
        return f"<ServeProcess {self.host}:{self.port} {self.state.name}>"

    @property
    def addr(self) -> str:
        return f"{self.host}:{self.port}"

    async def start(self, tg: anyio.abc.TaskGroup) -> None:
        """Start the server (its log read in ``tg``); return once it listens."""
        command = [
            JOBS,
            "serve",
            f"--listen={self.host}:0",
            f"--ca={self.pki.ca}",
            f"--cert={self.cert}",
            f"--key={self.key}",
            f"--state-dir={self.state}",
            *self.options,
        ]
        self.log = b""
        self._listening = anyio.Event()
        process = self.process = await anyio.open_process(command, env=self.env)
        tg.start_soon(self._read_log, process)
        with anyio.fail_after(STARTUP):
            await self._listening.wait()
        if not self.port:
            pytest.fail(f"jobs serve ended early:\n{self.log.decode()}")

    async def _read_log(self, process: anyio.abc.Process) -> None:
        assert process.stderr is not None
        pattern = re.compile(rb"listening on " + re.escape(self.host.encode()) + rb":(\d+)")
        async for data in process.stderr:
            self.log += data
            if not self._listening.is_set() and (found := pattern.search(self.log)):
                self.port = int(found[1])
                self._listening.set()
        self._listening.set()  # ended: start() reports it

    async def wait_log(self, text: bytes, timeout: float = 20) -> None:
        """Wait until the server's log contains ``text``."""
        with anyio.fail_after(timeout):
            while text not in self.log:  # noqa: ASYNC110 -- the log grows in another task
                await anyio.sleep(0.05)

    async def stop(self, sig: int = signal.SIGTERM) -> int:
        """Send ``sig`` (SIGKILL: a crash) and wait for the exit status."""
        assert self.process is not None
        process, self.process = self.process, None
        process.send_signal(signal.Signals(sig))
        with anyio.fail_after(30):
            code = await process.wait()
        await process.aclose()
        return code

    @contextlib.asynccontextmanager
    async def stub(self, client: str = "alice") -> AsyncIterator[JobServiceStub]:
        files = self.pki.clients[client]
        channel = open_channel(self.host, self.port, ca=self.pki.ca, cert=files.cert, key=files.key)
        try:
            yield JobServiceStub(channel)
        finally:
            channel.close()


@contextlib.asynccontextmanager
async def serving(*servers: ServeProcess) -> AsyncIterator[anyio.abc.TaskGroup]:
    """Start ``servers`` at once; on leaving, stop whichever still run (gracefully,
    so that their jobs are stopped too)."""
    async with anyio.create_task_group() as tg:
        try:
            async with anyio.create_task_group() as starting:
                for server in servers:
                    starting.start_soon(server.start, tg)
            yield tg
        finally:
            with anyio.CancelScope(shield=True):
                for server in servers:
                    if server.process is not None:
                        await server.stop(signal.SIGTERM)
            tg.cancel_scope.cancel()

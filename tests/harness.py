"""The test harness: the host's capabilities, a real server in-process and as a
process, and helpers to read a job's output. Fixtures that use these live in
conftest.py; tests import from here."""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import AsyncIterator, Mapping
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
from pki_fixtures import Certificates

from gen.jobs.v1 import JobServiceStub
from jobs import Chunk, JobManager, ManagerSettings, Stream, UserPolicy
from jobs._core.containment import CGROUP_ROOT, CgroupV1, CgroupV2
from jobs.client import open_channel
from jobs.server import ServerConfig, Serving, serve
from jobs.testing import JOBS as JOBS  # the console script, for the tests that run it
from jobs.testing import JobsServer, ServerDidNotStart

# -- what this host can do: decided here, once -------------------------------------

ROOT = os.geteuid() == 0
CGROUP_V1 = CgroupV1.available()
UNIFIED = CGROUP_ROOT / "unified"
CGROUP_V2_HYBRID = (UNIFIED / "cgroup.controllers").exists() and os.access(UNIFIED, os.W_OK)
CGROUP_V2 = CgroupV2.available()  # a unified host: what a manager picks first
CGROUPS = CGROUP_V2 or CGROUP_V1  # a manager's default containment is a cgroup
_V2_CONTROLLERS = CGROUP_ROOT / "cgroup.controllers"
LIMITS = CGROUP_V1 or (
    CGROUP_V2 and {"cpu", "memory", "pids"} <= set(_V2_CONTROLLERS.read_text().split())
)
NAMESPACES = ROOT and Path("/proc/self/ns/pid").exists()

needs_root = pytest.mark.skipif(not ROOT, reason="needs root")
needs_v1 = pytest.mark.skipif(not CGROUP_V1, reason="needs writable cgroup v1 controllers (root)")
needs_v2 = pytest.mark.skipif(
    not CGROUP_V2_HYBRID, reason="needs a writable cgroup2 at /sys/fs/cgroup/unified"
)
needs_cgroups = pytest.mark.skipif(
    not CGROUPS,
    reason="needs writable cgroups (root): without them jobs fall back to the process group",
)
needs_limits = pytest.mark.skipif(
    not LIMITS, reason="needs writable cgroup cpu, memory and pids controllers (root)"
)
needs_namespaces = pytest.mark.skipif(
    not NAMESPACES, reason="needs root to create PID, mount and network namespaces"
)


TEST_USERS = UserPolicy("root") if ROOT else UserPolicy()
"""Whom the suite's jobs run as: they read and write pytest's private (0700) temporary
directories, so as root when the suite is root. tests/test_least_privilege.py runs
servers with the production default (``nobody``) instead."""


# -- a real server -------------------------------------------------------------------


@dataclass
class RunningServer:
    """A real server on an ephemeral port, and how to reach it."""

    host: str
    port: int
    config: ServerConfig
    pki: Certificates
    statuses: list[tuple[str, Status]]
    manager: JobManager

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
    test_pki: Certificates,
    state_dir: Path,
    settings: ManagerSettings | None = None,
    **options: Any,
) -> AsyncIterator[RunningServer]:
    """Serve on 127.0.0.1 port 0 for the duration of the block (``options`` go to
    ``ServerConfig``; the manager's grace is 2 s unless ``settings`` say otherwise).

    Every call's final status is recorded; leaving fails if any ended UNKNOWN or
    INTERNAL (our bug). Jobs run as ``TEST_USERS`` says unless ``settings`` say otherwise.
    """
    config = ServerConfig(
        cert=test_pki.server.cert,
        key=test_pki.server.key,
        ca=test_pki.ca,
        state_dir=state_dir,
        port=0,
        manager=settings or ManagerSettings(grace=2.0, users=TEST_USERS),
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
        serving: Serving = await tg.start(functools.partial(serve, config, setup=record))
        try:
            yield RunningServer(
                serving.host, serving.port, config, test_pki, statuses, serving.manager
            )
        finally:
            tg.cancel_scope.cancel()
    bad = [(status.name, message) for message, status in statuses if status in _NEVER]
    assert not bad, f"calls ended UNKNOWN or INTERNAL: {bad}"


_NEVER = (Status.UNKNOWN, Status.INTERNAL)


class ServerProcess(JobsServer):
    """`jobs serve` on ``host`` (127.0.0.1) port 0 with the test PKI and a given state
    directory (jobs.testing's server, with the test PKI's clients; ``env`` adds to
    its environment).

    Its jobs run as root when the suite does (see ``TEST_USERS``), unless
    ``options`` give a ``--default-user``. Another server identity is another
    ``pki``: ``dataclasses.replace(test_pki, server=Files(cert, key))``.
    """

    def __init__(
        self,
        pki: Certificates,
        state: Path,
        *options: str,
        host: str = "127.0.0.1",
        env: Mapping[str, str] | None = None,
    ) -> None:
        if ROOT and not any(o.startswith("--default-user") for o in options):
            options = (*options, "--default-user=root")
        super().__init__(state, pki, *options, host=host, env=env)
        self.pki = pki
        self.state = state

    async def start(self) -> None:
        try:
            await super().start()
        except ServerDidNotStart as exc:
            pytest.fail(str(exc))

    async def wait_log(self, text: bytes, timeout: float = 20) -> None:
        """Wait until the server's log contains ``text``."""
        with anyio.fail_after(timeout):
            while text not in self.log:  # noqa: ASYNC110 -- a thread reads the log
                await anyio.sleep(0.05)

    def client_env(self, client: str = "alice") -> dict[str, str]:
        """This environment, with the `jobs` CLI pointed at the server as ``client``."""
        files = self.pki.clients[client]
        return {
            **os.environ,
            "JOBS_ADDR": self.address,
            "JOBS_CA": str(self.pki.ca),
            "JOBS_CERT": str(files.cert),
            "JOBS_KEY": str(files.key),
        }

    @contextlib.asynccontextmanager
    async def stub(self, client: str = "alice") -> AsyncIterator[JobServiceStub]:
        """A stub for the block, as the test PKI's ``client``."""
        channel = self.channel(self.pki.clients[client])
        try:
            yield JobServiceStub(channel)
        finally:
            channel.close()


@contextlib.asynccontextmanager
async def serving(
    pki: Certificates, state: Path, *options: str, env: Mapping[str, str] | None = None
) -> AsyncIterator[ServerProcess]:
    """A ``ServerProcess`` for the block; leaving stops it unless the block did, and
    checks it exited 0."""
    server = ServerProcess(pki, state, *options, env=env)
    await server.start()
    try:
        yield server
    finally:
        if server.process is not None:
            assert await server.stop() == 0


# -- reading a job's output -----------------------------------------------------------


def process_gone(pid: int) -> bool:
    """Whether ``pid`` no longer runs (gone, or a zombie waiting for its reaper)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


async def read_chunks(
    manager: JobManager, job_id: str, *, offset: int = 0, follow: bool = True, owner: str = "alice"
) -> list[Chunk]:
    """Every chunk of a job's output from ``offset``, checking that they are contiguous."""
    chunks: list[Chunk] = []
    position = offset
    async with manager.reader(job_id, owner, offset, follow=follow) as reader:
        async for item in reader:
            assert isinstance(item, Chunk), item
            assert item.offset == position
            position = item.end
            chunks.append(item)
    return chunks


async def read_output(manager: JobManager, job_id: str, *, offset: int = 0) -> bytes:
    """A job's whole output (both streams, in log order), following it to its end."""
    return b"".join(c.data for c in await read_chunks(manager, job_id, offset=offset))


def by_stream(chunks: list[Chunk]) -> tuple[bytes, bytes]:
    """The stdout and the stderr bytes of ``chunks``."""
    return tuple(  # type: ignore[return-value]
        b"".join(c.data for c in chunks if c.stream is stream)
        for stream in (Stream.STDOUT, Stream.STDERR)
    )

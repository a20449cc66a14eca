"""Fixtures only: the anyio backend (asyncio on uvloop), a job manager on tmp_path,
a session-wide PKI, a real server on an ephemeral port and a real etcd. The harness they use
is tests/harness.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from etcd_harness import EtcdServer, etcd_server
from harness import RunningServer, running_server
from pki_fixtures import Certificates, make_pki

from jobs import JobManager, ManagerSettings


@pytest.fixture(scope="session")
def anyio_backend() -> tuple[str, dict[str, object]]:
    return "asyncio", {"use_uvloop": True}


@pytest.fixture
async def manager(tmp_path: Path) -> AsyncIterator[JobManager]:
    async with JobManager(tmp_path / "state", ManagerSettings(grace=2.0)) as manager:
        yield manager


@pytest.fixture(scope="session")
def test_pki(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
async def server(test_pki: Certificates, tmp_path: Path) -> AsyncIterator[RunningServer]:
    async with running_server(test_pki, tmp_path / "state") as running:
        yield running


@pytest.fixture
async def etcd(tmp_path: Path) -> AsyncIterator[EtcdServer]:
    async with etcd_server(tmp_path / "etcd") as running:
        yield running

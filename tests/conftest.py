"""Shared fixtures: the anyio backend (asyncio on uvloop) and a job manager on tmp_path."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from jobs import JobManager


@pytest.fixture(scope="session")
def anyio_backend() -> tuple[str, dict[str, object]]:
    return "asyncio", {"use_uvloop": True}


@pytest.fixture
async def manager(tmp_path: Path) -> AsyncIterator[JobManager]:
    async with JobManager(tmp_path / "state", grace=2.0) as manager:
        yield manager

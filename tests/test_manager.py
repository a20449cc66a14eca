"""The manager: ownership, listing, waiting, caps, and that nothing outlives it."""

from __future__ import annotations

import uuid
from pathlib import Path

import anyio
import pytest
from harness import process_gone

from jobs import (
    JobManager,
    JobNotFound,
    JobSpec,
    JobState,
    ManagerSettings,
    ShuttingDown,
    TooManyJobs,
)


async def test_list_is_per_owner_and_ordered(manager: JobManager) -> None:
    a1 = await manager.start(JobSpec(("true",)), "alice")
    b1 = await manager.start(JobSpec(("true",)), "bob")
    a2 = await manager.start(JobSpec(("true",)), "alice")
    assert [i.id for i in manager.list("alice")] == [a1.id, a2.id]
    assert [i.id for i in manager.list("bob")] == [b1.id]
    assert manager.list("carol") == []


async def test_another_accounts_job_is_not_found_like_an_unknown_one(
    manager: JobManager,
) -> None:
    info = await manager.start(JobSpec(("sleep", "3600")), "alice")
    errors = []
    for job_id in (info.id, str(uuid.uuid4()), "not-a-uuid", ""):
        with pytest.raises(JobNotFound) as caught:
            manager.status(job_id, "bob")
        errors.append(str(caught.value))
        with pytest.raises(JobNotFound):
            await manager.stop(job_id, "bob")
        with pytest.raises(JobNotFound):
            await manager.wait(job_id, "bob")
        with pytest.raises(JobNotFound):
            manager.reader(job_id, "bob")
    assert len(set(errors)) == 1
    assert manager.status(info.id, "alice").state is JobState.RUNNING  # bob's stop did nothing


async def test_wait_returns_when_the_job_ends(manager: JobManager) -> None:
    info = await manager.start(JobSpec(("sleep", "0.2")), "alice")
    waiters = []

    async def wait() -> None:
        waiters.append(await manager.wait(info.id, "alice"))

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(wait)
    assert [w.state for w in waiters] == [JobState.EXITED] * 5


async def test_running_job_cap_per_account(tmp_path: Path) -> None:
    async with JobManager(tmp_path, ManagerSettings(max_running=2)) as manager:
        first = await manager.start(JobSpec(("sleep", "3600")), "alice")
        await manager.start(JobSpec(("sleep", "3600")), "alice")
        with pytest.raises(TooManyJobs):
            await manager.start(JobSpec(("sleep", "3600")), "alice")
        await manager.start(JobSpec(("true",)), "bob")  # another account has its own cap
        await manager.stop(first.id, "alice")
        await manager.start(JobSpec(("true",)), "alice")  # a place was freed


async def test_concurrent_starts_respect_the_cap(tmp_path: Path) -> None:
    async with JobManager(tmp_path, ManagerSettings(max_running=5)) as manager:
        refused = 0

        async def start() -> None:
            nonlocal refused
            try:
                await manager.start(JobSpec(("sleep", "3600")), "alice")
            except TooManyJobs:
                refused += 1

        async with anyio.create_task_group() as tg:
            for _ in range(12):
                tg.start_soon(start)
        assert refused == 7
        assert len(manager.list("alice")) == 5


async def test_leaving_the_manager_stops_every_job(tmp_path: Path) -> None:
    async with JobManager(tmp_path, ManagerSettings(grace=1)) as manager:
        infos = [await manager.start(JobSpec(("sleep", "3600")), "alice") for _ in range(3)]
        stubborn = await manager.start(
            JobSpec(("sh", "-c", "trap '' TERM; exec sleep 3600")), "bob"
        )
    for info in [*infos, stubborn]:
        assert info.pid is not None
        assert process_gone(info.pid)
        assert manager.status(info.id, info.owner).state is JobState.SHUTDOWN
    with pytest.raises(ShuttingDown):
        await manager.start(JobSpec(("true",)), "alice")


async def test_cancelled_start_leaves_a_job_that_belongs_to_the_manager(
    manager: JobManager,
) -> None:
    with anyio.CancelScope() as scope:
        scope.cancel()
        await manager.start(JobSpec(("sleep", "3600")), "alice")
    # The caller was cancelled but the spawn was shielded: the job exists and is owned.
    (info,) = manager.list("alice")
    assert info.state is JobState.RUNNING
    await manager.stop(info.id, "alice")


async def test_manager_repr(manager: JobManager) -> None:
    await manager.start(JobSpec(("sleep", "3600")), "alice")
    assert repr(manager) == f"<JobManager {manager.state_dir} jobs=1 running=1>"

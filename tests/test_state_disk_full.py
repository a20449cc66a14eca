"""A full state disk: a job has its record before its process starts, or it does not
start (RESOURCE_EXHAUSTED); the records of running jobs are updated in place."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from harness import needs_root, running_server
from pki_fixtures import Certificates

from gen.jobs.v1 import RunRequest, StopRequest
from jobs import JobManager, JobSpec, JobState
from jobs._core.records import RECORD
from jobs.errors import StateDiskFull


@contextlib.asynccontextmanager
async def small_disk(path: Path, size: str = "256k") -> AsyncIterator[Path]:
    path.mkdir()  # noqa: ASYNC240 (instant)
    await anyio.run_process(["mount", "-t", "tmpfs", "-o", f"size={size}", "jobs-full", str(path)])
    try:
        yield path
    finally:
        await anyio.run_process(["umount", "-l", str(path)])


def fill(directory: Path) -> None:
    """Fill the file system of ``directory`` to its last byte."""
    fd = os.open(directory / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (65536, 4096, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)


@needs_root  # mounting a small tmpfs
async def test_no_room_for_a_record_means_no_job(tmp_path: Path) -> None:
    async with small_disk(tmp_path / "disk") as disk:
        async with JobManager(disk / "state") as manager:
            fill(disk)
            with pytest.raises(StateDiskFull):
                await manager.start(JobSpec(("/bin/true",)), "alice")
            assert manager.list("alice") == []
        # Nothing half-made is left behind either.
        assert list((disk / "state" / "jobs").iterdir()) == []


@needs_root
async def test_a_running_job_survives_a_full_disk_and_a_restart(tmp_path: Path) -> None:
    """Started, then the disk fills: its updates (pid, then its end) still land on disk."""
    async with small_disk(tmp_path / "disk") as disk:
        async with JobManager(disk / "state") as manager:
            info = await manager.start(JobSpec(("sleep", "30")), "alice")
            fill(disk)
            final = await manager.stop(info.id, "alice", grace=0)
            assert final.state is JobState.STOPPED
        async with JobManager(disk / "state") as manager:
            again = manager.status(info.id, "alice")
            assert again.state is JobState.STOPPED
            assert again.pid == info.pid


@needs_root
async def test_the_record_precedes_the_process(tmp_path: Path) -> None:
    """The record exists, padded for its updates, before the process starts."""
    async with JobManager(tmp_path / "state") as manager:
        info = await manager.start(JobSpec(("sleep", "30")), "alice")
        record = tmp_path / "state" / "jobs" / info.id / RECORD
        text = record.read_text()
        assert text.rstrip().endswith("}")
        assert len(text) - len(text.rstrip()) > 100  # room to spare for updates
        inode = os.stat(record).st_ino
        await manager.stop(info.id, "alice", grace=0)
        assert os.stat(record).st_ino == inode  # updated in place, never replaced


@needs_root
async def test_run_on_a_full_disk_is_resource_exhausted(
    test_pki: Certificates, tmp_path: Path
) -> None:
    async with (
        small_disk(tmp_path / "disk") as disk,
        running_server(test_pki, disk / "state") as server,
        server.stub() as stub,
    ):
        fill(disk)
        with pytest.raises(GRPCError) as raised:
            await stub.run(RunRequest(command=["/bin/true"]))
        assert raised.value.status is Status.RESOURCE_EXHAUSTED
        assert "state disk is full" in (raised.value.message or "")
        # And the server is otherwise fine: a stop of nothing is NOT_FOUND.
        with pytest.raises(GRPCError) as missing:
            await stub.stop(StopRequest(job_id="nope"))
        assert missing.value.status is Status.NOT_FOUND

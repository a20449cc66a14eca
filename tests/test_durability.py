"""Durability and operation: history across restarts, crash recovery, graceful shutdown,
bounded memory and disk, a full disk. The server here is the real `jobs serve` process."""

from __future__ import annotations

import hashlib
import os
import signal
import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from harness import ServerProcess, needs_cgroups, needs_root, process_gone
from pki_fixtures import Certificates

from gen.jobs import v1 as pb
from jobs import JobManager, JobSpec, JobState, ManagerSettings
from jobs._core.containment import CGROUP_ROOT
from jobs._core.manager import cgroup_scope


@pytest.fixture
async def server_process(test_pki: Certificates, tmp_path: Path) -> AsyncIterator[ServerProcess]:
    server = ServerProcess(test_pki, tmp_path / "state", "--grace=1s")
    await server.start()
    try:
        yield server
    finally:
        if server.process is not None:
            # Gracefully: a killed server would leave its cgroup directories to
            # the next start on the same state directory, which never comes here.
            await server.stop(signal.SIGTERM)


async def collect(stub: pb.JobServiceStub, job_id: str, offset: int = 0) -> tuple[bytes, int]:
    data = bytearray()
    dropped = 0
    async for message in stub.logs(pb.LogsRequest(job_id=job_id, follow=True, offset=offset)):
        dropped += message.dropped
        data += message.data
    return bytes(data), dropped


async def test_history_and_output_survive_a_restart(
    server_process: ServerProcess, tmp_path: Path
) -> None:
    payload = os.urandom(3_000_000)
    (tmp_path / "blob").write_bytes(payload)
    async with server_process.stub() as stub:
        job = (
            await stub.run(pb.RunRequest(command=["sh", "-c", f"cat {tmp_path}/blob; exit 4"]))
        ).job
        before = (await stub.wait(pb.WaitRequest(job_id=job.id))).job
    assert await server_process.stop() == 0
    await server_process.start()
    async with server_process.stub() as stub:
        after = (await stub.status(pb.StatusRequest(job_id=job.id))).job
        assert after == before
        assert (after.state, after.exit_code) == (pb.JobState.EXITED, 4)
        assert [j.id for j in (await stub.list(pb.ListRequest())).jobs] == [job.id]
        assert (await collect(stub, job.id)) == (payload, 0)
        assert (await collect(stub, job.id, offset=1_000_000))[0] == payload[1_000_000:]


@needs_cgroups  # the setsid escapee is found through the job's cgroup
async def test_a_crash_leaves_the_job_lost_and_nothing_running(
    server_process: ServerProcess,
) -> None:
    script = "setsid sleep 3600 < /dev/null > /dev/null 2>&1 & echo $!; exec sleep 3600"
    async with server_process.stub() as stub:
        job = (await stub.run(pb.RunRequest(command=["sh", "-c", script]))).job
        async for message in stub.logs(pb.LogsRequest(job_id=job.id, follow=True)):
            escapee = int(message.data)
            break
    assert await server_process.stop(signal.SIGKILL) == -signal.SIGKILL
    assert not process_gone(job.pid)  # the crash itself kills no job
    assert not process_gone(escapee)
    await server_process.start()
    async with server_process.stub() as stub:
        lost = (await stub.status(pb.StatusRequest(job_id=job.id))).job
    assert lost.state is pb.JobState.LOST
    assert process_gone(job.pid)
    assert process_gone(escapee)
    scope = cgroup_scope(server_process.state)
    assert not [p for p in CGROUP_ROOT.glob(f"*/{scope}/*") if p.is_dir()]


async def test_sigterm_under_load_ends_every_call_with_a_status(
    server_process: ServerProcess,
) -> None:
    outcomes: list[object] = []
    async with server_process.stub() as stub:
        jobs = [
            (
                await stub.run(
                    pb.RunRequest(command=["sh", "-c", "trap '' TERM; echo up; sleep 3600"])
                )
            ).job,
            (await stub.run(pb.RunRequest(command=["sleep", "3600"]))).job,
        ]

        async def follow(job_id: str) -> None:
            outcomes.append(await collect(stub, job_id))

        async def wait(job_id: str) -> None:
            outcomes.append((await stub.wait(pb.WaitRequest(job_id=job_id))).job.state)

        async with anyio.create_task_group() as tg:
            for job in jobs:
                tg.start_soon(follow, job.id)
                tg.start_soon(wait, job.id)
            await anyio.sleep(0.5)
            started = time.monotonic()
            assert await server_process.stop() == 0
            elapsed = time.monotonic() - started
    assert elapsed < 1 + 5  # the grace, plus a few seconds
    assert sorted(map(str, outcomes)) == sorted(
        map(str, [(b"up\n", 0), (b"", 0), pb.JobState.SHUTDOWN, pb.JobState.SHUTDOWN])
    )
    await server_process.start()
    async with server_process.stub() as stub:
        for job in jobs:
            final = (await stub.status(pb.StatusRequest(job_id=job.id))).job
            assert final.state is pb.JobState.SHUTDOWN
            assert process_gone(job.pid)


async def test_400_mb_of_output_keeps_the_server_small(server_process: ServerProcess) -> None:
    async with server_process.stub() as stub:
        job = (await stub.run(pb.RunRequest(command=["head", "-c", "400M", "/dev/zero"]))).job
        final = (await stub.wait(pb.WaitRequest(job_id=job.id))).job
    assert final.output_bytes == 400 << 20
    assert server_process.rss_peak() < 200 << 20


async def test_a_follower_crossing_the_retention_cap(
    test_pki: Certificates, tmp_path: Path
) -> None:
    payload = os.urandom(6 << 20)
    (tmp_path / "blob").write_bytes(payload)
    server = ServerProcess(test_pki, tmp_path / "state", "--output-cap=1M")
    await server.start()
    try:
        async with server.stub() as stub:
            job = (await stub.run(pb.RunRequest(command=["cat", str(tmp_path / "blob")]))).job
            await stub.wait(pb.WaitRequest(job_id=job.id))
            data, dropped = await collect(stub, job.id)
        assert dropped > 0
        assert dropped + len(data) == len(payload)
        assert data == payload[dropped:]
        kept = sum(
            p.stat().st_size
            for p in (tmp_path / "state" / "jobs" / job.id / "output").glob("*.out")
        )
        assert kept <= (1 << 20) + (1 << 20)  # the cap plus at most one chunk
    finally:
        await server.stop()


async def _mount_tmpfs(path: Path, size: str) -> None:
    path.mkdir()  # noqa: ASYNC240 (instant)
    await anyio.run_process(["mount", "-t", "tmpfs", "-o", f"size={size}", "jobs-test", str(path)])


@needs_root  # mounting a small tmpfs
async def test_a_full_disk_loses_output_but_nothing_else(tmp_path: Path) -> None:
    state = tmp_path / "small"
    await _mount_tmpfs(state, "1M")
    try:
        async with JobManager(state / "state") as manager:
            info = await manager.start(JobSpec(("head", "-c", "5000000", "/dev/zero")), "alice")
            final = await manager.wait(info.id, "alice")
            assert (final.state, final.exit_code) == (JobState.EXITED, 0)
            assert final.lost_bytes > 0
            assert final.output_bytes + final.lost_bytes == 5_000_000
            after = await manager.start(JobSpec(("echo", "still here")), "alice")
            assert (await manager.wait(after.id, "alice")).exit_code == 0
    finally:
        await anyio.run_process(["umount", str(state)])


async def test_the_state_directory_is_private(tmp_path: Path) -> None:
    async with JobManager(tmp_path / "state") as manager:
        info = await manager.start(JobSpec(("echo", "secret")), "alice")
        await manager.wait(info.id, "alice")
    for root, dirs, files in os.walk(tmp_path / "state"):
        for name in dirs + files:
            mode = stat.S_IMODE(os.stat(os.path.join(root, name)).st_mode)
            assert mode & 0o077 == 0, (name, oct(mode))
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700


async def test_history_cap_forgets_the_oldest(tmp_path: Path) -> None:
    async with JobManager(tmp_path / "state", ManagerSettings(history=3)) as manager:
        ids = []
        for n in range(5):
            info = await manager.start(JobSpec(("echo", str(n))), "alice")
            await manager.wait(info.id, "alice")
            ids.append(info.id)
        assert [i.id for i in manager.list("alice")] == ids[2:]
        assert sorted(p.name for p in (tmp_path / "state" / "jobs").iterdir()) == sorted(ids[2:])
    async with JobManager(tmp_path / "state", ManagerSettings(history=1)) as manager:
        assert [i.id for i in manager.list("alice")] == ids[4:]


async def test_history_age_forgets_ended_jobs_past_it_and_never_running_ones(
    tmp_path: Path,
) -> None:
    async with JobManager(tmp_path / "state", ManagerSettings(history_age=0.5)) as manager:
        sleeper = await manager.start(JobSpec(("sleep", "3600")), "alice")
        old = await manager.start(JobSpec(("true",)), "alice")
        await manager.wait(old.id, "alice")
        await anyio.sleep(0.7)
        new = await manager.start(JobSpec(("true",)), "alice")
        await manager.wait(new.id, "alice")  # its end prunes what is past the age
        assert [i.id for i in manager.list("alice")] == [sleeper.id, new.id]
        assert not (tmp_path / "state" / "jobs" / old.id).exists()
        await manager.stop(sleeper.id, "alice", grace=0)
    await anyio.sleep(0.7)
    async with JobManager(tmp_path / "state", ManagerSettings(history_age=0.5)) as manager:
        assert manager.list("alice") == []  # pruned at start-up


async def test_resume_after_a_dropped_connection_has_no_gap_and_no_duplicate(
    server_process: ServerProcess,
) -> None:
    async with server_process.stub() as stub:
        job = (
            await stub.run(
                pb.RunRequest(command=["sh", "-c", "seq 1 200000; sleep 0.5; seq 1 1000"])
            )
        ).job
        first = bytearray()
        async for message in stub.logs(pb.LogsRequest(job_id=job.id, follow=True)):
            first += message.data
            if len(first) > 100_000:
                break  # the connection drops
        rest, _ = await collect(stub, job.id, offset=len(first))
        whole, _ = await collect(stub, job.id)
    assert hashlib.sha256(bytes(first) + rest).digest() == hashlib.sha256(whole).digest()

"""A job's life: status, stop, grace, timeout, and the end of its process tree."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import anyio
import pytest
from harness import by_stream, process_gone, read_chunks, read_output

from jobs import Chunk, JobManager, JobSpec, JobState, ManagerSettings

LONG_GRACE = 20.0
"""A manager grace far beyond any bound below: a stop that used it fails its test."""


async def wait_for_output(manager: JobManager, job_id: str, size: int) -> bytes:
    """The job's first ``size`` bytes of output, waiting for them to arrive."""
    data = bytearray()
    async with manager.reader(job_id, "alice", follow=True) as reader:
        async for chunk in reader:
            assert isinstance(chunk, Chunk)
            data.extend(chunk.data)
            if len(data) >= size:
                break
    return bytes(data)


async def test_status_of_a_running_and_an_ended_job(manager: JobManager) -> None:
    before = time.time()
    info = await manager.start(JobSpec(("sleep", "0.3")), "alice")
    assert info.state is JobState.RUNNING
    assert info.owner == "alice"
    assert info.spec.argv == ("sleep", "0.3")
    assert info.pid is not None
    assert info.pid > 0
    assert before <= info.started_at <= time.time()
    assert info.ended_at is None
    assert info.exit_code is None
    assert info.signal is None
    final = await manager.wait(info.id, "alice")
    assert final.state is JobState.EXITED
    assert final.exit_code == 0
    assert final.signal is None
    assert final.ended_at is not None
    assert final.ended_at >= final.started_at + 0.25


async def test_killed_by_a_signal_from_elsewhere(manager: JobManager) -> None:
    info = await manager.start(JobSpec(("sh", "-c", "kill -KILL $$")), "alice")
    final = await manager.wait(info.id, "alice")
    assert (final.state, final.signal, final.exit_code) == (JobState.SIGNALED, 9, None)


async def test_stop_sends_sigterm(manager: JobManager) -> None:
    info = await manager.start(JobSpec(("sleep", "3600")), "alice")
    started = time.monotonic()
    final = await manager.stop(info.id, "alice", grace=30)
    assert time.monotonic() - started < 5
    assert (final.state, final.signal) == (JobState.STOPPED, signal.SIGTERM)
    assert info.pid is not None
    assert process_gone(info.pid)


async def test_sigterm_ignoring_job_is_killed_after_its_grace(tmp_path: Path) -> None:
    # The manager's grace is far longer than the call's: only the call's fits the bound.
    async with JobManager(tmp_path / "state", ManagerSettings(grace=LONG_GRACE)) as manager:
        info = await manager.start(
            JobSpec(("sh", "-c", "trap '' TERM; echo ready; while :; do sleep 1; done")), "alice"
        )
        assert await wait_for_output(manager, info.id, 6) == b"ready\n"
        started = time.monotonic()
        final = await manager.stop(info.id, "alice", grace=0.5)
        elapsed = time.monotonic() - started
        assert 0.5 <= elapsed < LONG_GRACE / 2
        assert (final.state, final.signal) == (JobState.STOPPED, signal.SIGKILL)


async def test_stop_right_after_start(manager: JobManager) -> None:
    for _ in range(20):
        info = await manager.start(JobSpec(("sleep", "3600")), "alice")
        final = await manager.stop(info.id, "alice", grace=5)
        assert final.state is JobState.STOPPED
        assert info.pid is not None
        assert process_gone(info.pid)


async def test_concurrent_stops_agree(manager: JobManager) -> None:
    info = await manager.start(JobSpec(("sleep", "3600")), "alice")
    results = []

    async def stop() -> None:
        results.append(await manager.stop(info.id, "alice"))

    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(stop)
    assert len(results) == 10
    assert len({(r.state, r.signal, r.ended_at) for r in results}) == 1


async def test_stopping_an_ended_job_returns_its_final_status(manager: JobManager) -> None:
    info = await manager.start(JobSpec(("sh", "-c", "exit 4")), "alice")
    final = await manager.wait(info.id, "alice")
    again = await manager.stop(info.id, "alice")
    assert again == final
    assert (again.state, again.exit_code) == (JobState.EXITED, 4)


async def test_stopped_job_keeps_its_output(manager: JobManager) -> None:
    info = await manager.start(JobSpec(("sh", "-c", "echo before; exec sleep 3600")), "alice")
    assert await wait_for_output(manager, info.id, 7) == b"before\n"
    await manager.stop(info.id, "alice")
    assert await read_output(manager, info.id) == b"before\n"


async def test_leftover_background_process_is_killed_with_the_main_one(
    manager: JobManager,
) -> None:
    started = time.monotonic()
    info = await manager.start(JobSpec(("sh", "-c", "sleep 3600 & echo $!")), "alice")
    final = await manager.wait(info.id, "alice")
    assert time.monotonic() - started < 3
    assert final.state is JobState.EXITED
    sleeper = int(await read_output(manager, info.id))
    assert process_gone(sleeper)


async def test_stop_kills_the_whole_tree(manager: JobManager) -> None:
    info = await manager.start(
        JobSpec(("sh", "-c", "sleep 3600 & echo $!; sleep 3600 & echo $!; wait")), "alice"
    )
    lines = await wait_for_output(manager, info.id, 4)
    while lines.count(b"\n") < 2:
        lines = await wait_for_output(manager, info.id, len(lines) + 1)
    await manager.stop(info.id, "alice")
    assert all(process_gone(int(pid)) for pid in lines.split())


async def test_timeout(manager: JobManager) -> None:
    started = time.monotonic()
    info = await manager.start(JobSpec(("sleep", "3600"), timeout=0.3), "alice")
    final = await manager.wait(info.id, "alice")
    assert 0.3 <= time.monotonic() - started < 5
    assert (final.state, final.signal) == (JobState.TIMED_OUT, signal.SIGTERM)


async def test_job_ending_before_its_timeout_is_not_timed_out(manager: JobManager) -> None:
    info = await manager.start(JobSpec(("true",), timeout=30), "alice")
    final = await manager.wait(info.id, "alice")
    assert (final.state, final.exit_code) == (JobState.EXITED, 0)


async def test_no_trailing_byte_is_lost(manager: JobManager) -> None:
    # The main process exits right after its last write; then its tree is killed.
    for _ in range(20):
        info = await manager.start(
            JobSpec(("sh", "-c", "printf 'x%.0s' $(seq 1000); printf end >&2")), "alice"
        )
        await manager.wait(info.id, "alice")
        assert by_stream(await read_chunks(manager, info.id)) == (b"x" * 1000, b"end")


async def test_repr(manager: JobManager) -> None:
    info = await manager.start(JobSpec(("sleep", "3600")), "alice")
    job = manager.get(info.id, "alice")
    async with manager.reader(info.id, "alice", follow=True):
        assert repr(job) == (
            f"<Job {info.id[:8]}… RUNNING pid={info.pid} owner='alice' followers=1>"
        )
    await manager.stop(info.id, "alice")
    assert repr(job).startswith(f"<Job {info.id[:8]}… STOPPED")


@pytest.mark.parametrize(
    ("managers", "calls"),
    [(LONG_GRACE, 0.0), (LONG_GRACE, 0.3), (0.1, 2.0)],
    ids=["zero-under-long", "short-under-long", "long-over-short"],
)
async def test_grace_per_call(tmp_path: Path, managers: float, calls: float) -> None:
    # The manager's grace and the call's are far apart, so the time the stop takes
    # tells which one was used, whichever way round they are.
    async with JobManager(tmp_path / "state", ManagerSettings(grace=managers)) as manager:
        info = await manager.start(
            JobSpec(("sh", "-c", "trap '' TERM; echo ready; exec sleep 3600")), "alice"
        )
        assert await wait_for_output(manager, info.id, 6) == b"ready\n"
        started = time.monotonic()
        final = await manager.stop(info.id, "alice", grace=calls)
        elapsed = time.monotonic() - started
        assert calls <= elapsed < calls + LONG_GRACE / 2
        assert (final.state, final.signal) == (JobState.STOPPED, signal.SIGKILL)


async def test_timeout_uses_the_managers_grace(tmp_path: Path) -> None:
    # A job that ignores SIGTERM is SIGKILLed after the manager's grace, not 10 s.
    async with JobManager(tmp_path / "state", ManagerSettings(grace=0.3)) as manager:
        started = time.monotonic()
        info = await manager.start(
            JobSpec(("sh", "-c", "trap '' TERM; exec sleep 3600"), timeout=0.2), "alice"
        )
        final = await manager.wait(info.id, "alice")
        assert time.monotonic() - started < 5
        assert (final.state, final.signal) == (JobState.TIMED_OUT, signal.SIGKILL)

"""The core's side of the operators' CLI: names and labels, id resolution, the job's
environment and working directory, usage figures, and log selection."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import anyio
import pytest
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from harness import RunningServer, needs_v1, read_output

from gen.jobs import v1 as pb
from jobs import (
    AmbiguousJob,
    Chunk,
    InvalidArgument,
    JobManager,
    JobNotFound,
    JobSpec,
    JobState,
    ManagerSettings,
    NameInUse,
    Selection,
    Stream,
)
from jobs._core.containment import ProcessGroup
from jobs._core.output import OutputLog
from jobs.selectors import parse_selector

# -- names, labels, ids ----------------------------------------------------------------


async def test_a_name_is_unique_among_running_jobs_and_reusable_after(
    manager: JobManager,
) -> None:
    first = await manager.start(JobSpec(("sleep", "3600"), name="build"), "alice")
    with pytest.raises(NameInUse):
        await manager.start(JobSpec(("true",), name="build"), "alice")
    # Another account's names are its own.
    other = await manager.start(JobSpec(("true",), name="build"), "bob")
    assert manager.get("build", "alice").id == first.id
    assert manager.get("build", "bob").id == other.id
    await manager.stop("build", "alice", grace=0)
    second = await manager.start(JobSpec(("true",), name="build"), "alice")
    await manager.wait(second.id, "alice")
    # Both ended: the name refers to the newest.
    assert manager.get("build", "alice").id == second.id
    third = await manager.start(JobSpec(("sleep", "3600"), name="build"), "alice")
    # One runs: the name refers to it, whatever ended later.
    assert manager.get("build", "alice").id == third.id


async def test_a_failed_start_frees_its_name(manager: JobManager) -> None:
    with pytest.raises(Exception, match="not found"):
        await manager.start(JobSpec(("/no/such/command",), name="x1"), "alice")
    await manager.start(JobSpec(("true",), name="x1"), "alice")


@pytest.mark.parametrize("name", ["", "-rm", "a b", "x/y", "é", "a" * 129])
def test_bad_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidArgument):
        JobSpec(("true",), name=name)


def test_bad_labels_are_refused() -> None:
    with pytest.raises(InvalidArgument):
        JobSpec(("true",), labels=(("bad key", "v"),))


async def test_ids_by_prefix_of_six_or_more(
    manager: JobManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = iter(
        [
            uuid.UUID("abcdef01-0000-4000-8000-000000000001"),
            uuid.UUID("abcdef02-0000-4000-8000-000000000002"),
        ]
    )
    monkeypatch.setattr(uuid, "uuid4", lambda: next(ids))
    a = await manager.start(JobSpec(("true",)), "alice")
    b = await manager.start(JobSpec(("true",)), "alice")
    assert manager.get("abcdef01", "alice").id == a.id
    assert manager.get("abcdef02-00", "alice").id == b.id
    with pytest.raises(AmbiguousJob) as caught:
        manager.get("abcdef", "alice")
    assert a.id in str(caught.value)
    assert b.id in str(caught.value)
    with pytest.raises(JobNotFound):
        manager.get("abcde", "alice")  # too short to be a prefix
    with pytest.raises(JobNotFound):
        manager.get("abcdef01", "bob")  # another account's job stays invisible


async def test_list_by_selector_and_state(manager: JobManager) -> None:
    web = await manager.start(
        JobSpec(("sleep", "3600"), labels=(("app", "web"), ("tier", "front"))), "alice"
    )
    db = await manager.start(JobSpec(("true",), labels=(("app", "db"),)), "alice")
    await manager.wait(db.id, "alice")

    def ids(selector: str, *states: JobState) -> list[str]:
        matches = parse_selector(selector).matches
        return [i.id for i in manager.list("alice", labels=matches, states=states)]

    assert ids("app=web") == [web.id]
    assert ids("app in (web,db)") == [web.id, db.id]
    assert ids("!tier") == [db.id]
    assert ids("", JobState.RUNNING) == [web.id]
    assert ids("app", JobState.EXITED) == [db.id]
    info = manager.status(web.id, "alice")
    assert dict(info.spec.labels) == {"app": "web", "tier": "front"}


async def test_names_labels_and_usage_survive_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "state"
    async with JobManager(state) as manager:
        info = await manager.start(
            JobSpec(("true",), name="nightly", labels=(("ci", "yes"),)), "alice"
        )
        ended = await manager.wait(info.id, "alice")
    async with JobManager(state) as manager:
        again = manager.status("nightly", "alice")
    assert again.id == info.id
    assert dict(again.spec.labels) == {"ci": "yes"}
    assert again.usage == ended.usage
    assert again.usage is not None


# -- what a job sees ------------------------------------------------------------------


async def test_job_id_and_name_are_in_the_environment(manager: JobManager) -> None:
    info = await manager.start(
        JobSpec(("env",), name="named", env=(("JOBS_JOB_ID", "forged"),)), "alice"
    )
    env = dict(
        line.split("=", 1) for line in (await read_output(manager, info.id)).decode().split()
    )
    assert env["JOBS_JOB_ID"] == info.id
    assert env["JOBS_JOB_NAME"] == "named"
    unnamed = await manager.start(JobSpec(("env",)), "alice")
    assert b"JOBS_JOB_NAME" not in await read_output(manager, unnamed.id)


HOME = os.path.realpath(os.path.expanduser("~"))


async def test_default_cwd_is_the_home_of_the_environment(manager: JobManager) -> None:
    info = await manager.start(JobSpec(("pwd",)), "alice")
    home = HOME
    assert (await read_output(manager, info.id)).decode().strip() == home
    info = await manager.start(JobSpec(("pwd",), env=(("HOME", "/nonexistent/home"),)), "alice")
    assert await read_output(manager, info.id) == b"/\n"


# -- usage -----------------------------------------------------------------------------

BURN = (
    "python3",
    "-c",
    "import time\n"
    "block = bytearray(64 << 20)\n"
    "for i in range(0, len(block), 4096): block[i] = 1\n"
    "end = time.process_time() + 0.3\n"
    "while time.process_time() < end: pass\n",
)


def _check_burn_usage(usage: object, source: str) -> None:
    from jobs import Usage

    assert isinstance(usage, Usage)
    assert usage.source == source
    assert usage.cpu_user + usage.cpu_system >= 0.25
    assert usage.memory_peak >= 64 << 20


@needs_v1
async def test_usage_from_the_cgroup(manager: JobManager) -> None:
    info = await manager.start(JobSpec(BURN), "alice")
    live = manager.status(info.id, "alice").usage
    assert live is not None
    assert live.source == "cgroup v1"
    final = await manager.wait(info.id, "alice")
    _check_burn_usage(final.usage, "cgroup v1")


async def test_usage_from_rusage_without_cgroups(tmp_path: Path) -> None:
    async with JobManager(
        tmp_path / "state", ManagerSettings(grace=2.0), containment=ProcessGroup()
    ) as manager:
        info = await manager.start(JobSpec(("sleep", "3600")), "alice")
        live = manager.status(info.id, "alice").usage
        assert live is not None
        assert live.source == "rusage"
        assert live.memory_peak > 0  # from /proc while it runs
        await manager.stop(info.id, "alice", grace=0)
        info = await manager.start(JobSpec(BURN), "alice")
        final = await manager.wait(info.id, "alice")
    _check_burn_usage(final.usage, "rusage")


# -- log selection ---------------------------------------------------------------------


def _log(tmp_path: Path, pieces: list[tuple[Stream, bytes]]) -> OutputLog:
    log = OutputLog(tmp_path / "out")
    for stream, data in pieces:
        log.append(stream, data)
    log.close()
    return log


async def _read(log: OutputLog, selection: Selection) -> list[Chunk]:
    chunks = []
    async with log.reader(0, selection=selection) as reader:
        async for item in reader:
            assert isinstance(item, Chunk)
            chunks.append(item)
    return chunks


async def test_tail_counts_lines_of_the_selected_streams(tmp_path: Path) -> None:
    log = _log(
        tmp_path,
        [
            (Stream.STDOUT, b"o1\no2\n"),
            (Stream.STDERR, b"e1\ne2\n"),
            (Stream.STDOUT, b"o3\no4"),  # no final newline: still a line
        ],
    )

    async def text(selection: Selection) -> bytes:
        return b"".join(c.data for c in await _read(log, selection))

    assert await text(Selection(tail_lines=2)) == b"o3\no4"
    assert await text(Selection(tail_lines=3)) == b"e2\no3\no4"
    assert await text(Selection(tail_lines=3, streams=frozenset({Stream.STDOUT}))) == (
        b"o2\no3\no4"
    )
    assert await text(Selection(tail_lines=1, streams=frozenset({Stream.STDERR}))) == b"e2\n"
    assert await text(Selection(tail_lines=100)) == b"o1\no2\ne1\ne2\no3\no4"
    assert await text(Selection(tail_lines=0)) == b""


async def test_since_and_until_use_the_chunk_times(tmp_path: Path) -> None:
    log = OutputLog(tmp_path / "out")
    log.append(Stream.STDOUT, b"early\n")
    await anyio.sleep(0.02)
    middle = time.time_ns()
    log.append(Stream.STDOUT, b"middle\n")
    await anyio.sleep(0.02)
    late = time.time_ns()
    log.append(Stream.STDERR, b"late\n")
    log.close()
    got = await _read(log, Selection(since_ns=middle))
    assert b"".join(c.data for c in got) == b"middle\nlate\n"
    got = await _read(log, Selection(since_ns=middle, until_ns=late))
    assert b"".join(c.data for c in got) == b"middle\n"
    got = await _read(log, Selection(until_ns=middle))
    assert b"".join(c.data for c in got) == b"early\n"


async def test_tail_with_until_counts_back_from_until(tmp_path: Path) -> None:
    log = OutputLog(tmp_path / "out")
    log.append(Stream.STDOUT, b"a1\na2\na3\n")
    await anyio.sleep(0.02)
    until = time.time_ns()
    log.append(Stream.STDOUT, b"b1\nb2\n")
    log.close()

    async def text(selection: Selection) -> bytes:
        return b"".join(c.data for c in await _read(log, selection))

    # The last lines of the window, as `--until T --tail N` reads: not the log's last.
    assert await text(Selection(tail_lines=2, until_ns=until)) == b"a2\na3\n"
    assert await text(Selection(tail_lines=9, until_ns=until)) == b"a1\na2\na3\n"
    assert await text(Selection(tail_lines=0, until_ns=until)) == b""
    assert await text(Selection(tail_lines=1, until_ns=0)) == b""


async def test_chunk_times_keeps_pieces_of_one_time(tmp_path: Path) -> None:
    log = OutputLog(tmp_path / "out")
    for n in range(3):
        log.append(Stream.STDOUT, b"line%d\n" % n)
        await anyio.sleep(0.01)
    log.close()
    joined = await _read(log, Selection())
    assert [c.data for c in joined] == [b"line0\nline1\nline2\n"]  # one read, first time
    apart = await _read(log, Selection(chunk_times=True))
    assert [c.data for c in apart] == [b"line0\n", b"line1\n", b"line2\n"]
    assert len({c.time_ns for c in apart}) == 3


async def test_a_tail_of_a_big_log_reads_little_of_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = OutputLog(tmp_path / "out")
    line = b"x" * 99 + b"\n"
    block = line * 1000  # 100 kB a chunk
    for _ in range(400):  # 40 MB, over one segment
        log.append(Stream.STDOUT, block)
    log.close()
    read = 0
    pread = os.pread

    def counting(fd: int, size: int, offset: int) -> bytes:
        nonlocal read
        data = pread(fd, size, offset)
        read += len(data)
        return data

    monkeypatch.setattr(os, "pread", counting)
    chunks = await _read(log, Selection(tail_lines=10))
    assert b"".join(c.data for c in chunks) == line * 10
    assert read < 300_000, read  # the last chunk and a few index records, not 40 MB


async def test_a_follower_with_until_stops_at_it(manager: JobManager) -> None:
    info = await manager.start(JobSpec(("sleep", "3600")), "alice")
    until = time.time_ns() + 300_000_000
    started = time.monotonic()
    reader = manager.reader(info.id, "alice", follow=True, selection=Selection(until_ns=until))
    async with reader:
        assert [item async for item in reader] == []
    assert time.monotonic() - started < 10


# -- through the service --------------------------------------------------------------


async def test_the_service_answers_with_the_right_statuses(server: RunningServer) -> None:
    async with server.stub() as stub:
        job = (await stub.run(pb.RunRequest(command=["sleep", "30"], name="svc"))).job
        assert job.name == "svc"
        assert job.usage.source  # a running job's usage is there at once
        with pytest.raises(GRPCError) as caught:
            await stub.run(pb.RunRequest(command=["true"], name="svc"))
        assert caught.value.status is Status.ALREADY_EXISTS
        for bad in (
            pb.RunRequest(command=["true"], name="-x"),
            pb.RunRequest(command=["true"], labels={"bad key": "v"}),
        ):
            with pytest.raises(GRPCError) as caught:
                await stub.run(bad)
            assert caught.value.status is Status.INVALID_ARGUMENT
        with pytest.raises(GRPCError) as caught:
            await stub.list(pb.ListRequest(selector="app in (a"))
        assert caught.value.status is Status.INVALID_ARGUMENT
        assert (await stub.status(pb.StatusRequest(job_id="svc"))).job.id == job.id
        assert (await stub.status(pb.StatusRequest(job_id=job.id[:6]))).job.id == job.id
        listed = (await stub.list(pb.ListRequest(states=[pb.JobState["RUNNING"]]))).jobs
        assert [j.id for j in listed] == [job.id]
        await stub.stop(pb.StopRequest(job_id="svc", grace_seconds=0))
        # Another account sees none of it, by name or prefix.
    async with server.stub("bob") as stub:
        for ref in ("svc", job.id[:6]):
            with pytest.raises(GRPCError) as caught:
                await stub.status(pb.StatusRequest(job_id=ref))
            assert caught.value.status is Status.NOT_FOUND

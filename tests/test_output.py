"""The output log and its followers: whole, ordered, binary-safe, on disk, never blocking."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import anyio
import pytest
from harness import by_stream, read_chunks, read_output

from jobs import (
    Chunk,
    Gap,
    JobManager,
    JobSpec,
    ManagerSettings,
    OffsetOutOfRange,
    Stream,
    TooManyStreams,
)
from jobs._core.output import OutputLog


async def test_20_mb_of_random_bytes_byte_exact(manager: JobManager, tmp_path: Path) -> None:
    payload = os.urandom(20_000_000)
    (tmp_path / "blob").write_bytes(payload)
    info = await manager.start(JobSpec(("cat", str(tmp_path / "blob"))), "alice")
    assert await read_output(manager, info.id) == payload
    final = await manager.wait(info.id, "alice")
    assert final.output_bytes == len(payload)


async def test_streams_are_kept_apart_in_one_ordered_log(
    manager: JobManager, tmp_path: Path
) -> None:
    out_payload, err_payload = os.urandom(3_000_000), os.urandom(2_000_000)
    (tmp_path / "out").write_bytes(out_payload)
    (tmp_path / "err").write_bytes(err_payload)
    info = await manager.start(
        JobSpec(("sh", "-c", f"cat {tmp_path}/out; cat {tmp_path}/err >&2; sleep 0.3; echo done")),
        "alice",
    )
    await manager.wait(info.id, "alice")
    chunks = await read_chunks(manager, info.id)
    assert by_stream(chunks) == (out_payload + b"done\n", err_payload)
    # Writes apart in time arrive in order: all of stderr comes before "done". (Writes
    # back to back on two pipes have no defined order: both pipes buffer.)
    assert chunks[-1].stream is Stream.STDOUT
    assert chunks[-1].data.endswith(b"done\n")
    times = [c.time_ns for c in chunks]
    assert times == sorted(times)


async def test_fifty_followers_get_identical_output(manager: JobManager) -> None:
    script = "for i in $(seq 2000); do echo line $i; head -c 500 /dev/urandom | od -An; done"
    info = await manager.start(JobSpec(("sh", "-c", script)), "alice")
    results: list[bytes] = []

    async def follow() -> None:
        results.append(await read_output(manager, info.id))

    async with anyio.create_task_group() as tg:
        for _ in range(50):
            tg.start_soon(follow)
    assert len(results) == 50
    assert len(set(results)) == 1
    assert results[0].count(b"line ") == 2000
    assert len(results[0]) == (await manager.wait(info.id, "alice")).output_bytes


async def test_a_follower_that_never_reads_blocks_nobody(manager: JobManager) -> None:
    info = await manager.start(JobSpec(("head", "-c", "30000000", "/dev/urandom")), "alice")
    async with manager.reader(info.id, "alice", follow=True) as idle:
        # The job runs to its end, and another follower gets everything, meanwhile.
        other = await read_output(manager, info.id)
        final = await manager.wait(info.id, "alice")
        assert len(other) == final.output_bytes == 30_000_000
        # Then the idle follower catches up from disk, byte for byte.
        late = bytearray()
        async for item in idle:
            assert isinstance(item, Chunk)
            late.extend(item.data)
    assert hashlib.sha256(late).digest() == hashlib.sha256(other).digest()


async def test_follower_joining_late_replays_from_the_first_byte(manager: JobManager) -> None:
    info = await manager.start(JobSpec(("sh", "-c", "echo first; sleep 0.3; echo second")), "alice")
    await anyio.sleep(0.15)
    assert await read_output(manager, info.id) == b"first\nsecond\n"


async def test_read_from_an_offset(manager: JobManager) -> None:
    info = await manager.start(JobSpec(("printf", "0123456789")), "alice")
    await manager.wait(info.id, "alice")
    assert await read_output(manager, info.id, offset=4) == b"456789"
    assert await read_output(manager, info.id, offset=10) == b""
    with pytest.raises(OffsetOutOfRange):
        manager.reader(info.id, "alice", 11)


async def test_cancelled_follower_frees_its_resources_at_once(manager: JobManager) -> None:
    info = await manager.start(
        JobSpec(("sh", "-c", "while :; do echo y; sleep 0.01; done")), "alice"
    )
    job = manager.get(info.id, "alice")
    async with manager.reader(info.id, "alice", follow=True) as reader:
        await reader.__anext__()  # the log has opened its files
    fds_before = len(os.listdir("/proc/self/fd"))
    with anyio.move_on_after(0.2):
        await read_output(manager, info.id)
    assert repr(job).endswith("followers=0>")
    assert len(os.listdir("/proc/self/fd")) <= fds_before
    assert manager._streams["alice"] == 0
    await manager.stop(info.id, "alice")


async def test_log_stream_cap(tmp_path: Path) -> None:
    async with JobManager(tmp_path, ManagerSettings(max_streams=2)) as manager:
        info = await manager.start(JobSpec(("true",)), "alice")
        first = manager.reader(info.id, "alice")
        second = manager.reader(info.id, "alice")
        with pytest.raises(TooManyStreams):
            manager.reader(info.id, "alice")
        first.close()
        manager.reader(info.id, "alice").close()  # a closed reader frees its place
        second.close()


async def test_output_lives_on_disk_under_the_state_directory(manager: JobManager) -> None:
    info = await manager.start(JobSpec(("head", "-c", "5000000", "/dev/zero")), "alice")
    await manager.wait(info.id, "alice")
    directory = manager.state_dir / "jobs" / info.id / "output"
    stored = sum(p.stat().st_size for p in directory.glob("*.out"))
    assert stored == 5_000_000
    for path in directory.iterdir():
        assert path.stat().st_mode & 0o077 == 0


async def test_retention_drops_the_oldest_output_and_says_how_much(tmp_path: Path) -> None:
    log = OutputLog(tmp_path / "log", cap=1 << 20)
    reader = log.reader(0, follow=True)
    pieces = [os.urandom(100_000) for _ in range(30)]  # 3 MB through a 1 MiB cap
    for piece in pieces:
        log.append(Stream.STDOUT, piece)
    log.close()
    on_disk = sum(p.stat().st_size for p in (tmp_path / "log").glob("*.out"))
    assert on_disk <= (1 << 20) + 100_000
    assert log.start > 0
    assert log.end == 3_000_000
    items = [item async for item in reader]
    reader.close()
    gap = items[0]
    assert gap == Gap(0, log.start)
    rest = b"".join(i.data for i in items[1:] if isinstance(i, Chunk))
    assert rest == b"".join(pieces)[log.start :]


async def test_reader_past_the_end_is_refused(tmp_path: Path) -> None:
    log = OutputLog(tmp_path / "log")
    log.append(Stream.STDERR, b"abc")
    with pytest.raises(OffsetOutOfRange):
        log.reader(4)
    log.close()


async def test_big_records_are_split_and_small_ones_merged(tmp_path: Path) -> None:
    log = OutputLog(tmp_path / "log")
    log.append(Stream.STDOUT, b"a" * 10)
    log.append(Stream.STDOUT, b"b" * 10)
    log.append(Stream.STDERR, b"c" * 10)
    log.close()
    async with log.reader(5, max_chunk=8) as reader:
        items = [item async for item in reader]
    assert [(i.offset, i.stream, i.data) for i in items if isinstance(i, Chunk)] == [
        (5, Stream.STDOUT, b"aaaaabbb"),
        (13, Stream.STDOUT, b"bbbbbbb"),
        (20, Stream.STDERR, b"cccccccc"),
        (28, Stream.STDERR, b"cc"),
    ]


async def test_many_readers_share_a_memory_budget(tmp_path: Path) -> None:
    from jobs._core.output import FOLLOWERS_BUDGET, MIN_CHUNK

    log = OutputLog(tmp_path / "log")
    log.append(Stream.STDOUT, os.urandom(1 << 20))
    log.close()
    alone = log.reader(0)
    first = await alone.__anext__()
    assert isinstance(first, Chunk)
    assert len(first.data) == 256 << 10  # a lone reader gets big pieces
    crowd = [log.reader(0) for _ in range(FOLLOWERS_BUDGET // MIN_CHUNK)]
    piece = await crowd[0].__anext__()
    assert isinstance(piece, Chunk)
    assert len(piece.data) == MIN_CHUNK
    assert log.readers == len(crowd) + 1
    for reader in [alone, *crowd]:
        reader.close()
        reader.close()  # closing twice counts once
    assert log.readers == 0

"""A closed output reader: iterating it again fails at once instead of spinning, and a
task waiting in it is let go."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from jobs import Chunk, Stream
from jobs._core.output import OutputLog


async def test_a_closed_reader_iterated_again_raises(tmp_path: Path) -> None:
    log = OutputLog(tmp_path / "log")
    log.append(Stream.STDOUT, b"first")
    reader = log.reader(0, follow=True)
    first = await reader.__anext__()
    assert isinstance(first, Chunk)
    assert first.data == b"first"
    reader.close()
    log.append(Stream.STDOUT, b"more")  # there is more to read, but not for a closed reader
    with anyio.fail_after(5):
        for _ in range(3):
            with pytest.raises(anyio.ClosedResourceError):
                await reader.__anext__()
        with pytest.raises(anyio.ClosedResourceError):
            async for _ in reader:
                pass
    assert log.readers == 0
    log.close()


async def test_closing_a_reader_lets_its_waiting_follower_go(tmp_path: Path) -> None:
    log = OutputLog(tmp_path / "log")
    reader = log.reader(0, follow=True)
    outcome: list[BaseException] = []

    async def follow() -> None:
        try:
            async for _ in reader:
                pass
        except anyio.ClosedResourceError as exc:
            outcome.append(exc)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(follow)
            await anyio.wait_all_tasks_blocked()
            reader.close()
    assert len(outcome) == 1
    assert isinstance(outcome[0], anyio.ClosedResourceError)
    log.close()


async def test_a_reader_of_a_closed_log_ends_and_stays_ended(tmp_path: Path) -> None:
    log = OutputLog(tmp_path / "log")
    log.append(Stream.STDERR, b"all")
    log.close()
    async with log.reader(0, follow=True) as reader:
        with anyio.fail_after(5):
            assert [item.data async for item in reader if isinstance(item, Chunk)] == [b"all"]
            assert [item async for item in reader] == []

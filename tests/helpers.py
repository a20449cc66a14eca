"""Helpers shared by the tests."""

from __future__ import annotations

from jobs import Chunk, JobManager, Stream


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

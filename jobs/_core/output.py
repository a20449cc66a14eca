"""The output log: one job's stdout and stderr as an ordered, append-only log on disk.

The log is a directory of segments. Each segment holds the raw bytes (``.out``, so a
byte offset maps straight to a file position) and an index of fixed-size records
(``.idx``: offset, time, length and stream of each chunk). Memory holds only a
list of segments, so it does not grow with output. A retention cap drops whole
segments, oldest first; readers that fall behind are told how much they missed.

Readers are woken through anyio memory object streams with a buffer of one: a
wake-up is idempotent, so the writer sends it with ``send_nowait`` and drops it
when the buffer is already full. The writer never waits for a reader.

Disk IO is done with plain ``os.write``/``os.pread`` on the event loop: these hit
the page cache and cost microseconds, where a thread hop per chunk would cost
more than the write itself.
"""

from __future__ import annotations

import bisect
import contextlib
import errno
import logging
import os
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ..errors import OffsetOutOfRange
from .model import Chunk, Gap, Stream

__all__ = ["LogReader", "OutputLog", "Selection"]

log = logging.getLogger(__name__)

_RECORD = struct.Struct("<QQIB3x")  # offset, time_ns, length, stream
_Record = tuple[int, int, int, int]
_INDEX_BATCH = 512  # records read from an index at once
MAX_SEGMENT_SIZE = 64 << 20
MIN_SEGMENT_SIZE = 64 << 10
DEFAULT_MAX_CHUNK = 256 << 10
"""Largest piece a reader hands out at once; consecutive chunks of a stream are merged."""
FOLLOWERS_BUDGET = 8 << 20
"""Bytes the pieces in flight of one log's readers may take together: with many
readers each piece shrinks (down to ``MIN_CHUNK``), so the server's memory does
not grow with 256 KiB per follower, while a lone reader keeps big pieces. A
piece in flight costs the server about three times its size (the piece, its
encoding, grpclib's framed copy). In the benchmark, 8 MiB holds the server's
peak to about +20 MiB over its idle RSS with 100 followers and +25 MiB with 500,
where 32 MiB let it reach +103 and +130 MiB."""
MIN_CHUNK = 16 << 10


@dataclass(frozen=True, slots=True)
class Selection:
    """Which part of a log a reader wants, besides its start offset."""

    streams: frozenset[Stream] = frozenset()
    """Only these streams; empty means both."""
    tail_lines: int | None = None
    """Start at the last this many lines of the selected streams."""
    since_ns: int | None = None
    """Only chunks stored at or after this time (nanoseconds since the epoch)."""
    until_ns: int | None = None
    """Only chunks stored before this time: a follower stops once it has passed."""
    chunk_times: bool = False
    """Never join chunks stored at different times into one piece, so that each
    piece's time is that of all its bytes (for stamping lines)."""

    def wants(self, stream: Stream) -> bool:
        """Whether output of ``stream`` is selected."""
        return not self.streams or stream in self.streams


_EVERYTHING = Selection()
_SKIPPED = Gap(-1, 0)
"""What ``_read_chunk`` returns for a chunk of a stream not selected (never handed out)."""


@dataclass(slots=True, eq=False)
class _Segment:
    start: int
    size: int = 0
    records: int = 0
    dropped: bool = False


class OutputLog:
    """An append-only, on-disk log of a job's output, with any number of readers.

    ``cap`` bounds the bytes kept (the oldest output is dropped first); ``None``
    keeps everything.
    """

    def __init__(self, directory: Path, *, cap: int | None = None) -> None:
        self._dir = directory
        self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._cap = cap
        self._segment_size = (
            MAX_SEGMENT_SIZE
            if cap is None
            else max(MIN_SEGMENT_SIZE, min(MAX_SEGMENT_SIZE, cap // 8))
        )
        self._segments: list[_Segment] = []
        self._starts: list[int] = []  # segment starts, for bisect
        self._data_fd = -1
        self._index_fd = -1
        self._start = 0
        self._end = 0
        self._lost = 0
        self._closed = False
        self._wakers: set[MemoryObjectSendStream[None]] = set()
        self._readers = 0

    @classmethod
    def reopen(cls, directory: Path, *, lost: int = 0) -> OutputLog:
        """The closed log of an ended job, as left on disk (after a restart or crash).

        A chunk cut short by a crash is dropped, so data and index agree again.
        """
        log = cls(directory)
        for index in sorted(directory.glob("*.idx")):
            data = index.with_suffix(".out")
            records = index.stat().st_size // _RECORD.size
            segment = _Segment(int(index.stem), records=records)
            if records:
                with open(index, "rb") as f:
                    f.seek((records - 1) * _RECORD.size)
                    offset, _, length, _ = _RECORD.unpack(f.read(_RECORD.size))
                segment.size = offset + length - segment.start
            size = data.stat().st_size if data.exists() else 0
            if size < segment.size:  # the data of the last chunk never reached the disk
                segment.records, segment.size = _whole_records(index, data, segment.start, size)
            for path, length in ((data, segment.size), (index, segment.records * _RECORD.size)):
                if path.exists() and path.stat().st_size != length:
                    os.truncate(path, length)
            log._segments.append(segment)
            log._starts.append(segment.start)
        if log._segments:
            log._start = log._segments[0].start
            last = log._segments[-1]
            log._end = last.start + last.size
        log._lost = lost
        log._closed = True
        return log

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<OutputLog {state} {self._start}..{self._end} readers={self._readers}>"

    @property
    def start(self) -> int:
        """Offset of the first byte still kept."""
        return self._start

    @property
    def end(self) -> int:
        """Offset one past the last byte written."""
        return self._end

    @property
    def lost(self) -> int:
        """Bytes that could not be stored (disk full or failing)."""
        return self._lost

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def readers(self) -> int:
        """Readers open now (following or not)."""
        return self._readers

    def append(self, stream: Stream, data: bytes) -> None:
        """Store one chunk and wake the readers.

        A write the disk refuses (full, quota, IO error) is counted in ``lost``
        and otherwise ignored: the job and the other jobs are not affected.
        """
        if self._closed:
            raise RuntimeError("append to a closed output log")
        if not data:
            return
        try:
            segment = self._writable_segment()
        except OSError as exc:
            self._note_lost(len(data), exc)
            return
        record = _RECORD.pack(self._end, time.time_ns(), len(data), int(stream))
        try:
            _write_all(self._data_fd, data)
            _write_all(self._index_fd, record)
        except OSError as exc:
            # Cut back to the last whole chunk, so the files stay consistent.
            try:
                os.ftruncate(self._data_fd, segment.size)
                os.ftruncate(self._index_fd, segment.records * _RECORD.size)
            except OSError:
                pass
            self._note_lost(len(data), exc)
            return
        segment.size += len(data)
        segment.records += 1
        self._end += len(data)
        self._enforce_cap()
        self._wake()

    def close(self) -> None:
        """Mark the end of the output: readers finish what is left and stop."""
        if self._closed:
            return
        self._closed = True
        self._close_files()
        for waker in self._wakers:
            waker.close()

    def reader(
        self,
        offset: int = 0,
        *,
        follow: bool = False,
        max_chunk: int = DEFAULT_MAX_CHUNK,
        selection: Selection | None = None,
    ) -> LogReader:
        """Read from ``offset`` on; with ``follow``, keep going until the log is closed.

        ``selection`` narrows the output: the start moves forward to its ``since``
        time and to its last ``tail_lines`` lines (both found through the index,
        from the end for the tail, so neither reads the log before them), and
        chunks of other streams or from ``until`` on are left out.
        Raises ``OffsetOutOfRange`` for an offset past the end.
        """
        if offset < 0 or offset > self._end:
            raise OffsetOutOfRange(offset, self._end)
        selection = selection or _EVERYTHING
        start = offset  # below the first byte kept, the reader starts with a Gap
        if selection.since_ns is not None:
            start = max(start, self._offset_at_time(selection.since_ns))
        if selection.tail_lines is not None:
            # The last lines before ``until`` when it is given, not of the whole log.
            until = selection.until_ns
            before = self._end if until is None else self._offset_at_time(until)
            start = max(start, self._tail_start(selection.tail_lines, selection, before))
        return LogReader(
            self, min(start, self._end), follow=follow, max_chunk=max_chunk, selection=selection
        )

    def _offset_at_time(self, time_ns: int) -> int:
        """The offset of the first chunk stored at or after ``time_ns`` (the end if none)."""
        segments = self._segments
        # The last segment whose first chunk is not later than time_ns holds the answer.
        lo, hi = 0, len(segments)
        while lo < hi:
            mid = (lo + hi) // 2
            first = self._records(segments[mid], 0, 1)
            if first and first[0][1] <= time_ns:
                lo = mid + 1
            else:
                hi = mid
        for segment in segments[max(0, lo - 1) :]:
            left, right = 0, segment.records  # first record with time >= time_ns
            while left < right:
                mid = (left + right) // 2
                if self._records(segment, mid, 1)[0][1] < time_ns:
                    left = mid + 1
                else:
                    right = mid
            if left < segment.records:
                return self._records(segment, left, 1)[0][0]
        return self._end

    def _tail_start(self, lines: int, selection: Selection, before: int) -> int:
        """The offset where the last ``lines`` lines of the selected streams stored
        before offset ``before`` begin.

        Walks the index from the end, reading only the data of the chunks it must
        look into: a tail of a huge log reads kilobytes. A last line without its
        newline counts as a line, as for tail(1).
        """
        if lines <= 0:
            return before
        remaining = lines
        last = True
        for segment in reversed(self._segments):
            if segment.start >= before:
                continue
            with open(self._path(segment, ".out"), "rb", buffering=0) as data_file:
                stop = segment.records
                while stop > 0:
                    first = max(0, stop - _INDEX_BATCH)
                    for offset, _, length, stream in reversed(
                        self._records(segment, first, stop - first)
                    ):
                        if offset >= before or not selection.wants(Stream(stream)):
                            continue
                        data = os.pread(data_file.fileno(), length, offset - segment.start)
                        end = len(data)
                        if last and end:
                            last = False
                            if data.endswith(b"\n"):
                                end -= 1  # the final newline ends the last line
                        while (newline := data.rfind(b"\n", 0, end)) >= 0:
                            remaining -= 1
                            if remaining == 0:
                                return offset + newline + 1
                            end = newline
                    stop = first
        return self._start

    def _records(self, segment: _Segment, first: int, count: int) -> list[_Record]:
        """``count`` index records of ``segment`` from record number ``first``."""
        fd = os.open(self._path(segment, ".idx"), os.O_RDONLY | os.O_CLOEXEC)
        try:
            raw = os.pread(fd, count * _RECORD.size, first * _RECORD.size)
        finally:
            os.close(fd)
        return list(_RECORD.iter_unpack(raw))

    def _writable_segment(self) -> _Segment:
        if self._segments and self._data_fd >= 0:
            current = self._segments[-1]
            if current.size < self._segment_size:
                return current
        self._close_files()
        segment = _Segment(self._end)
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
        self._data_fd = os.open(self._path(segment, ".out"), flags, 0o600)
        try:
            self._index_fd = os.open(self._path(segment, ".idx"), flags, 0o600)
        except OSError:
            os.close(self._data_fd)
            self._data_fd = -1
            raise
        if self._segments and self._segments[-1].size == 0:
            self._segments.pop()  # an empty segment left by a failed write
            self._starts.pop()
        self._segments.append(segment)
        self._starts.append(segment.start)
        return segment

    def _enforce_cap(self) -> None:
        if self._cap is None:
            return
        while self._end - self._start > self._cap and len(self._segments) > 1:
            oldest = self._segments.pop(0)
            self._starts.pop(0)
            oldest.dropped = True
            for suffix in (".out", ".idx"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._path(oldest, suffix))
            self._start = self._segments[0].start

    def _note_lost(self, size: int, exc: OSError) -> None:
        if self._lost == 0 or exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            log.warning("output of %s not stored: %s", self._dir, exc)
        self._lost += size

    def _wake(self) -> None:
        for waker in self._wakers:
            try:
                waker.send_nowait(None)
            except (anyio.WouldBlock, anyio.BrokenResourceError):
                pass  # already woken, or the reader is going away

    def _close_files(self) -> None:
        for fd in (self._data_fd, self._index_fd):
            if fd >= 0:
                os.close(fd)
        self._data_fd = self._index_fd = -1

    def _path(self, segment: _Segment, suffix: str) -> str:
        return os.path.join(self._dir, f"{segment.start:020d}{suffix}")

    def _segment_at(self, offset: int) -> _Segment:
        return self._segments[bisect.bisect_right(self._starts, offset) - 1]


class LogReader:
    """One reader of an output log: an async iterator of ``Chunk`` and ``Gap``.

    Use it as an async context manager (or call ``close``) so that its files and
    wake-up stream are released at once, even when the consumer stops early.
    """

    def __init__(
        self,
        log: OutputLog,
        offset: int,
        *,
        follow: bool,
        max_chunk: int,
        selection: Selection = _EVERYTHING,
    ) -> None:
        self._log = log
        self._pos = offset
        self._follow = follow
        self._max_chunk = max_chunk
        self._selection = selection
        self._past_until = False
        self._segment: _Segment | None = None
        self._data_fd = -1
        self._index_fd = -1
        self._record = 0  # index, within the segment, of the record holding _pos
        self._on_close: list[Callable[[], None]] = []
        self._open = True
        log._readers += 1
        send, receive = anyio.create_memory_object_stream[None](1)
        self._waker: MemoryObjectSendStream[None] = send
        self._woken: MemoryObjectReceiveStream[None] = receive
        if log.closed:
            send.close()
        else:
            log._wakers.add(send)

    @property
    def position(self) -> int:
        """Offset of the next byte this reader will hand out."""
        return self._pos

    def __repr__(self) -> str:
        return f"<LogReader at {self._pos} follow={self._follow}>"

    async def __aenter__(self) -> LogReader:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def on_close(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once, when the reader is closed."""
        self._on_close.append(callback)

    def close(self) -> None:
        """Release the reader's files and wake-up stream."""
        if self._open:
            self._open = False
            self._log._readers -= 1
        callbacks, self._on_close = self._on_close, []
        for callback in callbacks:
            callback()
        self._log._wakers.discard(self._waker)
        self._waker.close()
        self._woken.close()
        self._close_segment()

    def __aiter__(self) -> LogReader:
        return self

    async def __anext__(self) -> Chunk | Gap:
        """The next piece; raises ``anyio.ClosedResourceError`` once the reader is closed."""
        while True:
            item = self.read_available()
            if item is not None:
                return item
            if self._log.closed or not self._follow or self._past_until:
                raise StopAsyncIteration
            until = self._selection.until_ns
            try:
                if until is None:
                    await self._woken.receive()
                    continue
                # A follower with an end time stops at it, output or not.
                with anyio.move_on_after(max(0.0, (until - time.time_ns()) / 1e9)):
                    await self._woken.receive()
                    continue
                self._past_until = True
            except anyio.EndOfStream:
                continue  # the log was closed: hand out what is left, then stop

    def read_available(self) -> Chunk | Gap | None:
        """The next piece already on disk, or ``None`` when caught up."""
        if not self._open:
            raise anyio.ClosedResourceError
        log = self._log
        if self._segment is not None and self._segment.dropped:
            self._close_segment()
        if self._pos < log._start:
            gap = Gap(self._pos, log._start - self._pos)
            self._pos = log._start
            self._close_segment()
            return gap
        while self._pos < log._end and not self._past_until:
            segment = self._segment
            if segment is None or self._pos >= segment.start + segment.size:
                segment = self._open_segment(log._segment_at(self._pos))
            item = self._read_chunk(segment)
            if item is not _SKIPPED:
                return item
        return None

    def _open_segment(self, segment: _Segment) -> _Segment:
        self._close_segment()
        self._data_fd = os.open(self._log._path(segment, ".out"), os.O_RDONLY | os.O_CLOEXEC)
        try:
            self._index_fd = os.open(self._log._path(segment, ".idx"), os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            os.close(self._data_fd)
            self._data_fd = -1
            raise
        self._segment = segment
        self._record = self._find_record(segment, self._pos)
        return segment

    def _find_record(self, segment: _Segment, offset: int) -> int:
        lo, hi = 0, segment.records - 1
        while lo < hi:  # last record starting at or before offset
            mid = (lo + hi + 1) // 2
            if self._record_at(mid)[0] <= offset:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def _record_at(self, number: int) -> tuple[int, int, int, int]:
        raw = os.pread(self._index_fd, _RECORD.size, number * _RECORD.size)
        return _RECORD.unpack(raw)

    def _read_chunk(self, segment: _Segment) -> Chunk | Gap:
        readers = max(1, self._log._readers)
        limit = min(self._max_chunk, max(MIN_CHUNK, FOLLOWERS_BUDGET // readers))
        count = min(_INDEX_BATCH, segment.records - self._record)
        raw = os.pread(self._index_fd, count * _RECORD.size, self._record * _RECORD.size)
        first_stream = -1
        first_time = 0
        take = 0
        consumed = 0
        until = self._selection.until_ns
        one_time = self._selection.chunk_times
        for offset, time_ns, length, stream in _RECORD.iter_unpack(raw):
            if until is not None and time_ns >= until:
                if first_stream < 0:
                    self._past_until = True
                    return _SKIPPED
                break
            if first_stream < 0:
                first_stream, first_time = stream, time_ns
            elif stream != first_stream or take >= limit or (one_time and time_ns != first_time):
                break
            begin = max(offset, self._pos + take)
            available = offset + length - begin
            room = limit - take
            if available > room:
                take += room
                break
            take += available
            consumed += 1
        if not self._selection.wants(Stream(first_stream)):
            self._pos += take  # not read at all: skipped through the index
            self._record += consumed
            return _SKIPPED
        data = os.pread(self._data_fd, take, self._pos - segment.start)
        chunk = Chunk(self._pos, Stream(first_stream), first_time, data)
        self._pos += len(data)
        self._record += consumed
        return chunk

    def _close_segment(self) -> None:
        for fd in (self._data_fd, self._index_fd):
            if fd >= 0:
                os.close(fd)
        self._data_fd = self._index_fd = -1
        self._segment = None


def _whole_records(index: Path, data: Path, start: int, size: int) -> tuple[int, int]:
    """How many records of a segment, and how many bytes, lie wholly within ``size``."""
    records = 0
    end = start
    with open(index, "rb") as f:
        for offset, _, length, _ in _RECORD.iter_unpack(f.read()):
            if offset + length - start > size:
                break
            records += 1
            end = offset + length
    return records, end - start


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]

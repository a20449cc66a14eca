"""One server per state directory: an exclusive lock on a file in it, holding the pid."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from ..errors import StateDirectoryLocked

__all__ = ["LOCK", "StateLock"]

LOCK = "lock"


class StateLock:
    """An exclusive ``flock`` on ``DIRECTORY/lock``, released when closed (or when the
    process dies, which a pid file alone cannot tell)."""

    def __init__(self, directory: Path) -> None:
        path = directory / LOCK
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise StateDirectoryLocked(str(directory), holder) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def close(self) -> None:
        """Release the lock (the file stays: removing it would race the next server)."""
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = -1


def _read_pid(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).decode().strip() or 0) or None
    except (OSError, ValueError):
        return None

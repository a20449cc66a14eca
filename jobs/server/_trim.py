"""Giving memory back to the system after bursts of connections.

Each TLS connection costs the C allocator (OpenSSL, h2's buffers, grpclib's
objects) a few hundred KiB; when a burst of clients leaves, the freed memory stays
in glibc's heaps and the server's RSS stays at its high-water mark (78 -> 167 MiB
over five waves of 500 clients). ``malloc_trim(0)`` returns the free pages of every
heap. It costs a few milliseconds on a large heap, so it runs once things are
quiet: ``TRIM_DELAY`` after the last connection closed, at most once per
``TRIM_INTERVAL``. Without glibc it does nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import time
from collections.abc import Callable

__all__ = ["TRIM_DELAY", "TRIM_INTERVAL", "connection_closed", "trims"]

TRIM_DELAY = 1.0
"""Seconds after a connection closes before the heap is trimmed (closes in a burst
come together: one trim for all of them)."""
TRIM_INTERVAL = 5.0
"""Least seconds between two trims."""


def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    return trim


_trim = _malloc_trim()
_pending: asyncio.TimerHandle | None = None
_last = float("-inf")
trims = 0
"""How many trims ran in this process (for tests and the benchmark)."""


def connection_closed() -> None:
    """Note that a connection closed: trim the heap soon, unless a trim is already due."""
    global _pending
    if _trim is None or _pending is not None:
        return
    delay = max(TRIM_DELAY, _last + TRIM_INTERVAL - time.monotonic())
    try:
        _pending = asyncio.get_running_loop().call_later(delay, _run)
    except RuntimeError:  # no loop: a connection closed at interpreter exit
        return


def _run() -> None:
    global _pending, _last, trims
    _pending = None
    _last = time.monotonic()
    if _trim is not None:
        _trim(0)
        trims += 1

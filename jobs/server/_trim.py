"""Giving memory back after bursts of connections.

A burst of new TLS clients left the server's RSS doubled (78 -> 167 MiB over five
waves of 500) for as long as no new client came: grpclib forgets a closed
connection's handler (and with it the connection's h2 state, TLS buffers and
streams) only while accepting later connections, ten at a time. ``Reclaimer``
does that collection once things are quiet after connections close, then asks
glibc to return the freed pages (``malloc_trim``): ``RECLAIM_DELAY`` after a
close, at most once per ``RECLAIM_INTERVAL``.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import time
from collections.abc import Callable

__all__ = ["RECLAIM_DELAY", "RECLAIM_INTERVAL", "Reclaimer"]

RECLAIM_DELAY = 1.0
"""Seconds after a connection closes before memory is reclaimed (the closes of a
burst come together: one reclaim for all of them)."""
RECLAIM_INTERVAL = 2.0
"""Least seconds between two reclaims."""


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc: nothing to trim
        return None
    return trim


_TRIM = _malloc_trim()


class Reclaimer:
    """Runs ``collect`` (forget closed connections), then ``malloc_trim(0)``, soon after
    connections close, rate-limited."""

    def __init__(self, collect: Callable[[], None]) -> None:
        self._collect = collect
        self._pending: asyncio.TimerHandle | None = None
        self._last = float("-inf")
        self.runs = 0
        """How many reclaims ran (for tests)."""

    def connection_closed(self) -> None:
        """Note that a connection closed: reclaim soon, unless a reclaim is already due."""
        if self._pending is not None:
            return
        delay = max(RECLAIM_DELAY, self._last + RECLAIM_INTERVAL - time.monotonic())
        try:
            self._pending = asyncio.get_running_loop().call_later(delay, self._run)
        except RuntimeError:  # no running loop: the server is gone
            return

    def close(self) -> None:
        """Cancel a pending reclaim."""
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None

    def _run(self) -> None:
        self._pending = None
        self._last = time.monotonic()
        self._collect()
        if _TRIM is not None:
            _TRIM(0)
        self.runs += 1

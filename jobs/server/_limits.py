"""Limits on abuse: a call rate per account (token bucket) and connections per address.

Past a limit the server refuses (RESOURCE_EXHAUSTED for a call, a closed
connection for a connection) and says so in its log once per ``REPORT_INTERVAL``
per account or address, with how many it refused, never once per refusal.
"""

from __future__ import annotations

import collections
import logging
import math
import time
from collections.abc import Callable

from ..errors import InvalidArgument

__all__ = [
    "DEFAULT_CALL_BURST",
    "DEFAULT_CALL_RATE",
    "DEFAULT_MAX_CONNECTIONS",
    "REPORT_INTERVAL",
    "CallRate",
    "Connections",
]

log = logging.getLogger(__name__)

DEFAULT_CALL_RATE = 5000.0
"""Calls per second one account may sustain: far above what people and CI systems
make, so that only a runaway client meets it."""
DEFAULT_CALL_BURST = 10000
"""Calls an idle account may make at once before the rate applies."""
DEFAULT_MAX_CONNECTIONS = 1024
"""Open connections (including handshakes) from one IP address."""
REPORT_INTERVAL = 60.0
"""Seconds between two log lines about the same account or address."""


class _Reporter:
    """Counts refusals per key and logs them at most once per interval per key."""

    def __init__(self, what: str, clock: Callable[[], float]) -> None:
        self._what = what
        self._clock = clock
        self._last: dict[str, float] = {}
        self._refused: collections.Counter[str] = collections.Counter()

    def refused(self, key: str) -> None:
        self._refused[key] += 1
        now = self._clock()
        last = self._last.get(key)
        if last is None or now - last >= REPORT_INTERVAL:
            self._last[key] = now
            count = self._refused.pop(key)
            log.warning("%s %s: refused %d since the last report", self._what, key, count)


class CallRate:
    """A token bucket per account: ``rate`` calls per second, ``burst`` at once."""

    def __init__(
        self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if not (math.isfinite(rate) and rate > 0) or burst < 1:
            raise InvalidArgument("the call rate and its burst must be positive")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # account -> (tokens, when)
        self._reporter = _Reporter("over its call rate: account", clock)

    def take(self, account: str) -> bool:
        """Spend one token of ``account``; False (and counted for the log) if none is left."""
        now = self._clock()
        tokens, then = self._buckets.get(account, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.rate)
        if tokens < 1:
            self._buckets[account] = (tokens, now)
            self._reporter.refused(account)
            return False
        self._buckets[account] = (tokens - 1, now)
        return True


class Connections:
    """Open connections per address, capped at ``limit``."""

    def __init__(self, limit: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        if limit < 1:
            raise InvalidArgument("the connection cap must be at least 1")
        self.limit = limit
        self._open: collections.Counter[str] = collections.Counter()
        self._reporter = _Reporter("too many connections: address", clock)

    def acquire(self, address: str) -> bool:
        """Count a new connection from ``address``; False (nothing counted) past the cap."""
        if self._open[address] >= self.limit:
            self._reporter.refused(address)
            return False
        self._open[address] += 1
        return True

    def release(self, address: str) -> None:
        """A connection from ``address`` has closed."""
        self._open[address] -= 1
        if self._open[address] <= 0:
            del self._open[address]

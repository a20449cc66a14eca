"""The manager's settings: caps, grace, output retention and history, with their defaults."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import InvalidArgument
from .users import UserPolicy

__all__ = [
    "DEFAULT_GRACE",
    "DEFAULT_HISTORY",
    "DEFAULT_MAX_RUNNING",
    "DEFAULT_MAX_STREAMS",
    "DEFAULT_OUTPUT_CAP",
    "ManagerSettings",
]

DEFAULT_GRACE = 10.0
"""Seconds between SIGTERM and SIGKILL when a job is stopped."""
DEFAULT_MAX_RUNNING = 64
"""Running jobs one account may have at once."""
DEFAULT_MAX_STREAMS = 256
"""Open log readers one account may have at once."""
DEFAULT_OUTPUT_CAP = 1 << 30
"""Bytes of output kept per job; older output is dropped first."""
DEFAULT_HISTORY = 1000
"""Ended jobs kept (records and output); the oldest go first."""


@dataclass(frozen=True, slots=True)
class ManagerSettings:
    """How a ``JobManager`` bounds its accounts and its disk. Validated on construction."""

    max_running: int = DEFAULT_MAX_RUNNING
    """Running jobs per account."""
    max_streams: int = DEFAULT_MAX_STREAMS
    """Open log readers per account."""
    output_cap: int | None = DEFAULT_OUTPUT_CAP
    """Bytes of output kept per job (None: all of it)."""
    grace: float = DEFAULT_GRACE
    """Seconds between the first signal and SIGKILL, unless a stop says otherwise."""
    history: int | None = DEFAULT_HISTORY
    """Ended jobs kept (None: all)."""
    history_age: float | None = None
    """Seconds an ended job is kept (None: no age limit)."""
    users: UserPolicy | None = None
    """Whom jobs run as. None: the manager's own user, for a manager embedded in a
    program; a server always has a policy (``nobody`` by default, see ``UserPolicy``)."""

    def __post_init__(self) -> None:
        if self.max_running < 1 or self.max_streams < 1:
            raise InvalidArgument("the running-job and stream caps must be at least 1")
        if self.output_cap is not None and self.output_cap < 1:
            raise InvalidArgument(f"output cap must be positive, not {self.output_cap}")
        if not (math.isfinite(self.grace) and self.grace >= 0):
            raise InvalidArgument(f"grace must be zero or more seconds, not {self.grace}")
        if self.history is not None and self.history < 0:
            raise InvalidArgument(f"history must be zero or more jobs, not {self.history}")
        if self.history_age is not None and not (
            math.isfinite(self.history_age) and self.history_age >= 0
        ):
            raise InvalidArgument(
                f"history age must be zero or more seconds, not {self.history_age}"
            )

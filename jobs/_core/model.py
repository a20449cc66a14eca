"""The job model: the closed set of states, what a job is asked to do, and its facts."""

from __future__ import annotations

import enum
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..errors import InvalidArgument, echo
from ..selectors import check_labels

__all__ = [
    "MAX_BYTES",
    "MAX_CPU_LIMIT",
    "MAX_PIDS_LIMIT",
    "MAX_SECONDS",
    "Chunk",
    "Gap",
    "IoRate",
    "JobInfo",
    "JobSpec",
    "JobState",
    "Limits",
    "Namespace",
    "Stream",
    "Usage",
]


class JobState(enum.Enum):
    """Where a job is in its life. Every state but RUNNING is final."""

    RUNNING = "running"
    """The main process has been started and has not been reaped yet."""
    EXITED = "exited"
    """The main process exited on its own; ``exit_code`` says how."""
    SIGNALED = "signaled"
    """The main process was killed by a signal nobody here sent."""
    STOPPED = "stopped"
    """A user stopped the job."""
    TIMED_OUT = "timed_out"
    """The job ran past its timeout and was stopped."""
    OOM_KILLED = "oom_killed"
    """The kernel killed the job for exceeding its memory limit."""
    SHUTDOWN = "shutdown"
    """The server stopped the job while shutting down."""
    LOST = "lost"
    """The server crashed while the job ran; its end was never observed."""

    @property
    def is_final(self) -> bool:
        """Whether the job has ended."""
        return self is not JobState.RUNNING


class Stream(enum.IntEnum):
    """Which pipe a piece of output came from."""

    STDOUT = 1
    STDERR = 2


class Namespace(enum.Enum):
    """A Linux namespace a job can be isolated in."""

    PID = "pid"
    MOUNT = "mount"
    NET = "net"


@dataclass(frozen=True, slots=True)
class IoRate:
    """A disk bandwidth limit: bytes per second on one block device.

    ``device`` is a block device path or ``MAJ:MIN``; ``None`` means the device
    holding the job's working directory.
    """

    bytes_per_second: int
    device: str | None = None


@dataclass(frozen=True, slots=True)
class Limits:
    """Resource limits of one job; ``None`` (or empty) means unlimited."""

    cpu: float | None = None
    """CPU time in cores, e.g. 0.5."""
    memory: int | None = None
    """Memory in bytes."""
    pids: int | None = None
    """Maximum number of processes (and threads) alive at once."""
    io_read: tuple[IoRate, ...] = ()
    io_write: tuple[IoRate, ...] = ()

    def __post_init__(self) -> None:
        if self.cpu is not None and not (math.isfinite(self.cpu) and 0 < self.cpu <= MAX_CPU_LIMIT):
            raise InvalidArgument(
                f"cpu limit must be a number of cores above 0 and at most {MAX_CPU_LIMIT}, "
                f"not {self.cpu}"
            )
        if self.memory is not None and not MIN_MEMORY_LIMIT <= self.memory <= MAX_BYTES:
            raise InvalidArgument(
                f"memory limit must be {MIN_MEMORY_LIMIT} to {MAX_BYTES} bytes, not {self.memory}"
            )
        if self.pids is not None and not 1 <= self.pids <= MAX_PIDS_LIMIT:
            raise InvalidArgument(f"process limit must be 1 to {MAX_PIDS_LIMIT}, not {self.pids}")
        for rate in (*self.io_read, *self.io_write):
            if not 1 <= rate.bytes_per_second <= MAX_BYTES:
                raise InvalidArgument(
                    f"IO rate must be 1 to {MAX_BYTES} bytes/s, not {rate.bytes_per_second}"
                )
            if rate.device is not None and (not rate.device or "\0" in rate.device):
                raise InvalidArgument(f"bad IO rate device {echo(rate.device)}")

    @property
    def empty(self) -> bool:
        """Whether no limit at all is asked for."""
        return self == Limits()


MIN_MEMORY_LIMIT = 1 << 20
"""Below a mebibyte no process can even start; such a limit is a mistake."""
MAX_BYTES = (1 << 63) - 1
"""The largest byte count (memory, IO rate) the kernel's cgroup files parse."""
MAX_PIDS_LIMIT = 1 << 22
"""The kernel's PID_MAX_LIMIT: pids.max refuses anything larger."""
_CPU_PERIOD_US = 100_000
MAX_CPU_LIMIT = ((1 << 44) - 1) // _CPU_PERIOD_US
"""Cores whose quota (per 100 ms period) the kernel still accepts: it caps a CFS
quota at 2^44 - 1 microseconds."""
MAX_SECONDS = 100 * 366 * 86400.0
"""A century: the longest timeout or grace; event loops overflow on far larger ones."""


@dataclass(frozen=True, slots=True)
class JobSpec:
    """What to run and how. Validated on construction.

    ``env`` holds ``(name, value)`` pairs added to the default environment (PATH,
    LANG, HOME), which they may override; a name given twice is an error.
    """

    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    cwd: str | None = None
    timeout: float | None = None
    limits: Limits = field(default_factory=Limits)
    isolation: frozenset[Namespace] = frozenset()
    name: str | None = None
    """Unique among the owner's running jobs; refers to the job wherever an id is taken."""
    labels: tuple[tuple[str, str], ...] = ()
    """``(key, value)`` pairs, sorted by key (a tuple, so that the spec stays hashable)."""

    def __post_init__(self) -> None:
        if self.name is not None and not _NAME.fullmatch(self.name):
            raise InvalidArgument(
                f"bad job name {self.name!r}: 1 to 128 letters, digits, '_', '.' or '-', "
                "starting with a letter or digit"
            )
        check_labels(dict(self.labels))
        if not self.argv or not self.argv[0]:
            raise InvalidArgument("the command is empty")
        for arg in self.argv:
            if "\0" in arg:
                raise InvalidArgument("the command contains a NUL byte")
        seen: set[str] = set()
        for name, value in self.env:
            if not name or "=" in name or "\0" in name:
                raise InvalidArgument(f"bad environment variable name {echo(name)}")
            if "\0" in value:
                raise InvalidArgument(f"environment variable {echo(name)} contains a NUL byte")
            if name in seen:
                raise InvalidArgument(f"environment variable {echo(name)} is given twice")
            seen.add(name)
        if self.cwd is not None and ("\0" in self.cwd or not self.cwd):
            raise InvalidArgument("bad working directory")
        if self.timeout is not None and not (
            math.isfinite(self.timeout) and 0 < self.timeout <= MAX_SECONDS
        ):
            raise InvalidArgument(
                f"timeout must be above 0 and at most {MAX_SECONDS:.0f} seconds, not {self.timeout}"
            )
        _check_exec_size(self.argv, self.env)

    def __repr__(self) -> str:
        # Environment values may be secrets: only their names are shown.
        names = [name for name, _ in self.env]
        return (
            f"JobSpec(argv={self.argv!r}, env_names={names!r}, cwd={self.cwd!r}, "
            f"timeout={self.timeout!r}, limits={self.limits!r}, "
            f"isolation={sorted(ns.value for ns in self.isolation)!r}, name={self.name!r}, "
            f"labels={dict(self.labels)!r})"
        )


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
"""Docker's rule for container names, so that a name never looks like an option, a
path or a selector, and prints without quoting."""


# The kernel refuses any single argument or "NAME=value" longer than 32 pages.
_MAX_ARG_STRLEN = 32 * 4096


def _check_exec_size(argv: Sequence[str], env: Sequence[tuple[str, str]]) -> None:
    strings = [*argv, *(f"{k}={v}" for k, v in env)]
    total = 0
    for s in strings:
        size = len(s.encode("utf-8", "surrogateescape")) + 1
        if size > _MAX_ARG_STRLEN:
            raise InvalidArgument(
                f"an argument or environment entry is {size} bytes; the kernel's limit is "
                f"{_MAX_ARG_STRLEN}"
            )
        total += size + 8  # each string also costs a pointer in the new stack
    arg_max = os.sysconf("SC_ARG_MAX")
    if total > arg_max:
        raise InvalidArgument(
            f"the command and environment are {total} bytes; the kernel's limit is {arg_max}"
        )


@dataclass(frozen=True, slots=True)
class JobInfo:
    """A snapshot of one job's facts."""

    id: str
    owner: str
    spec: JobSpec
    state: JobState
    pid: int | None
    started_at: float
    """Seconds since the epoch."""
    ended_at: float | None = None
    exit_code: int | None = None
    """Set when the main process exited normally."""
    signal: int | None = None
    """Set when the main process was killed by a signal."""
    output_bytes: int = 0
    """Bytes of output captured so far (stdout and stderr)."""
    dropped_bytes: int = 0
    """Bytes of the oldest output no longer kept (retention cap)."""
    lost_bytes: int = 0
    """Bytes read from the job but not stored (the state disk was full)."""
    usage: Usage | None = None
    """Resources used so far (running) or in all (ended); None when not known."""


@dataclass(frozen=True, slots=True)
class Usage:
    """Resources a job has used, from its cgroup or its main process's rusage."""

    cpu_user: float = 0.0
    """CPU seconds in user mode."""
    cpu_system: float = 0.0
    """CPU seconds in the kernel."""
    memory_peak: int = 0
    """The most memory (bytes) used at once."""
    io_read: int = 0
    """Bytes read from block devices."""
    io_write: int = 0
    """Bytes written to block devices."""
    source: str = ""
    """Where the figures come from: "cgroup v1", "cgroup v2" or "rusage"."""


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of output: where it starts in the job's output, which pipe, and when."""

    offset: int
    stream: Stream
    time_ns: int
    data: bytes

    @property
    def end(self) -> int:
        return self.offset + len(self.data)


@dataclass(frozen=True, slots=True)
class Gap:
    """Output a reader asked for that is no longer kept: ``size`` bytes from ``offset``."""

    offset: int
    size: int

"""The fallback without writable cgroups: a job is its process group."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ...errors import LimitUnsupported
from ..model import Limits, Usage
from ..process import Process, proc_stat, process_start_time

if TYPE_CHECKING:
    from . import Leftover

__all__ = ["ProcessGroup"]

log = logging.getLogger(__name__)


class _Group:
    """One job's process group; the main process leads it (``start_new_session``)."""

    def __init__(self) -> None:
        self._process: Process | None = None

    def preexec(self) -> Callable[[], None] | None:
        return None  # the spawn's new session is the whole container

    def spawned(self, process: Process | None) -> None:
        self._process = process

    def signal(self, sig: int) -> None:
        # Through the main process, which refuses once it is reaped: the group id
        # is its pid, which could be reused after that.
        if self._process is not None:
            self._process.signal_group(sig)

    async def wait_empty(self) -> None:
        if self._process is not None and not await self._process.wait_group_gone():
            log.warning("a process of job group %d does not die", self._process.pid)

    def oom_killed(self) -> bool:
        return False

    def usage(self) -> Usage:
        """The main process's figures: its rusage once reaped (children it waited for
        included), /proc while it runs. Processes it never waited for are not counted."""
        process = self._process
        if process is None:
            return Usage(source="rusage")
        if process.rusage is not None:
            r = process.rusage
            return Usage(
                r.ru_utime,
                r.ru_stime,
                r.ru_maxrss * 1024,
                r.ru_inblock * 512,
                r.ru_oublock * 512,
                "rusage",
            )
        return _proc_usage(process.pid)

    def close(self) -> None:
        pass  # the process is kept: its rusage is the job's final usage


def _proc_usage(pid: int) -> Usage:
    """A running main process's figures from /proc (what its rusage will say)."""
    fields = proc_stat(pid)
    if fields is None:
        return Usage(source="rusage")
    tick = os.sysconf("SC_CLK_TCK")
    # utime, stime, cutime, cstime: fields 14-17 of stat, 11-14 after the name.
    user = (int(fields[11]) + int(fields[13])) / tick
    system = (int(fields[12]) + int(fields[14])) / tick
    peak = read = written = 0
    with contextlib.suppress(OSError, ValueError):
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    peak = int(line.split()[1]) * 1024
        with open(f"/proc/{pid}/io") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key == "read_bytes":
                    read = int(value)
                elif key == "write_bytes":
                    written = int(value)
    return Usage(user, system, peak, read, written, "rusage")


class ProcessGroup:
    """No cgroups: jobs are contained by their process group only."""

    description = (
        "no writable cgroups: jobs are contained by their process group only (setsid escapes it)"
    )
    kind = "none"

    @property
    def controllers(self) -> frozenset[str]:
        return frozenset()

    def create(self, job_id: str, limits: Limits, cwd: str | None) -> _Group:
        if not limits.empty:
            raise LimitUnsupported("resource limits", "this host offers no writable cgroups")
        return _Group()

    def sweep(self, leftovers: Sequence[Leftover]) -> int:
        """Kill the group of each leftover main process that is provably the same process."""
        killed = 0
        for leftover in leftovers:
            if process_start_time(leftover.pid) != leftover.start_time:
                continue  # gone, or its pid now belongs to someone else
            with contextlib.suppress(ProcessLookupError):
                os.killpg(leftover.pid, signal.SIGKILL)
                killed += 1
        return killed

    def close(self) -> None:
        pass

"""Containing a job's process tree: one protocol, three implementations.

Chosen once at start-up from what the host offers (``detect``):

- ``CgroupV2`` (``v2.py``): a unified hierarchy with controllers (cpu, memory, io, pids).
- ``CgroupV1`` (``v1.py``): controllers under /sys/fs/cgroup/<controller> (cpu,
  memory, blkio, pids, freezer). On a hybrid host the controller-less cgroup2 at
  /sys/fs/cgroup/unified is joined too, for its ``cgroup.kill``.
- ``ProcessGroup`` (``pgroup.py``): no writable cgroups (an unprivileged laptop).
  The job's process group is signalled instead; a process that calls setsid
  escapes, and limits are refused.

A job's first instruction already runs in its cgroup: the child writes itself
into ``cgroup.procs`` (through files its parent opened) before it execs, so no
fork can escape. Signals reach every process through the cgroup: SIGKILL via
``cgroup.kill`` where the host has it, anything else (and SIGKILL elsewhere) by
freezing the cgroup, signalling every pid in it, and thawing it, so that no pid
read from the cgroup can have exited and been reused meanwhile.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..model import Limits, Usage
from ..process import Process
from ._common import CGROUP_ROOT
from .pgroup import ProcessGroup
from .v1 import CgroupV1
from .v2 import CgroupV2

__all__ = [
    "CGROUP_ROOT",
    "CgroupV1",
    "CgroupV2",
    "Container",
    "Containment",
    "Leftover",
    "ProcessGroup",
    "detect",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Leftover:
    """The main process of a job that was running when an earlier server crashed.

    ``start_time`` (clock ticks since boot) tells it apart from an unrelated
    process that reused its pid.
    """

    pid: int
    start_time: int


class Container(Protocol):
    """The container of one job's processes."""

    def preexec(self) -> Callable[[], None] | None:
        """What the child runs before exec to join the container (None: nothing)."""

    def spawned(self, process: Process | None) -> None:
        """The child has been started (None: it failed to); release what ``preexec`` holds."""

    def signal(self, sig: int) -> None:
        """Send ``sig`` to every process of the job."""

    async def wait_empty(self) -> None:
        """Wait until no process of the job is left (after SIGKILL)."""

    def oom_killed(self) -> bool:
        """Whether the kernel killed a process of the job for its memory limit."""

    def usage(self) -> Usage:
        """What the job has used so far (or in all, once it has ended and before
        ``close``). Raises ``OSError`` when the figures cannot be read."""

    def close(self) -> None:
        """Remove the container; it must be empty."""


class Containment(Protocol):
    """Makes job containers on this host, and cleans up what an earlier run left."""

    description: str
    """One line for the server's start-up log."""
    kind: str
    """``v2``, ``v1`` or ``none`` (no cgroups), as the ``jobs.io/cgroup`` label says."""

    @property
    def controllers(self) -> frozenset[str]:
        """The cgroup controllers that limit jobs here (cpu, memory, io or blkio, pids)."""

    def create(self, job_id: str, limits: Limits, cwd: str | None) -> Container:
        """A container for a job with ``limits``.

        Raises ``LimitUnsupported`` or ``InvalidArgument`` for a limit this host
        cannot enforce; nothing is left behind then.
        """

    def sweep(self, leftovers: Sequence[Leftover]) -> int:
        """Kill what an earlier run left of its jobs; how many jobs had something left.

        ``leftovers`` are the main processes the records show running at a
        crash; cgroups find their processes without them.
        """

    def close(self) -> None:
        """Remove the containment's own (empty) directories."""


def detect(scope: str, root: Path = CGROUP_ROOT) -> Containment:
    """The best containment this host offers: cgroup v2, then v1, then the process group.

    ``scope`` names the directory that holds this manager's job cgroups, so that
    two servers on one host never sweep each other's jobs.
    """
    try:
        if CgroupV2.available(root):
            return CgroupV2(scope, root)
        if CgroupV1.available(root):
            return CgroupV1(scope, root)
    except OSError as exc:
        log.warning("cgroups are there but not usable: %s", exc)
    return ProcessGroup()

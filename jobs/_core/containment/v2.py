"""cgroup v2: a directory per job in a unified hierarchy with delegated controllers."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from ...errors import LimitUnsupported
from ..model import Limits, Usage
from ..process import Process
from ._common import (
    CGROUP_ROOT,
    CPU_PERIOD_US,
    EMPTY_POLL,
    Attachment,
    apply,
    counter,
    device_bytes,
    io_rates,
    kill_pids,
    own_cgroup,
    pids,
    remove,
    sweep,
    wait_empty_blocking,
    write,
)

if TYPE_CHECKING:
    from . import Leftover

__all__ = ["CgroupV2"]

log = logging.getLogger(__name__)


class _V2Cgroup:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._attachment = Attachment()

    def __repr__(self) -> str:
        return f"<cgroup v2 {self.path}>"

    def preexec(self) -> Callable[[], None]:
        return self._attachment.preexec([self.path / "cgroup.procs"])

    def spawned(self, process: Process | None) -> None:
        self._attachment.release()

    def signal(self, sig: int) -> None:
        if sig == signal.SIGKILL and (self.path / "cgroup.kill").exists():
            write(self.path / "cgroup.kill", "1")
            return
        freeze = self.path / "cgroup.freeze"
        write(freeze, "1")
        try:
            kill_pids(pids(self.path / "cgroup.procs"), sig)
        finally:
            write(freeze, "0")

    async def wait_empty(self) -> None:
        while "populated 1" in (self.path / "cgroup.events").read_text():  # noqa: ASYNC110
            await anyio.sleep(EMPTY_POLL)

    def oom_killed(self) -> bool:
        return counter(self.path / "memory.events", "oom_kill") > 0

    def usage(self) -> Usage:
        # cpu.stat is there even without the cpu controller; memory.peak (Linux 5.19)
        # and io.stat only with theirs: absent, their figures read 0.
        user = counter(self.path / "cpu.stat", "user_usec") / 1e6
        system = counter(self.path / "cpu.stat", "system_usec") / 1e6
        try:
            peak = int((self.path / "memory.peak").read_text())
        except FileNotFoundError:
            peak = 0
        read, written = device_bytes(self.path / "io.stat", "rbytes", "wbytes")
        return Usage(user, system, peak, read, written, "cgroup v2")

    def close(self) -> None:
        self._attachment.release()
        remove(self.path)


class CgroupV2:
    """A unified cgroup hierarchy. Limits need its controllers delegated to us."""

    kind = "v2"

    def __init__(self, scope: str, root: Path = CGROUP_ROOT) -> None:
        self._base = root / own_cgroup(None).lstrip("/") / scope
        self._enabled = self._ensure_base()
        self.description = (
            f"cgroup v2 at {root} (controllers: {', '.join(sorted(self._enabled)) or 'none'})"
        )

    @property
    def controllers(self) -> frozenset[str]:
        return frozenset(self._enabled & {"cpu", "memory", "io", "pids"})

    @classmethod
    def available(cls, root: Path = CGROUP_ROOT) -> bool:
        return (root / "cgroup.controllers").exists() and os.access(root, os.W_OK)

    def _ensure_base(self) -> set[str]:
        """Make the base directory and enable what controllers it offers; the enabled ones."""
        self._base.mkdir(mode=0o755, exist_ok=True)
        controllers = set((self._base / "cgroup.controllers").read_text().split())
        wanted = controllers & {"cpu", "memory", "io", "pids"}
        if wanted:
            try:
                write(
                    self._base / "cgroup.subtree_control", " ".join(f"+{c}" for c in sorted(wanted))
                )
            except OSError as exc:
                log.warning("cannot enable %s for jobs: %s", ", ".join(sorted(wanted)), exc)
        return set((self._base / "cgroup.subtree_control").read_text().split())

    def create(self, job_id: str, limits: Limits, cwd: str | None) -> _V2Cgroup:
        files: dict[str, str] = {}
        if limits.cpu is not None:
            quota = max(1000, round(limits.cpu * CPU_PERIOD_US))
            files["cpu.max"] = f"{quota} {CPU_PERIOD_US}"
        if limits.memory is not None:
            files["memory.max"] = str(limits.memory)
            files["memory.swap.max"] = "0"
        if limits.pids is not None:
            files["pids.max"] = str(limits.pids)
        rates = io_rates(limits, cwd)
        io_lines = [
            " ".join(
                [device]
                + ([f"rbps={r}"] if r is not None else [])
                + ([f"wbps={w}"] if w is not None else [])
            )
            for device, (r, w) in rates.items()
        ]
        for name in [*files, *(["io.max"] if io_lines else [])]:
            controller = name.partition(".")[0]
            if controller not in self._enabled:
                raise LimitUnsupported(
                    f"the {controller} controller", "not delegated to this server's cgroup"
                )
        cgroup = _V2Cgroup(self._base / job_id)
        try:
            cgroup.path.mkdir(mode=0o755)
        except FileNotFoundError:  # our base vanished under us (removed by hand)
            self._enabled = self._ensure_base()
            cgroup.path.mkdir(mode=0o755)
        try:
            for name, value in files.items():
                if name == "memory.swap.max" and not (cgroup.path / name).exists():
                    continue  # no swap accounting: nothing to limit
                apply(cgroup.path / name, value)
            for line in io_lines:
                apply(cgroup.path / "io.max", line)
        except BaseException:
            cgroup.close()
            raise
        return cgroup

    def sweep(self, leftovers: Sequence[Leftover]) -> int:
        return sweep([self._base], self._kill_stale)

    def close(self) -> None:
        remove(self._base)

    def _kill_stale(self, job_id: str) -> None:
        stale = _V2Cgroup(self._base / job_id)
        stale.signal(signal.SIGKILL)
        wait_empty_blocking([stale.path / "cgroup.procs"])
        stale.close()

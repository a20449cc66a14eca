"""cgroup v1: a directory per job under each controller (and the hybrid host's cgroup2)."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterator, Sequence
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

__all__ = ["CgroupV1"]

_CONTROLLERS = ("freezer", "cpu", "cpuacct", "memory", "blkio", "pids")
_ACCOUNTING = ("cpuacct", "memory", "blkio")
"""Controllers every job joins, limited or not, for its usage figures."""


class _V1Cgroup:
    def __init__(self, dirs: dict[str, Path], unified: Path | None) -> None:
        self.dirs = dirs  # controller -> this job's directory
        self.unified = unified  # the hybrid host's cgroup2 directory, for cgroup.kill
        self._attachment = Attachment()

    def __repr__(self) -> str:
        return f"<cgroup v1 {self.dirs.get('freezer')}>"

    def _all(self) -> list[Path]:
        return [*self.dirs.values(), *filter(None, [self.unified])]

    def preexec(self) -> Callable[[], None]:
        return self._attachment.preexec([d / "cgroup.procs" for d in self._all()])

    def spawned(self, process: Process | None) -> None:
        self._attachment.release()

    def signal(self, sig: int) -> None:
        if sig == signal.SIGKILL and self.unified is not None:
            with contextlib.suppress(FileNotFoundError):
                write(self.unified / "cgroup.kill", "1")
                return
        with self._frozen():
            kill_pids(pids(self.dirs["freezer"] / "cgroup.procs"), sig)

    @contextlib.contextmanager
    def _frozen(self) -> Iterator[None]:
        state = self.dirs["freezer"] / "freezer.state"
        try:
            write(state, "FROZEN")
        except FileNotFoundError:
            yield
            return
        try:
            yield
        finally:
            write(state, "THAWED")

    async def wait_empty(self) -> None:
        while pids(self.dirs["freezer"] / "cgroup.procs"):  # noqa: ASYNC110 (no wake-up on v1)
            await anyio.sleep(EMPTY_POLL)

    def oom_killed(self) -> bool:
        memory = self.dirs.get("memory")
        return memory is not None and counter(memory / "memory.oom_control", "oom_kill") > 0

    def usage(self) -> Usage:
        user = system = 0.0
        if (cpu := self.dirs.get("cpuacct")) is not None:
            user = int((cpu / "cpuacct.usage_user").read_text()) / 1e9
            system = int((cpu / "cpuacct.usage_sys").read_text()) / 1e9
        peak = 0
        if (memory := self.dirs.get("memory")) is not None:
            peak = int((memory / "memory.max_usage_in_bytes").read_text())
        read = written = 0
        if (blkio := self.dirs.get("blkio")) is not None:
            stats = blkio / "blkio.throttle.io_service_bytes_recursive"
            read, written = device_bytes(stats, "Read", "Write")
        return Usage(user, system, peak, read, written, "cgroup v1")

    def close(self) -> None:
        self._attachment.release()
        for directory in self._all():
            remove(directory)


class CgroupV1:
    """cgroup v1 controllers (with the hybrid host's cgroup2 for ``cgroup.kill``)."""

    kind = "v1"

    def __init__(self, scope: str, root: Path = CGROUP_ROOT) -> None:
        self._bases: dict[str, Path] = {}
        for controller in _CONTROLLERS:
            mount = root / controller
            if (mount / "cgroup.procs").exists():
                self._bases[controller] = mount / own_cgroup(controller).lstrip("/") / scope
        self._unified: Path | None = None
        unified = root / "unified"
        if (unified / "cgroup.procs").exists():
            self._unified = unified / own_cgroup(None).lstrip("/") / scope
        self._ensure_bases()
        kill = "cgroup.kill" if self._unified is not None else "freeze, signal, thaw"
        self.description = f"cgroup v1 ({', '.join(sorted(self._bases))}); SIGKILL through {kill}"

    @property
    def controllers(self) -> frozenset[str]:
        """The controllers that limit jobs (freezer and cpuacct only contain and count)."""
        return frozenset(self._bases) - {"freezer", "cpuacct"}

    @classmethod
    def available(cls, root: Path = CGROUP_ROOT) -> bool:
        freezer = root / "freezer"
        return (freezer / "cgroup.procs").exists() and os.access(freezer, os.W_OK)

    def _ensure_bases(self) -> None:
        for base in (*self._bases.values(), *filter(None, [self._unified])):
            base.mkdir(mode=0o755, exist_ok=True)

    def create(self, job_id: str, limits: Limits, cwd: str | None) -> _V1Cgroup:
        settings: dict[str, dict[str, str]] = {"freezer": {}}
        for controller in _ACCOUNTING:
            if controller in self._bases:
                settings[controller] = {}
        if limits.cpu is not None:
            quota = max(1000, round(limits.cpu * CPU_PERIOD_US))
            settings["cpu"] = {
                "cpu.cfs_period_us": str(CPU_PERIOD_US),
                "cpu.cfs_quota_us": str(quota),
            }
        if limits.memory is not None:
            settings.setdefault("memory", {})["memory.limit_in_bytes"] = str(limits.memory)
        if limits.pids is not None:
            settings["pids"] = {"pids.max": str(limits.pids)}
        rates = io_rates(limits, cwd)
        if rates:
            blkio: dict[str, str] = {}
            reads = [f"{dev} {r}" for dev, (r, _) in rates.items() if r is not None]
            writes = [f"{dev} {w}" for dev, (_, w) in rates.items() if w is not None]
            if reads:
                blkio["blkio.throttle.read_bps_device"] = "\n".join(reads)
            if writes:
                blkio["blkio.throttle.write_bps_device"] = "\n".join(writes)
            settings.setdefault("blkio", {}).update(blkio)
        for controller in settings:
            if controller not in self._bases:
                raise LimitUnsupported(f"the {controller} controller", "not mounted on this host")
        cgroup = _V1Cgroup({}, None)
        try:
            for controller, files in settings.items():
                directory = self._bases[controller] / job_id
                self._mkdir(directory)
                cgroup.dirs[controller] = directory
                for name, value in files.items():
                    for line in value.split("\n"):  # blkio takes one device per write
                        apply(directory / name, line)
            if self._unified is not None:
                cgroup.unified = self._unified / job_id
                self._mkdir(cgroup.unified)
        except BaseException:
            cgroup.close()
            raise
        return cgroup

    def _mkdir(self, directory: Path) -> None:
        try:
            directory.mkdir(mode=0o755)
        except FileNotFoundError:  # our base vanished under us (removed by hand)
            self._ensure_bases()
            directory.mkdir(mode=0o755)

    def sweep(self, leftovers: Sequence[Leftover]) -> int:
        return sweep([*self._bases.values(), *filter(None, [self._unified])], self._kill_stale)

    def close(self) -> None:
        for base in (*self._bases.values(), *filter(None, [self._unified])):
            remove(base)

    def _kill_stale(self, job_id: str) -> None:
        stale = _V1Cgroup(
            {c: b / job_id for c, b in self._bases.items() if (b / job_id).exists()},
            self._unified / job_id if self._unified and (self._unified / job_id).exists() else None,
        )
        if "freezer" in stale.dirs:
            stale.signal(signal.SIGKILL)
        wait_empty_blocking([d / "cgroup.procs" for d in stale.dirs.values()])
        stale.close()

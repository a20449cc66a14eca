"""Containing a job's process tree: cgroup v2, cgroup v1, or the process group.

Three implementations of one small protocol, chosen once at start-up from what
the host offers (``detect``):

- ``CgroupV2``: a unified hierarchy with controllers (cpu, memory, io, pids).
- ``CgroupV1``: controllers under /sys/fs/cgroup/<controller> (cpu, memory,
  blkio, pids, freezer). On a hybrid host the controller-less cgroup2 at
  /sys/fs/cgroup/unified is joined too, for its ``cgroup.kill``.
- ``ProcessGroupDriver``: no writable cgroups (an unprivileged laptop). The
  job's process group is signalled instead; a process that calls setsid escapes.

A job's first instruction already runs in its cgroup: the child writes itself
into ``cgroup.procs`` (through files its parent opened) before it execs, so no
fork can escape. Signals reach every process through the cgroup: SIGKILL via
``cgroup.kill`` where the host has it, anything else (and SIGKILL elsewhere) by
freezing the cgroup, signalling every pid in it, and thawing it, so that no pid
read from the cgroup can have exited and been reused meanwhile.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import anyio

from ._model import IoRate, Limits
from .errors import InvalidArgument, LimitUnsupported

__all__ = [
    "CgroupV1",
    "CgroupV2",
    "Driver",
    "JobCgroup",
    "ProcessGroupDriver",
    "detect",
]

log = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")
CPU_PERIOD_US = 100_000
_EMPTY_POLL = 0.005  # the kernel offers no wake-up for "empty" on v1
_REMOVE_TRIES = 50


class JobCgroup(Protocol):
    """The container of one job's processes."""

    def preexec(self) -> Callable[[], None]:
        """What the child runs before exec to join the container."""

    def attached(self) -> None:
        """The child has been started (or failed to): release what ``preexec`` holds."""

    def signal(self, sig: int) -> None:
        """Send ``sig`` to every process of the job."""

    async def wait_empty(self) -> None:
        """Wait until no process of the job is left."""

    def oom_killed(self) -> bool:
        """Whether the kernel killed a process of the job for its memory limit."""

    def close(self) -> None:
        """Remove the container; it must be empty."""


class Driver(Protocol):
    """Makes job containers on this host."""

    description: str

    def create(self, job_id: str, limits: Limits, cwd: str | None) -> JobCgroup | None:
        """A container for a job with ``limits``; None when the process group serves.

        Raises ``LimitUnsupported`` or ``InvalidArgument`` for a limit this host
        cannot enforce; nothing is left behind then.
        """

    def sweep(self) -> int:
        """Kill what is left in job cgroups from an earlier run, remove them; how many."""

    def close(self) -> None:
        """Remove the driver's own (empty) cgroup directories."""


class ProcessGroupDriver:
    """No cgroups: jobs are contained by their process group only."""

    description = (
        "no writable cgroups: jobs are contained by their process group only (setsid escapes it)"
    )

    def create(self, job_id: str, limits: Limits, cwd: str | None) -> JobCgroup | None:
        if not limits.empty:
            raise LimitUnsupported("resource limits", "this host offers no writable cgroups")
        return None

    def sweep(self) -> int:
        return 0

    def close(self) -> None:
        pass


# -- shared plumbing ---------------------------------------------------------------


def _write(path: Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _pids(procs: Path) -> list[int]:
    try:
        return [int(line) for line in procs.read_text().split()]
    except FileNotFoundError:
        return []


def _counter(path: Path, key: str) -> int:
    """A value from a flat-keyed cgroup file ("key value" lines); 0 if absent."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return 0
    for line in lines:
        name, _, value = line.partition(" ")
        if name == key:
            return int(value)
    return 0


def _kill_pids(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _remove(path: Path) -> None:
    """rmdir a cgroup, retrying while the kernel still counts a dying process."""
    for attempt in range(_REMOVE_TRIES):
        try:
            path.rmdir()
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno == errno.ENOTEMPTY:
                return  # a base directory another manager still uses
            if exc.errno != errno.EBUSY or attempt == _REMOVE_TRIES - 1:
                log.warning("cannot remove cgroup %s: %s", path, exc)
                return
            # Only the short window in which an exiting task still counts.
            time.sleep(0.002 * (attempt + 1))
        else:
            return


def _own_cgroup(controller: str | None) -> str:
    """Our own cgroup path in the hierarchy of ``controller`` (None: the unified one)."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        number, controllers, path = line.split(":", 2)
        if controller is None and number == "0":
            return path
        if controller is not None and controller in controllers.split(","):
            return path
    raise LookupError(controller)


def block_device(rate: IoRate, cwd: str | None) -> str:
    """``MAJ:MIN`` of the whole disk a rate applies to.

    The device is a block device path, ``MAJ:MIN``, or (None) the device that
    holds ``cwd``; a partition is throttled through its disk.
    """
    if rate.device is None:
        st_dev = os.stat(cwd or "/").st_dev
        major, minor = os.major(st_dev), os.minor(st_dev)
        what = f"the device of {cwd or '/'}"
    elif ":" in rate.device and not rate.device.startswith("/"):
        try:
            major, minor = (int(part) for part in rate.device.split(":"))
        except ValueError:
            raise InvalidArgument(f"{rate.device!r} is not MAJ:MIN") from None
        what = rate.device
    else:
        try:
            st = os.stat(rate.device)
        except OSError as exc:
            raise LimitUnsupported(f"IO limit on {rate.device}", exc.strerror or str(exc)) from None
        if not stat.S_ISBLK(st.st_mode):
            raise LimitUnsupported(f"IO limit on {rate.device}", "not a block device")
        major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
        what = rate.device
    sys_dev = Path(f"/sys/dev/block/{major}:{minor}")
    if not sys_dev.exists():
        raise LimitUnsupported(f"IO limit on {what}", f"{major}:{minor} is not a block device here")
    if (sys_dev / "partition").exists():
        return (sys_dev.resolve().parent / "dev").read_text().strip()
    return f"{major}:{minor}"


def _io_rates(limits: Limits, cwd: str | None) -> dict[str, tuple[int | None, int | None]]:
    """Read and write bytes/s per device ``MAJ:MIN``."""
    rates: dict[str, tuple[int | None, int | None]] = {}
    for rate in limits.io_read:
        device = block_device(rate, cwd)
        rates[device] = (rate.bytes_per_second, rates.get(device, (None, None))[1])
    for rate in limits.io_write:
        device = block_device(rate, cwd)
        rates[device] = (rates.get(device, (None, None))[0], rate.bytes_per_second)
    return rates


def _attacher(paths: list[Path]) -> tuple[Callable[[], None], Callable[[], None]]:
    """A preexec function writing the child into each ``cgroup.procs``, and a closer.

    The files are opened here, in the parent, so the child only calls write().
    """
    fds = [os.open(path, os.O_WRONLY | os.O_CLOEXEC) for path in paths]

    def attach() -> None:
        for fd in fds:
            os.write(fd, b"0")

    def close() -> None:
        for fd in fds:
            os.close(fd)

    return attach, close


# -- cgroup v1 ---------------------------------------------------------------------


@dataclass
class _V1Cgroup:
    dirs: dict[str, Path]  # controller -> this job's directory
    unified: Path | None  # the hybrid host's cgroup2 directory, for cgroup.kill

    def preexec(self) -> Callable[[], None]:
        attach, self._close_fds = _attacher(
            [d / "cgroup.procs" for d in (*self.dirs.values(), *filter(None, [self.unified]))]
        )
        return attach

    def attached(self) -> None:
        self._close_fds()

    def signal(self, sig: int) -> None:
        if sig == signal.SIGKILL and self.unified is not None:
            with contextlib.suppress(FileNotFoundError):
                _write(self.unified / "cgroup.kill", "1")
                return
        with self._frozen():
            _kill_pids(_pids(self.dirs["freezer"] / "cgroup.procs"), sig)

    @contextlib.contextmanager
    def _frozen(self) -> Iterator[None]:
        state = self.dirs["freezer"] / "freezer.state"
        try:
            _write(state, "FROZEN")
        except FileNotFoundError:
            yield
            return
        try:
            yield
        finally:
            _write(state, "THAWED")

    async def wait_empty(self) -> None:
        # v1 has no notification for this (only release_agent); the processes
        # were SIGKILLed, so this loop ends within a few rounds.
        while _pids(self.dirs["freezer"] / "cgroup.procs"):  # noqa: ASYNC110
            await anyio.sleep(_EMPTY_POLL)

    def oom_killed(self) -> bool:
        memory = self.dirs.get("memory")
        return memory is not None and _counter(memory / "memory.oom_control", "oom_kill") > 0

    def close(self) -> None:
        for directory in (*self.dirs.values(), *filter(None, [self.unified])):
            _remove(directory)


class CgroupV1:
    """cgroup v1 controllers (with the hybrid host's cgroup2 for ``cgroup.kill``)."""

    REQUIRED = ("freezer",)

    def __init__(self, scope: str, root: Path = CGROUP_ROOT) -> None:
        self._bases: dict[str, Path] = {}
        for controller in ("freezer", "cpu", "memory", "blkio", "pids"):
            mount = root / controller
            if (mount / "cgroup.procs").exists():
                self._bases[controller] = mount / _own_cgroup(controller).lstrip("/") / scope
        self._unified: Path | None = None
        unified = root / "unified"
        if (unified / "cgroup.procs").exists():
            self._unified = unified / _own_cgroup(None).lstrip("/") / scope
        for base in (*self._bases.values(), *filter(None, [self._unified])):
            base.mkdir(mode=0o755, exist_ok=True)
        kill = "cgroup.kill" if self._unified is not None else "freeze, signal, thaw"
        self.description = f"cgroup v1 ({', '.join(sorted(self._bases))}); SIGKILL through {kill}"

    @classmethod
    def available(cls, root: Path = CGROUP_ROOT) -> bool:
        freezer = root / "freezer"
        return (freezer / "cgroup.procs").exists() and os.access(freezer, os.W_OK)

    def create(self, job_id: str, limits: Limits, cwd: str | None) -> JobCgroup:
        settings: dict[str, dict[str, str]] = {"freezer": {}}
        if limits.cpu is not None:
            quota = max(1000, round(limits.cpu * CPU_PERIOD_US))
            settings["cpu"] = {
                "cpu.cfs_period_us": str(CPU_PERIOD_US),
                "cpu.cfs_quota_us": str(quota),
            }
        if limits.memory is not None:
            settings["memory"] = {"memory.limit_in_bytes": str(limits.memory)}
        if limits.pids is not None:
            settings["pids"] = {"pids.max": str(limits.pids)}
        rates = _io_rates(limits, cwd)
        if rates:
            blkio: dict[str, str] = {}
            reads = [f"{dev} {r}" for dev, (r, _) in rates.items() if r is not None]
            writes = [f"{dev} {w}" for dev, (_, w) in rates.items() if w is not None]
            if reads:
                blkio["blkio.throttle.read_bps_device"] = "\n".join(reads)
            if writes:
                blkio["blkio.throttle.write_bps_device"] = "\n".join(writes)
            settings["blkio"] = blkio
        for controller in settings:
            if controller not in self._bases:
                raise LimitUnsupported(f"the {controller} controller", "not mounted on this host")
        cgroup = _V1Cgroup({}, None)
        try:
            for controller, files in settings.items():
                directory = self._bases[controller] / job_id
                directory.mkdir(mode=0o755)
                cgroup.dirs[controller] = directory
                for name, value in files.items():
                    for line in value.split("\n"):  # blkio takes one device per write
                        _apply(directory / name, line)
            if self._unified is not None:
                cgroup.unified = self._unified / job_id
                cgroup.unified.mkdir(mode=0o755)
        except BaseException:
            cgroup.close()
            raise
        return cgroup

    def sweep(self) -> int:
        return _sweep([*self._bases.values(), *filter(None, [self._unified])], self._kill_stale)

    def close(self) -> None:
        for base in (*self._bases.values(), *filter(None, [self._unified])):
            _remove(base)

    def _kill_stale(self, job_id: str) -> None:
        stale = _V1Cgroup(
            {c: b / job_id for c, b in self._bases.items() if (b / job_id).exists()},
            self._unified / job_id if self._unified and (self._unified / job_id).exists() else None,
        )
        if "freezer" in stale.dirs:
            stale.signal(signal.SIGKILL)
        _wait_empty_blocking([d / "cgroup.procs" for d in stale.dirs.values()])
        stale.close()


def _apply(path: Path, value: str) -> None:
    try:
        _write(path, value)
    except FileNotFoundError:
        raise LimitUnsupported(path.name, "this kernel does not offer it") from None
    except OSError as exc:
        raise LimitUnsupported(f"{path.name}={value}", exc.strerror or str(exc)) from None


def _wait_empty_blocking(procs: list[Path], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while any(_pids(p) for p in procs) and time.monotonic() < deadline:
        time.sleep(_EMPTY_POLL)


def _sweep(bases: list[Path], kill: Callable[[str], None]) -> int:
    stale = {
        child.name for base in bases if base.is_dir() for child in base.iterdir() if child.is_dir()
    }
    for job_id in stale:
        log.warning("removing the cgroup of job %s, left from an earlier run", job_id)
        kill(job_id)
    return len(stale)


# -- cgroup v2 ---------------------------------------------------------------------


@dataclass
class _V2Cgroup:
    path: Path

    def preexec(self) -> Callable[[], None]:
        attach, self._close_fds = _attacher([self.path / "cgroup.procs"])
        return attach

    def attached(self) -> None:
        self._close_fds()

    def signal(self, sig: int) -> None:
        if sig == signal.SIGKILL and (self.path / "cgroup.kill").exists():
            _write(self.path / "cgroup.kill", "1")
            return
        freeze = self.path / "cgroup.freeze"
        _write(freeze, "1")
        try:
            _kill_pids(_pids(self.path / "cgroup.procs"), sig)
        finally:
            _write(freeze, "0")

    async def wait_empty(self) -> None:
        # cgroup.events signals changes with POLLPRI, which anyio cannot wait for;
        # the processes were SIGKILLed, so this loop ends within a few rounds.
        while "populated 1" in (self.path / "cgroup.events").read_text():  # noqa: ASYNC110
            await anyio.sleep(_EMPTY_POLL)

    def oom_killed(self) -> bool:
        return _counter(self.path / "memory.events", "oom_kill") > 0

    def close(self) -> None:
        _remove(self.path)


class CgroupV2:
    """A unified cgroup hierarchy. Limits need its controllers delegated to us."""

    def __init__(self, scope: str, root: Path = CGROUP_ROOT) -> None:
        self._base = root / _own_cgroup(None).lstrip("/") / scope
        self._base.mkdir(mode=0o755, exist_ok=True)
        self._controllers = set((self._base / "cgroup.controllers").read_text().split())
        wanted = self._controllers & {"cpu", "memory", "io", "pids"}
        if wanted:
            try:
                _write(
                    self._base / "cgroup.subtree_control", " ".join(f"+{c}" for c in sorted(wanted))
                )
            except OSError as exc:
                log.warning("cannot enable %s for jobs: %s", ", ".join(sorted(wanted)), exc)
        self._enabled = set((self._base / "cgroup.subtree_control").read_text().split())
        self.description = (
            f"cgroup v2 at {root} (controllers: {', '.join(sorted(self._enabled)) or 'none'})"
        )

    @classmethod
    def available(cls, root: Path = CGROUP_ROOT) -> bool:
        return (root / "cgroup.controllers").exists() and os.access(root, os.W_OK)

    def create(self, job_id: str, limits: Limits, cwd: str | None) -> JobCgroup:
        files: dict[str, str] = {}
        if limits.cpu is not None:
            quota = max(1000, round(limits.cpu * CPU_PERIOD_US))
            files["cpu.max"] = f"{quota} {CPU_PERIOD_US}"
        if limits.memory is not None:
            files["memory.max"] = str(limits.memory)
            files["memory.swap.max"] = "0"
        if limits.pids is not None:
            files["pids.max"] = str(limits.pids)
        rates = _io_rates(limits, cwd)
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
        cgroup.path.mkdir(mode=0o755)
        try:
            for name, value in files.items():
                if name == "memory.swap.max" and not (cgroup.path / name).exists():
                    continue  # no swap accounting: nothing to limit
                _apply(cgroup.path / name, value)
            for line in io_lines:
                _apply(cgroup.path / "io.max", line)
        except BaseException:
            cgroup.close()
            raise
        return cgroup

    def sweep(self) -> int:
        return _sweep([self._base], self._kill_stale)

    def close(self) -> None:
        _remove(self._base)

    def _kill_stale(self, job_id: str) -> None:
        stale = _V2Cgroup(self._base / job_id)
        stale.signal(signal.SIGKILL)
        _wait_empty_blocking([stale.path / "cgroup.procs"])
        stale.close()


def detect(scope: str, root: Path = CGROUP_ROOT) -> Driver:
    """The best driver this host offers: cgroup v2, then v1, then the process group.

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
    return ProcessGroupDriver()

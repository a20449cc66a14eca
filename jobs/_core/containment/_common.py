"""What the cgroup implementations share: cgroup files, pids, removal, devices, attaching."""

from __future__ import annotations

import errno
import logging
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path

from ...errors import InvalidArgument, LimitUnsupported, echo
from ..model import IoRate, Limits

log = logging.getLogger("jobs._core.containment")

CGROUP_ROOT = Path("/sys/fs/cgroup")
CPU_PERIOD_US = 100_000
EMPTY_POLL = 0.005
"""The kernel offers no wake-up for "empty" that anyio can wait for (v1 has none,
v2 signals cgroup.events with POLLPRI); the processes were SIGKILLed, so a poll
at this interval ends within a few rounds."""
_REMOVE_TRIES = 50


def write(path: Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def pids(procs: Path) -> list[int]:
    try:
        return [int(line) for line in procs.read_text().split()]
    except FileNotFoundError:
        return []


def counter(path: Path, key: str) -> int:
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


def device_bytes(path: Path, read_key: str, write_key: str) -> tuple[int, int]:
    """Bytes read and written, summed over devices, from a per-device stat file:
    v1's "MAJ:MIN Read N" lines or v2's "MAJ:MIN rbytes=N wbytes=N ..." lines."""
    read = written = 0
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return 0, 0
    for line in lines:
        words = line.split()
        if len(words) == 3 and words[1] in (read_key, write_key):  # v1
            if words[1] == read_key:
                read += int(words[2])
            else:
                written += int(words[2])
            continue
        for word in words[1:]:  # v2
            key, _, value = word.partition("=")
            if key == read_key:
                read += int(value)
            elif key == write_key:
                written += int(value)
    return read, written


def kill_pids(targets: list[int], sig: int) -> None:
    for pid in targets:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def remove(path: Path) -> None:
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


def own_cgroup(controller: str | None) -> str:
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
            raise InvalidArgument(f"{echo(rate.device)} is not MAJ:MIN") from None
        what = rate.device
    else:
        try:
            st = os.stat(rate.device)
        except OSError as exc:
            raise LimitUnsupported(
                f"IO limit on {echo(rate.device)}", exc.strerror or str(exc)
            ) from None
        if not stat.S_ISBLK(st.st_mode):
            raise LimitUnsupported(f"IO limit on {echo(rate.device)}", "not a block device")
        major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
        what = rate.device
    sys_dev = Path(f"/sys/dev/block/{major}:{minor}")
    if not sys_dev.exists():
        raise LimitUnsupported(f"IO limit on {what}", f"{major}:{minor} is not a block device here")
    if (sys_dev / "partition").exists():
        return (sys_dev.resolve().parent / "dev").read_text().strip()
    return f"{major}:{minor}"


def io_rates(limits: Limits, cwd: str | None) -> dict[str, tuple[int | None, int | None]]:
    """Read and write bytes/s per device ``MAJ:MIN``."""
    rates: dict[str, tuple[int | None, int | None]] = {}
    for rate in limits.io_read:
        device = block_device(rate, cwd)
        rates[device] = (rate.bytes_per_second, rates.get(device, (None, None))[1])
    for rate in limits.io_write:
        device = block_device(rate, cwd)
        rates[device] = (rates.get(device, (None, None))[0], rate.bytes_per_second)
    return rates


class Attachment:
    """The ``cgroup.procs`` files a child writes itself into before exec.

    They are opened in the parent, so the child only calls write(); the parent
    closes them once the child has been started (or failed to be).
    """

    def __init__(self) -> None:
        self._fds: list[int] = []

    def preexec(self, paths: list[Path]) -> Callable[[], None]:
        """Open ``paths``; the function the child runs to join them."""
        self.release()
        fds = self._fds = [os.open(path, os.O_WRONLY | os.O_CLOEXEC) for path in paths]

        def attach() -> None:
            for fd in fds:
                os.write(fd, b"0")

        return attach

    def release(self) -> None:
        """Close the files (again: nothing)."""
        fds, self._fds = self._fds, []
        for fd in fds:
            os.close(fd)


def apply(path: Path, value: str) -> None:
    try:
        write(path, value)
    except FileNotFoundError:
        raise LimitUnsupported(path.name, "this kernel does not offer it") from None
    except OSError as exc:
        raise LimitUnsupported(f"{path.name}={value}", exc.strerror or str(exc)) from None


def wait_empty_blocking(procs: list[Path], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while any(pids(p) for p in procs) and time.monotonic() < deadline:
        time.sleep(EMPTY_POLL)


def sweep(bases: list[Path], kill: Callable[[str], None]) -> int:
    stale = {
        child.name for base in bases if base.is_dir() for child in base.iterdir() if child.is_dir()
    }
    for job_id in stale:
        log.warning("removing the cgroup of job %s, left from an earlier run", job_id)
        kill(job_id)
    return len(stale)

"""Putting a job in its own Linux namespaces: PID (with an init), mount, network.

The server's child unshares before exec: the mount namespace (there is always
one) is made private so nothing mounted in it propagates back; in a new network
namespace the loopback interface is brought up (it is the only one there) and a
fresh /sys is mounted, so that /sys/class/net shows it alone.

A PID namespace is entered differently: ``unshare(CLONE_NEWPID)`` only applies to
the caller's children, so the thread that forks the job unshares it just before
the fork and returns to its own right after (``setns``). The server's child is
thus PID 1 of the new namespace: it mounts /proc there and execs ``dumb-init``
(a compiled init of a few hundred KiB, from its PyPI wheel), which runs the
command as PID 2, forwards signals to it and reaps orphans, as ``docker run
--init`` does. One process and well under a MiB of the job's budgets, where a
Python init took two processes, 7.8 MB and 19 ms. What dumb-init does not do is
done here: the command is checked before the spawn, so one that cannot run is
an error of the call; and its exit code 128+N, which is how an init that is PID
1 reports a command killed by signal N (PID 1 cannot die of a signal it sends
itself), is reported as signal N.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import errno
import fcntl
import functools
import logging
import os
import shutil
import signal
import socket
import stat
import struct
import sysconfig
import tempfile
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from pathlib import Path

import anyio

from ..errors import LimitUnsupported
from .model import Namespace
from .process import (
    ExitStatus,
    Process,
    explain_exec_error,
    proc_stat,
    resolve_command,
    spawn,
)

__all__ = ["available", "init_path", "preexec", "spawn_with_init"]

log = logging.getLogger(__name__)

_CLONE_NEWNS = 0x00020000
_CLONE_NEWNET = 0x40000000
_CLONE_NEWPID = 0x20000000
_MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 2, 4, 8
_MS_REC = 0x4000
_MS_PRIVATE = 1 << 18
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1

# Loaded here, in the server, so the child never needs the dynamic loader.
_libc = ctypes.CDLL(None, use_errno=True)


def preexec(namespaces: Collection[Namespace]) -> Callable[[], None]:
    """What the child runs before exec to enter new ``namespaces``."""
    flags = 0
    if namespaces:
        # PID needs its own /proc mount, and network its own /sys: both need a
        # mount namespace, so that neither mount is seen outside the job.
        flags |= _CLONE_NEWNS
    if Namespace.NET in namespaces:
        flags |= _CLONE_NEWNET
    # CLONE_NEWPID is not here: the forking thread enters it (``spawn_with_init``).
    mount_proc = Namespace.PID in namespaces

    def enter() -> None:
        if _libc.unshare(flags) != 0:
            raise OSError(ctypes.get_errno(), "unshare")
        if flags & _CLONE_NEWNS and _libc.mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None) != 0:
            raise OSError(ctypes.get_errno(), "making / private")
        if flags & _CLONE_NEWNET:
            _loopback_up()
            # sysfs shows the network namespace of whoever mounts it.
            if (
                _libc.mount(b"sysfs", b"/sys", b"sysfs", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC, None)
                != 0
            ):
                raise OSError(ctypes.get_errno(), "mounting /sys")
        # We are PID 1 of the new PID namespace: /proc mounted now shows it alone.
        if mount_proc and (
            _libc.mount(b"proc", b"/proc", b"proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC, None) != 0
        ):
            raise OSError(ctypes.get_errno(), "mounting /proc")

    return enter


def _loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(sock, _SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | _IFF_UP))


@functools.cache
def init_path() -> Path:
    """The init of PID-namespace jobs: the ``dumb-init`` installed with us.

    The init runs as the job's user, so it must be reachable by anyone: installed
    under a private directory (a virtualenv in /root, say), it is copied once into
    a directory of its own that every user can search. Raises ``LimitUnsupported``
    when it is missing.
    """
    found = Path(sysconfig.get_path("scripts")) / "dumb-init"
    if not found.is_file():
        elsewhere = shutil.which("dumb-init")
        if elsewhere is None:
            raise LimitUnsupported("a PID namespace", "its init, dumb-init, is not installed")
        found = Path(elsewhere)
    found = found.resolve()
    if _reachable_by_anyone(found):
        return found
    directory = Path(tempfile.mkdtemp(prefix="jobs-init-"))
    directory.chmod(0o755)
    copy = directory / "dumb-init"
    shutil.copyfile(found, copy)
    copy.chmod(0o755)
    atexit.register(shutil.rmtree, directory, True)
    return copy


def _reachable_by_anyone(path: Path) -> bool:
    """Whether every user may execute ``path``: the file, and a search of each directory."""
    try:
        if not path.stat().st_mode & stat.S_IXOTH:
            return False
        return all(parent.stat().st_mode & stat.S_IXOTH for parent in path.parents)
    except OSError:
        return False


EXEC_WAIT = 5.0
"""Seconds to wait for the init to exec the command before Run returns anyway."""
_BLOCKED = signal.valid_signals() - {signal.SIGKILL, signal.SIGSTOP}


@contextlib.contextmanager
def _pid_namespace_for_children() -> Iterator[None]:
    """In this thread, make the next child PID 1 of a new PID namespace.

    The child is forked with every signal blocked (it inherits this thread's mask):
    a PID 1 drops the signals it has no handler for, so a stop sent before
    dumb-init has taken over would be lost; blocked, it waits for dumb-init,
    which blocks them too and forwards them to the command.
    """
    own = os.open("/proc/thread-self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, _BLOCKED)
    try:
        if _libc.unshare(_CLONE_NEWPID) != 0:
            raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWPID)")
        try:
            yield
        finally:
            # Back to our own, for whatever this worker thread forks next.
            if _libc.setns(own, _CLONE_NEWPID) != 0:
                raise OSError(ctypes.get_errno(), "setns back to the server's PID namespace")
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        os.close(own)


def _signaled(status: ExitStatus) -> ExitStatus:
    """dumb-init exits 128+N when the command was killed by signal N."""
    if status.code is not None and status.code > 128:
        return ExitStatus(signal=status.code - 128)
    return status


def _then_executable(
    preexec: Callable[[], None] | None, path: str, name: str
) -> Callable[[], None]:
    """``preexec``, then the check that whoever the child has become by then (the
    job's user) may execute ``path``: the parent checked it with the server's rights."""

    def run() -> None:
        if preexec is not None:
            preexec()
        if not os.access(path, os.X_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), name)

    return run


def _check_command(argv: Sequence[str], env: Mapping[str, str], cwd: str | None) -> str:
    """Raise what exec would (``CannotExecute``, named) for a command that cannot run:
    once the init runs, a failed exec is only an exit code. The command's path."""
    name = argv[0]
    path = resolve_command(name, env, cwd)
    failure: int | None = None
    if path is None:
        failure = errno.ENOENT
    elif os.path.isdir(path) or not os.access(path, os.X_OK):
        failure = errno.EACCES
    else:
        try:
            with open(path, "rb") as f:
                head = f.read(4)
        except OSError as exc:
            failure = exc.errno
        else:
            if head.startswith(b"#!"):
                failure = _interpreter_missing(path)
            elif head != b"\x7fELF":
                failure = errno.ENOEXEC
    if failure is not None:
        raise explain_exec_error(OSError(failure, os.strerror(failure)), argv, env, cwd)
    assert path is not None
    return path


def _interpreter_missing(path: str) -> int | None:
    with open(path, "rb") as f:
        line = f.readline(256)[2:].strip().split()
    if not line:
        return errno.ENOEXEC
    interpreter = os.fsdecode(line[0])
    return None if os.access(interpreter, os.X_OK) else errno.ENOENT


async def spawn_with_init(
    argv: Sequence[str],
    env: Mapping[str, str],
    cwd: str | None,
    *,
    preexec: Callable[[], None] | None,
    spawned: Callable[[Process | None], None],
) -> Process:
    """Start ``argv`` under the init, as PID 2 of a new PID namespace (the init is
    PID 1, and the job's main process).

    A command that cannot run is an error of the call (``CannotExecute``), found
    before anything starts. Its exit code or signal is the job's.
    """
    init = init_path()
    path = _check_command(argv, env, cwd)
    process = await spawn(
        # Single-child mode: signals go to the command's pid, which exists from the
        # fork on; its process group (the default) does not until the command's
        # setsid, and a stop sent in between was lost. The server signals every
        # process of the job's cgroup anyway.
        [str(init), "--single-child", "--", *argv],
        env,
        cwd,
        preexec=_then_executable(preexec, path, argv[0]),
        spawned=spawned,
        around_fork=_pid_namespace_for_children,
        translate=_signaled,
        command=argv,
    )
    await _command_started(process, init)
    return process


async def _command_started(process: Process, init: Path) -> None:
    """Return once the init's child has exec'd the command (or the init has ended).

    Until then a signal is not safe: dumb-init forwards it to its child, which
    catches it with the init's handlers it still has between fork and exec, and it
    is lost. Returning after the exec, as the spawn of a job without an init does,
    makes a stop right after Run reach the command.
    """
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
    init_exe = os.path.realpath(init)  # noqa: ASYNC240 (a stat or two)
    deadline = anyio.current_time() + EXEC_WAIT
    delay = 0.0
    while anyio.current_time() < deadline:
        try:
            pids = children.read_text().split()  # noqa: ASYNC240 (procfs: instant)
        except OSError:
            return  # no such file on this kernel: do without
        state = proc_stat(process.pid)
        if state is None or state[0] in (b"Z", b"X"):
            return  # the init has ended (so has the command): its status tells the rest
        for pid in pids:
            try:
                if os.readlink(f"/proc/{pid}/exe") != init_exe:
                    return
            except OSError:
                continue
        await anyio.sleep(delay)
        delay = min(0.0005 + delay * 2, 0.002)
    log.warning("the command of pid %d has not started after %.0f s", process.pid, EXEC_WAIT)


def available() -> frozenset[Namespace]:
    """The namespaces jobs can be isolated in here: all three for root (unshare
    needs CAP_SYS_ADMIN), none otherwise."""
    if os.geteuid() != 0:
        return frozenset()
    files = {Namespace.PID: "pid", Namespace.MOUNT: "mnt", Namespace.NET: "net"}
    return frozenset(ns for ns, name in files.items() if Path(f"/proc/self/ns/{name}").exists())

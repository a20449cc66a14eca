"""Putting a job in its own Linux namespaces: PID (with an init), mount, network.

The server's child unshares before exec: the mount namespace (there is always
one) is made private so nothing mounted in it propagates back; in a new network
namespace the loopback interface is brought up (it is the only one there) and a
fresh /sys is mounted, so that /sys/class/net shows it alone. A new PID
namespace applies to the child's children, so the child execs the minimal init
(``pid1.py``), whose first child is PID 1 of the namespace and whose grandchild
is the command; ``spawn_with_init`` runs that protocol.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import signal
import socket
import struct
import sys
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path

import anyio

from .model import Namespace
from .process import Process, explain_exec_error, spawn

__all__ = ["INIT", "available", "preexec", "spawn_with_init"]

INIT = Path(__file__).with_name("pid1.py")

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
    if Namespace.PID in namespaces:
        flags |= _CLONE_NEWPID

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

    return enter


def _loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(sock, _SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | _IFF_UP))


def _init_argv(argv: Sequence[str], errfd: int, *, mount_proc: bool) -> list[str]:
    """The command line that runs ``argv`` under the minimal init."""
    return [
        sys.executable,
        "-I",
        "-S",
        str(INIT),
        *(["--proc"] if mount_proc else []),
        "--errfd",
        str(errfd),
        "--",
        *argv,
    ]


async def _read_exec_error(fd: int) -> int | None:
    """The errno the command's exec failed with, or None once it has exec'd (EOF)."""
    os.set_blocking(fd, False)
    data = b""
    while True:
        try:
            piece = os.read(fd, 64)
        except BlockingIOError:
            await anyio.wait_readable(fd)
            continue
        if not piece:
            return int(data) if data else None
        data += piece


async def spawn_with_init(
    argv: Sequence[str],
    env: Mapping[str, str],
    cwd: str | None,
    *,
    preexec: Callable[[], None] | None,
    spawned: Callable[[Process | None], None],
) -> Process:
    """Start ``argv`` under the minimal init, in the new PID namespace ``preexec`` enters.

    The command's exec is confirmed (or its errno reported) through a
    close-on-exec pipe, so a command that cannot run is still an error of the
    call (``CannotExecute``), with nothing left running.
    """
    errors_r, errors_w = os.pipe()
    try:
        try:
            process = await spawn(
                _init_argv(argv, errors_w, mount_proc=True),
                env,
                cwd,
                preexec=preexec,
                pass_fds=(errors_w,),
                spawned=spawned,
            )
        finally:
            os.close(errors_w)
        failed = await _read_exec_error(errors_r)
    finally:
        os.close(errors_r)
    if failed is not None:
        process.signal_group(signal.SIGKILL)
        process.reap()
        process.close_pipes()
        error = explain_exec_error(OSError(failed, os.strerror(failed)), argv, env, cwd)
        raise error
    return process


def available() -> frozenset[Namespace]:
    """The namespaces jobs can be isolated in here: all three for root (unshare
    needs CAP_SYS_ADMIN), none otherwise."""
    if os.geteuid() != 0:
        return frozenset()
    files = {Namespace.PID: "pid", Namespace.MOUNT: "mnt", Namespace.NET: "net"}
    return frozenset(ns for ns, name in files.items() if Path(f"/proc/self/ns/{name}").exists())

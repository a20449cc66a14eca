"""A minimal init for jobs in a PID namespace, as ``docker run --init`` has.

Run by the job's main process, which the server's spawn has already moved into
new namespaces, as ``python -I -S pid1.py [--proc] --errfd N -- ARGV...``. It
forks the namespace's PID 1, which mounts /proc (with --proc) and starts ARGV as
PID 2, so the command is never PID 1 (PID 1 ignores signals it has no handler
for, and orphans would pile up as zombies). Both forward every catchable signal
toward the command; PID 1 reaps orphans. When the command ends, PID 1 reports its
status up and exits (the kernel then kills whatever is left in the namespace),
and the outer process ends the same way the command did, so the server sees the
command's own exit code or signal.

If ARGV cannot be executed, its errno is written to fd N (close-on-exec, so a
successful exec just closes it). This file uses the standard library only.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

_MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 2, 4, 8
_FORWARDED = [
    s
    for s in signal.valid_signals()
    if s not in (signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD)
    and not (signal.SIGRTMIN <= s <= signal.SIGRTMAX)
]


def _forward_to(pid: int) -> None:
    def forward(signum: int, frame: object) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for signum in _FORWARDED:
        try:
            signal.signal(signum, forward)
        except (OSError, ValueError):
            pass


def _run_command(argv: list[str], errfd: int) -> None:
    """PID 2: restore default signals, keep only fds 0-2, exec; report failure."""
    for signum in _FORWARDED:
        try:
            signal.signal(signum, signal.SIG_DFL)
        except (OSError, ValueError):
            pass
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd != errfd:
            try:
                os.close(fd)
            except OSError:
                pass
    os.set_inheritable(errfd, False)
    try:
        os.execvp(argv[0], argv)
    except OSError as exc:
        os.write(errfd, str(exc.errno or 0).encode())
    os._exit(127)


def _init(argv: list[str], errfd: int, mount_proc: bool, report: int) -> None:
    """PID 1 of the namespace."""
    if mount_proc:
        libc = ctypes.CDLL(None, use_errno=True)
        flags = _MS_NOSUID | _MS_NODEV | _MS_NOEXEC
        if libc.mount(b"proc", b"/proc", b"proc", flags, None) != 0:
            os.write(
                2, f"jobs init: cannot mount /proc: {os.strerror(ctypes.get_errno())}\n".encode()
            )
    command = os.fork()
    if command == 0:
        os.close(report)
        _run_command(argv, errfd)
    os.close(errfd)
    _forward_to(command)
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            os._exit(1)
        if pid == command:
            os.write(report, str(status).encode())
            os._exit(0)


def main() -> None:
    args = sys.argv[1:]
    mount_proc = "--proc" in args
    errfd = int(args[args.index("--errfd") + 1])
    argv = args[args.index("--") + 1 :]
    report_r, report_w = os.pipe()
    init = os.fork()
    if init == 0:
        os.close(report_r)
        _init(argv, errfd, mount_proc, report_w)
    os.close(report_w)
    os.close(errfd)
    _forward_to(init)
    os.waitpid(init, 0)
    raw = os.read(report_r, 64)
    status = int(raw) if raw else 1 << 8
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        if signum in _FORWARDED:
            signal.signal(signum, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signum})
        os.kill(os.getpid(), signum)
    os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1)


if __name__ == "__main__":
    main()

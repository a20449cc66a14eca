"""Starting a job's main process and watching it, without ever racing pid reuse.

The child gets stdin from /dev/null, real pipes (not socketpairs) for stdout and
stderr, only fds 0-2, a session and process group of its own, and a clean
environment. The parent holds a pidfd: it waits on it and signals through it, and
reaps the main process only after what is left of its tree has been killed, so
the process group id can never have been reused when it is signalled.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import logging
import os
import pwd
import resource
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import anyio

from ..errors import CannotExecute, InvalidArgument, LimitUnsupported, echo

__all__ = [
    "ExitStatus",
    "Process",
    "clean_environment",
    "explain_exec_error",
    "proc_stat",
    "process_start_time",
    "resolve_command",
    "spawn",
]

log = logging.getLogger(__name__)

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PIPE_SIZE = 1 << 20
"""Bigger pipes mean fewer wake-ups per megabyte when a job writes fast."""


@functools.cache
def _home() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_dir
    except KeyError:
        return "/"


def clean_environment(
    extra: Sequence[tuple[str, str]], *, home: str | None = None
) -> dict[str, str]:
    """The environment a job starts with: PATH, LANG and HOME (``home``, by default
    the server user's), then ``extra``.

    The server's own variables never leak into a job.
    """
    env = {"PATH": DEFAULT_PATH, "LANG": "C.UTF-8", "HOME": home or _home()}
    env.update(extra)
    return env


@dataclass(frozen=True, slots=True)
class ExitStatus:
    """How a main process ended: exactly one of ``code`` and ``signal`` is set."""

    code: int | None = None
    signal: int | None = None


class Process:
    """A started main process: its pid, a pidfd, and the read ends of its pipes."""

    def __init__(
        self,
        popen: subprocess.Popen[bytes],
        stdout: int,
        stderr: int,
        *,
        translate: Callable[[ExitStatus], ExitStatus] | None = None,
    ) -> None:
        self._popen = popen
        self._translate = translate
        """How the main process's end tells the command's (an init's exit code)."""
        self.pid = popen.pid
        # Our own unreaped child: its pid cannot have been reused yet.
        self._pidfd = os.pidfd_open(popen.pid)
        self.stdout = stdout
        self.stderr = stderr
        self._status: ExitStatus | None = None
        self.rusage: resource.struct_rusage | None = None
        """The main process's resource usage (its waited-for children included), once reaped."""

    def __repr__(self) -> str:
        return f"<Process pid={self.pid} reaped={self.reaped}>"

    @property
    def reaped(self) -> bool:
        return self._pidfd < 0

    async def wait_exit(self) -> ExitStatus:
        """Wait until the main process has exited, without reaping it."""
        while self._status is None:
            await anyio.wait_readable(self._pidfd)
            self._status = self._peek()
        return self._status

    def signal_group(self, sig: int) -> None:
        """Send ``sig`` to the job's process group, unless the main process is reaped.

        While the main process is a zombie its pid, which is the group's id, stays
        taken, so this never reaches an unrelated process.
        """
        if self.reaped:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, sig)

    def reap(self) -> ExitStatus:
        """Reap the main process (waiting if it still runs) and release the pidfd."""
        if self._pidfd >= 0:
            # wait4 by pid, for the rusage: safe, as our unreaped child still holds its pid.
            _, status, self.rusage = os.wait4(self.pid, 0)
            if os.WIFSIGNALED(status):
                self._status = ExitStatus(signal=os.WTERMSIG(status))
            else:
                self._status = ExitStatus(code=os.waitstatus_to_exitcode(status))
            if self._translate is not None:
                self._status = self._translate(self._status)
            os.close(self._pidfd)
            self._pidfd = -1
            # Tell subprocess we reaped it, or it warns that the process "is still running".
            self._popen.returncode = (
                self._status.code if self._status.code is not None else -(self._status.signal or 0)
            )
        assert self._status is not None
        return self._status

    async def wait_group_gone(self, timeout: float = 5.0) -> bool:
        """Wait until no live process is left in the job's process group.

        For the process-group fallback only (a cgroup knows when it is empty).
        False if some process outlived ``timeout`` (one stuck in the kernel).
        """
        with anyio.move_on_after(timeout):
            while _group_alive(self.pid):  # noqa: ASYNC110 (no kernel wake-up exists)
                await anyio.sleep(0.005)
            return True
        return False

    def close_pipes(self) -> None:
        """Close the read ends of stdout and stderr (when nobody will read them)."""
        for fd in (self.stdout, self.stderr):
            os.close(fd)

    def _peek(self) -> ExitStatus | None:
        result = os.waitid(os.P_PIDFD, self._pidfd, os.WEXITED | os.WNOWAIT | os.WNOHANG)
        return None if result is None else self._status_of(result)

    def _status_of(self, result: os.waitid_result) -> ExitStatus:
        status = _exit_status(result)
        return status if self._translate is None else self._translate(status)


def _group_alive(pgid: int) -> bool:
    """Whether a process of group ``pgid`` still runs (zombies do not count)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # Closed explicitly: returning from inside the loop would leave the iterator open.
    with os.scandir("/proc") as entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            fields = proc_stat(int(entry.name))
            if fields is not None and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
                return True
    return False


def proc_stat(pid: int) -> list[bytes] | None:
    """The fields of /proc/PID/stat after the command name (state first), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None


def process_start_time(pid: int) -> int | None:
    """The start time of process ``pid`` (clock ticks since boot), None if it is gone."""
    fields = proc_stat(pid)
    return int(fields[19]) if fields is not None and len(fields) > 19 else None


def _exit_status(result: os.waitid_result) -> ExitStatus:
    if result.si_code == os.CLD_EXITED:
        return ExitStatus(code=result.si_status)
    return ExitStatus(signal=result.si_status)


async def spawn(
    argv: Sequence[str],
    env: Mapping[str, str],
    cwd: str | None,
    *,
    preexec: Callable[[], None] | None = None,
    pass_fds: Sequence[int] = (),
    spawned: Callable[[Process | None], None] | None = None,
    around_fork: Callable[[], contextlib.AbstractContextManager[None]] | None = None,
    translate: Callable[[ExitStatus], ExitStatus] | None = None,
    command: Sequence[str] | None = None,
) -> Process:
    """Start ``argv`` (never through a shell) and return once it runs.

    ``preexec`` runs in the child before exec; without it the fast vfork path is
    used. An ``OSError`` it raises is reported with its errno and file name (a
    working directory, the command, a cgroup file). ``spawned`` is told, right
    after the fork, the process (or None when it could not be started), so the
    job's container can release what its preexec held. ``around_fork`` is entered
    around the fork in the thread that forks (to set what the child inherits from
    that thread, e.g. a PID namespace); ``translate`` maps the main process's end
    to the command's (see ``Process``); ``command`` is the command ``argv`` runs
    when that is another program's job (an init's). The blocking part runs in a
    worker thread so the event loop never stalls.
    Raises ``CannotExecute`` naming the cause when the command or the working
    directory cannot be used, ``InvalidArgument`` when the kernel refuses the size
    of argv and environment.
    """
    if cwd is not None:
        _check_cwd(cwd)
    # A third pipe, when there is a preexec, for what a failed step says (_reporting).
    (out_r, out_w), (err_r, err_w), *report = _pipes(2 if preexec is None else 3)
    if preexec is not None:
        preexec = _reporting(preexec, report[0][1])
    try:
        for fd in (out_r, err_r):
            os.set_blocking(fd, False)
            try:
                fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
            except OSError:
                pass  # over the unprivileged maximum: the default size works, only slower

        def start() -> subprocess.Popen[bytes]:
            with around_fork() if around_fork is not None else contextlib.nullcontext():
                return fork()

        def fork() -> subprocess.Popen[bytes]:
            return subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out_w,
                stderr=err_w,
                cwd=cwd,
                env=dict(env),
                close_fds=True,
                start_new_session=True,
                preexec_fn=preexec,
                pass_fds=pass_fds,
            )

        try:
            popen = await anyio.to_thread.run_sync(start)
        except BaseException:
            if spawned is not None:
                spawned(None)
            raise
    except OSError as exc:
        os.close(out_r)
        os.close(err_r)
        raise explain_exec_error(exc, argv, env, cwd) from None
    except subprocess.SubprocessError as exc:  # raised by preexec in the child
        os.close(out_r)
        os.close(err_r)
        raise _preexec_error(_read_report(report[0][0]), exc, command or argv, env, cwd) from None
    except BaseException:
        os.close(out_r)
        os.close(err_r)
        raise
    finally:
        os.close(out_w)
        os.close(err_w)
        for fd in report[0] if report else ():
            os.close(fd)
    process = Process(popen, out_r, err_r, translate=translate)
    if spawned is not None:
        spawned(process)
    return process


def _pipes(count: int) -> list[tuple[int, int]]:
    """``count`` close-on-exec pipes; none left open when one cannot be made."""
    made: list[tuple[int, int]] = []
    try:
        for _ in range(count):
            made.append(os.pipe2(os.O_CLOEXEC))  # noqa: PERF401 -- kept one by one, for the clean-up
    except OSError:
        for pair in made:
            for fd in pair:
                os.close(fd)
        raise
    return made


_REPORT_MAX = 4096
"""Bytes of a report: one write the pipe takes whole (PIPE_BUF), so the child never
blocks on it (a path is at most PATH_MAX, 4096, anyway)."""


def _reporting(preexec: Callable[[], None], fd: int) -> Callable[[], None]:
    """``preexec``, writing the errno, message and file name of an ``OSError`` it
    raises to ``fd``: subprocess tells the parent only "Exception occurred in
    preexec_fn"."""

    def run() -> None:
        try:
            preexec()
        except OSError as exc:
            name = os.fsencode(exc.filename) if exc.filename is not None else b""
            text = str(exc.strerror or "").encode(errors="replace")
            report = b"\0".join((str(exc.errno or 0).encode(), text, name))
            os.write(fd, report[:_REPORT_MAX])
            raise

    return run


def _read_report(fd: int) -> OSError | None:
    """The ``OSError`` a preexec step reported through ``_reporting`` (None if none,
    or if it is not one).

    The child wrote it before subprocess heard of the failure, so it is there now:
    no waiting for an end of file another thread's fork may hold off.
    """
    os.set_blocking(fd, False)
    try:
        number, text, name = os.read(fd, _REPORT_MAX).split(b"\0", 2)
        return OSError(int(number), text.decode(errors="replace"), os.fsdecode(name) or None)
    except (BlockingIOError, ValueError):
        return None


def _preexec_error(
    reported: OSError | None,
    raised: subprocess.SubprocessError,
    command: Sequence[str],
    env: Mapping[str, str],
    cwd: str | None,
) -> Exception:
    """What a failed preexec step means for the call: the working directory or the
    command the job's user cannot use, else the job's cgroup or namespaces."""
    if reported is None:
        return LimitUnsupported("the job's cgroup or namespaces", str(raised))
    if reported.filename is not None and reported.filename in (cwd, command[0]):
        return explain_exec_error(reported, command, env, cwd)
    # "mounting /proc: Operation not permitted", "Permission denied: '/sys/...'".
    reason = os.strerror(reported.errno) if reported.errno else ""
    if reported.strerror and reported.strerror != reason:
        reason = f"{reported.strerror}: {reason}" if reason else reported.strerror
    where = f": {echo(reported.filename)}" if reported.filename else ""
    return LimitUnsupported("the job's cgroup or namespaces", f"{reason}{where}")


def enter(cwd: str, *, fallback: str | None = None) -> Callable[[], None]:
    """A preexec step entering ``cwd`` again, as whoever the child is by then:
    subprocess enters it before the user is taken on, with the server's rights.
    With ``fallback``, a ``cwd`` the child may not enter means ``fallback`` instead."""

    def chdir() -> None:
        try:
            os.chdir(cwd)
        except OSError:
            if fallback is None:
                raise
            os.chdir(fallback)

    return chdir


def _check_cwd(cwd: str) -> None:
    subject = f"working directory {echo(cwd)}"
    if not os.path.isabs(cwd):
        raise InvalidArgument(f"{subject} is not an absolute path")
    try:
        if not os.path.isdir(cwd):
            reason = "not a directory" if os.path.exists(cwd) else "no such directory"
            raise CannotExecute(subject, reason)
    except OSError as exc:
        raise CannotExecute(subject, exc.strerror or str(exc)) from None


def explain_exec_error(
    exc: OSError, argv: Sequence[str], env: Mapping[str, str], cwd: str | None
) -> Exception:
    """Turn the child's exec (or chdir) failure into an error naming its cause."""
    if exc.errno == errno.E2BIG:
        return InvalidArgument("the command and environment are over the kernel's size limit")
    if cwd is not None and exc.filename == cwd:
        return CannotExecute(f"working directory {echo(cwd)}", (exc.strerror or str(exc)).lower())
    name = argv[0]
    subject = f"command {echo(name)}"
    path = resolve_command(name, env, cwd)
    if exc.errno == errno.ENOENT:
        if path is None:
            return CannotExecute(subject, "not found" if "/" in name else "not found in PATH")
        interpreter = _interpreter(path)
        if interpreter is not None:
            return CannotExecute(subject, f"bad interpreter {echo(interpreter)}: no such file")
        return CannotExecute(subject, "not found")
    if exc.errno == errno.EACCES and path is not None and os.path.isdir(path):
        return CannotExecute(subject, "is a directory")
    if exc.errno == errno.EACCES:
        return CannotExecute(subject, "permission denied (not executable?)")
    if exc.errno == errno.ENOEXEC:
        return CannotExecute(subject, "exec format error (not a binary, no #! line)")
    return CannotExecute(subject, exc.strerror or str(exc))


def resolve_command(name: str, env: Mapping[str, str], cwd: str | None) -> str | None:
    """Where exec would find command ``name`` (through PATH without a slash), or None."""
    if "/" in name:
        path = os.path.join(cwd or os.getcwd(), name)
        return path if os.path.lexists(path) else None
    for directory in env.get("PATH", DEFAULT_PATH).split(":"):
        candidate = os.path.join(directory or ".", name)
        if os.path.lexists(candidate):
            return candidate
    return None


def _interpreter(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            head = f.readline(256)
    except OSError:
        return None
    if not head.startswith(b"#!"):
        return None
    words = head[2:].split()
    return words[0].decode(errors="replace") if words else None

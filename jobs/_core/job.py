"""One job: its main process, its process tree, its output log and its state."""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import anyio.abc
import anyio.lowlevel

from ..errors import LimitUnsupported
from . import namespaces
from .containment import Container, Containment
from .model import JobInfo, JobSpec, JobState, Namespace, Stream, Usage
from .output import LogReader, OutputLog, Selection
from .process import ExitStatus, Process, clean_environment, enter, process_start_time, spawn
from .records import create_record, save_record
from .settings import DEFAULT_GRACE
from .users import RunAs

__all__ = ["Job"]

log = logging.getLogger(__name__)

DRAIN_AFTER_EXIT = 2.0
"""How long output may still arrive once the main process exited and its tree was
killed. Only a process that escaped the tree could hold a pipe open longer; it
must not make followers hang."""
READ_SIZE = 256 << 10


class Job:
    """A job from spawn to its final state. Created and run by a ``JobManager``."""

    def __init__(
        self,
        job_id: str,
        owner: str,
        spec: JobSpec,
        directory: Path,
        *,
        containment: Containment,
        grace: float = DEFAULT_GRACE,
        output_cap: int | None = None,
        log: OutputLog | None = None,
        run_as: RunAs | None = None,
    ) -> None:
        self.id = job_id
        self.owner = owner
        self.spec = spec
        self.directory = directory
        directory.mkdir(mode=0o700, exist_ok=True)
        self._log = log or OutputLog(directory / "output", cap=output_cap)
        self._containment = containment
        self._grace = grace
        self._run_as = run_as
        """Who the job runs as; None: the manager's own user (looked up at spawn)."""
        self._user = run_as.name if run_as is not None else ""
        self._uid: int | None = run_as.uid if run_as is not None else None
        self._container: Container | None = None
        self._process: Process | None = None
        self._task_group: anyio.abc.TaskGroup | None = None
        self._state = JobState.RUNNING
        self._stop_reason: JobState | None = None
        self._oom = False
        self._status: ExitStatus | None = None
        self._pid: int | None = None
        self._started_at = time.time()
        self._ended_at: float | None = None
        self._final_info: JobInfo | None = None
        self._final_usage: Usage | None = None
        self._ended = anyio.Event()

    @classmethod
    def restore(cls, directory: Path, info: JobInfo, containment: Containment) -> Job:
        """A job found on disk, as its record ``info`` says. One recorded as running
        was cut off by a crash: it is marked LOST (what is left of its processes
        is the containment's to sweep)."""
        job = cls(
            info.id,
            info.owner,
            info.spec,
            directory,
            containment=containment,
            log=OutputLog.reopen(directory / "output", lost=info.lost_bytes),
        )
        job._pid = info.pid
        job._user, job._uid = info.user, info.uid
        job._started_at = info.started_at
        job._ended_at = info.ended_at
        job._status = ExitStatus(info.exit_code, info.signal)
        job._state = info.state
        job._final_usage = info.usage
        if not info.state.is_final:
            job._state = JobState.LOST
            job._ended_at = time.time()
            save_record(directory, job.info(), None)
        job._ended.set()
        return job

    def __repr__(self) -> str:
        pid = self._pid
        return (
            f"<Job {self.id[:8]}… {self._state.name} pid={pid} owner={self.owner!r} "
            f"user={self._user!r} followers={self._log.readers}>"
        )

    @property
    def state(self) -> JobState:
        return self._state

    @property
    def started_at(self) -> float:
        """When the main process started (seconds since the epoch)."""
        return self._started_at

    @property
    def ended_at(self) -> float | None:
        """When the job ended (seconds since the epoch), or None while it runs."""
        return self._ended_at

    async def _spawn(self, container: Container, env: dict[str, str], cwd: str) -> Process:
        """Start the main process in the job's container and namespaces."""
        spec = self.spec
        if spec.isolation and os.geteuid() != 0:
            # Creating namespaces needs CAP_SYS_ADMIN; the child would only report
            # "Exception occurred in preexec_fn".
            raise LimitUnsupported("isolation", "namespaces need a server running as root")
        run_as = self._credentials()
        # The user is taken on last: joining the cgroup and entering namespaces
        # (mounting the PID namespace's /proc) need the server's privileges. In a
        # PID namespace the init, then the command, run as the user.
        steps = [container.preexec()]
        if spec.isolation:
            steps.append(namespaces.preexec(spec.isolation))
        if (become := run_as.preexec()) is not None:
            # Then the working directory again, as the user: one it was given but
            # may not enter is an error of the call; a HOME it may not enter (the
            # default, which the call's environment may name) means /, as login does.
            steps += [become, enter(cwd, fallback=None if spec.cwd is not None else "/")]
        start = namespaces.spawn_with_init if Namespace.PID in spec.isolation else spawn
        return await start(spec.argv, env, cwd, preexec=_chain(steps), spawned=container.spawned)

    def _credentials(self) -> RunAs:
        """Who the job runs as (the manager's own user unless it was told), noted for
        ``info``."""
        run_as = self._run_as or RunAs.current()
        self._run_as = run_as
        self._user, self._uid = run_as.name, run_as.uid
        return run_as

    def _environment(self) -> dict[str, str]:
        """The job's environment: the clean default, the call's entries, and who it is.

        ``JOBS_JOB_ID`` and ``JOBS_JOB_NAME`` come last, so that a job can always
        trust them (a caller cannot make one job pose as another).
        """
        env = clean_environment(self.spec.env, home=self._credentials().home)
        env["JOBS_JOB_ID"] = self.id
        if self.spec.name is not None:
            env["JOBS_JOB_NAME"] = self.spec.name
        else:
            env.pop("JOBS_JOB_NAME", None)
        return env

    def _cwd(self, env: dict[str, str]) -> str:
        """The working directory: the spec's, else the job user's home (from the
        environment the job is given, which names that user's HOME), else ``/``."""
        if self.spec.cwd is not None:
            return self.spec.cwd
        home = env.get("HOME", "")
        return home if home.startswith("/") and os.path.isdir(home) else "/"

    def _record(self, start_time: int | None) -> None:
        try:
            save_record(self.directory, self.info(), start_time)
        except OSError as exc:  # a full disk must not disturb the job itself
            log.error("cannot record %r: %s", self, exc)  # noqa: TRY400 (expected, no traceback)

    def _signal(self, sig: int) -> None:
        """Send ``sig`` to every process of the job."""
        assert self._container is not None
        self._container.signal(sig)

    def info(self) -> JobInfo:
        """A snapshot of the job's facts (the same object, once the job has ended)."""
        if self._final_info is not None:
            return self._final_info
        status = self._status if self._state.is_final else None
        if status is not None and status.code is None and status.signal is None:
            status = None
        info = JobInfo(
            id=self.id,
            owner=self.owner,
            spec=self.spec,
            state=self._state,
            pid=self._pid,
            started_at=self._started_at,
            ended_at=self._ended_at,
            exit_code=status.code if status else None,
            signal=status.signal if status else None,
            output_bytes=self._log.end,
            dropped_bytes=self._log.start,
            lost_bytes=self._log.lost,
            usage=self._usage(),
            user=self._user,
            uid=self._uid,
        )
        if self._state.is_final:
            self._final_info = info  # an ended job's facts no longer change
        return info

    def _usage(self) -> Usage | None:
        """What the job has used: live from its container while it runs, the figures
        taken at its end after."""
        if self._container is not None and self._final_usage is None:
            try:
                return self._container.usage()
            except OSError as exc:  # a cgroup file gone under us: no figures, no failure
                log.debug("%r: no usage figures: %s", self, exc)
                return None
        return self._final_usage

    def reader(
        self, offset: int = 0, *, follow: bool = False, selection: Selection | None = None
    ) -> LogReader:
        """A reader of the job's output from ``offset``; see ``OutputLog.reader``."""
        return self._log.reader(offset, follow=follow, selection=selection)

    async def run(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        """Spawn the job, report it started, and supervise it until it has ended.

        Errors of the spawn (``CannotExecute``, ``InvalidArgument``) reach the
        caller of ``TaskGroup.start``; nothing is left running after them.
        """
        container: Container | None = None
        try:
            # On disk before the process exists: a job that ran is never forgotten.
            create_record(self.directory, self.info())
            env = self._environment()
            cwd = self._cwd(env)
            # The default IO device is the one of the directory the job really starts in.
            container = self._containment.create(self.id, self.spec.limits, cwd)
            self._process = await self._spawn(container, env, cwd)
        except BaseException:
            self._log.close()
            if container is not None:
                container.close()
            raise
        self._container = container
        self._pid = self._process.pid
        self._started_at = time.time()
        self._record(process_start_time(self._pid))
        log.info("started %r", self)
        try:
            # Shielded: a job ends by stop(), timeout or its own exit, never because
            # whoever started it was cancelled. Its manager stops it on the way out.
            with anyio.CancelScope(shield=True):
                await self._supervise(self._process, container, task_status)
        finally:
            # Only reached early by cancellation: nothing of the job may outlive us.
            if not self._process.reaped:
                container.signal(signal.SIGKILL)
                self._status = self._process.reap()
            self._oom = container.oom_killed()
            self._final_usage = self._usage()
            container.close()
            self._finish()

    async def stop(
        self,
        grace: float | None = None,
        *,
        sig: int = signal.SIGTERM,
        reason: JobState = JobState.STOPPED,
    ) -> JobInfo:
        """Send ``sig`` (SIGTERM) to the whole job, SIGKILL what is left after
        ``grace`` seconds (the job's default grace when None; at once for zero).

        Returns the final status once every process of the job is gone; stopping a
        job that already ended just returns its status. The kill sequence belongs
        to the job, not the caller: a caller cancelled meanwhile does not save the
        job from its SIGKILL.
        """
        if not self._state.is_final and self._task_group is not None:
            if self._stop_reason is None:
                self._stop_reason = reason
            self._task_group.start_soon(
                self._terminate, self._grace if grace is None else grace, sig
            )
        await self._ended.wait()
        return self.info()

    async def wait(self) -> JobInfo:
        """Wait until the job has ended and all its output is stored."""
        await self._ended.wait()
        return self.info()

    async def _supervise(
        self, process: Process, container: Container, task_status: anyio.abc.TaskStatus[None]
    ) -> None:
        try:
            async with anyio.create_task_group() as tg:
                self._task_group = tg
                pumps_done = _Countdown(2)
                tg.start_soon(self._pump, process.stdout, Stream.STDOUT, pumps_done)
                tg.start_soon(self._pump, process.stderr, Stream.STDERR, pumps_done)
                if self.spec.timeout is not None:
                    tg.start_soon(self._expire, self.spec.timeout)
                task_status.started()
                await process.wait_exit()
                # As systemd's KillMode=control-group: the tree goes with its main process.
                container.signal(signal.SIGKILL)
                self._status = process.reap()
                with anyio.move_on_after(DRAIN_AFTER_EXIT):
                    await pumps_done.wait()
                if not pumps_done.done:
                    log.warning("%r: a process outside the job's tree holds its output open", self)
                await container.wait_empty()
                tg.cancel_scope.cancel()
        finally:
            self._task_group = None  # stop() from now on just waits for the end

    async def _pump(self, fd: int, stream: Stream, done: _Countdown) -> None:
        try:
            while True:
                try:
                    data = os.read(fd, READ_SIZE)
                except BlockingIOError:
                    await anyio.wait_readable(fd)
                    continue
                if not data:
                    break
                self._log.append(stream, data)
                # A job that writes nonstop must not starve the event loop.
                await anyio.lowlevel.checkpoint()
        finally:
            os.close(fd)
            done.tick()

    async def _expire(self, timeout: float) -> None:
        await anyio.sleep(timeout)
        if self._stop_reason is None:
            self._stop_reason = JobState.TIMED_OUT
        await self._terminate(self._grace)

    async def _terminate(self, grace: float, sig: int = signal.SIGTERM) -> None:
        if grace > 0:  # no grace at all: straight to SIGKILL
            self._signal(sig)
            await anyio.sleep(grace)
        self._signal(signal.SIGKILL)

    def _finish(self) -> None:
        if self._state.is_final:
            return
        self._log.close()
        self._ended_at = time.time()
        status = self._status
        if self._stop_reason is not None:
            self._state = self._stop_reason
        elif self._oom:
            self._state = JobState.OOM_KILLED
        elif status is not None and status.signal is not None:
            self._state = JobState.SIGNALED
        else:
            self._state = JobState.EXITED
        self._record(None)
        self._ended.set()
        log.info("ended %r: %s", self, status)


def _chain(steps: list[Callable[[], None] | None]) -> Callable[[], None] | None:
    """One preexec function running ``steps`` in order (None when there are none)."""
    present = [step for step in steps if step is not None]
    if len(present) <= 1:
        return present[0] if present else None

    def run_all() -> None:
        for step in present:
            step()

    return run_all


class _Countdown:
    """An event set once ``tick`` has been called ``count`` times."""

    def __init__(self, count: int) -> None:
        self._left = count
        self._event = anyio.Event()

    @property
    def done(self) -> bool:
        return self._left == 0

    def tick(self) -> None:
        self._left -= 1
        if self._left == 0:
            self._event.set()

    async def wait(self) -> None:
        await self._event.wait()

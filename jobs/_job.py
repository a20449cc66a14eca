"""One job: its main process, its process tree, its output log and its state."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import anyio.abc
import anyio.lowlevel

from . import _namespaces as namespaces
from ._cgroups import Driver, JobCgroup
from ._model import JobInfo, JobSpec, JobState, Namespace, Stream
from ._output import LogReader, OutputLog
from ._process import ExitStatus, Process, clean_environment, explain_exec_error, spawn
from ._records import load_record, process_start_time, save_record

__all__ = ["DEFAULT_GRACE", "Job"]

log = logging.getLogger(__name__)

DEFAULT_GRACE = 10.0
"""Seconds between SIGTERM and SIGKILL when a job is stopped."""
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
        driver: Driver,
        grace: float = DEFAULT_GRACE,
        output_cap: int | None = None,
        log: OutputLog | None = None,
    ) -> None:
        self.id = job_id
        self.owner = owner
        self.spec = spec
        self.directory = directory
        directory.mkdir(mode=0o700, exist_ok=True)
        self._log = log or OutputLog(directory / "output", cap=output_cap)
        self._driver = driver
        self._grace = grace
        self._cgroup: JobCgroup | None = None
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
        self._ended = anyio.Event()

    @classmethod
    def restore(cls, directory: Path, driver: Driver) -> Job:
        """A job found on disk. One recorded as running was cut off by a crash: it
        is marked LOST, and its main process, if it still runs, is killed with its
        group (its cgroup was swept already)."""
        info, start_time = load_record(directory)
        job = cls(
            info.id,
            info.owner,
            info.spec,
            directory,
            driver=driver,
            log=OutputLog.reopen(directory / "output", lost=info.lost_bytes),
        )
        job._pid = info.pid
        job._started_at = info.started_at
        job._ended_at = info.ended_at
        job._status = ExitStatus(info.exit_code, info.signal)
        job._state = info.state
        if not info.state.is_final:
            job._state = JobState.LOST
            job._ended_at = time.time()
            if info.pid and start_time and process_start_time(info.pid) == start_time:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(info.pid, signal.SIGKILL)
            save_record(directory, job.info(), None)
        job._ended.set()
        return job

    def __repr__(self) -> str:
        pid = self._pid
        return (
            f"<Job {self.id[:8]}… {self._state.name} pid={pid} owner={self.owner!r} "
            f"followers={self._log.readers}>"
        )

    @property
    def state(self) -> JobState:
        return self._state

    @property
    def ended_at(self) -> float | None:
        """When the job ended (seconds since the epoch), or None while it runs."""
        return self._ended_at

    async def _spawn(self, cgroup: JobCgroup | None) -> Process:
        """Start the main process in the job's cgroup and namespaces.

        In a PID namespace the main process is the minimal init; the command's
        exec is confirmed (or its errno reported) through a close-on-exec pipe, so
        that a command that cannot run is still an error of the call.
        """
        spec = self.spec
        env = clean_environment(spec.env)
        steps = [cgroup.preexec()] if cgroup is not None else []
        if spec.isolation:
            steps.append(namespaces.preexec(spec.isolation))
        if Namespace.PID not in spec.isolation:
            try:
                return await spawn(spec.argv, env, spec.cwd, preexec=_chain(steps))
            finally:
                if cgroup is not None:
                    cgroup.attached()
        errors_r, errors_w = os.pipe()
        try:
            argv = namespaces.init_argv(spec.argv, errors_w, mount_proc=True)
            try:
                process = await spawn(
                    argv, env, spec.cwd, preexec=_chain(steps), pass_fds=(errors_w,)
                )
            finally:
                os.close(errors_w)
                if cgroup is not None:
                    cgroup.attached()
            failed = await namespaces.read_exec_error(errors_r)
        finally:
            os.close(errors_r)
        if failed is not None:
            process.signal_group(signal.SIGKILL)
            process.reap()
            process.close_pipes()
            raise explain_exec_error(OSError(failed, os.strerror(failed)), spec.argv, env, spec.cwd)
        return process

    def _record(self, start_time: int | None) -> None:
        try:
            save_record(self.directory, self.info(), start_time)
        except OSError as exc:  # a full disk must not disturb the job itself
            log.error("cannot record %r: %s", self, exc)  # noqa: TRY400 (expected, no traceback)

    def _signal(self, sig: int) -> None:
        """Send ``sig`` to every process of the job."""
        assert self._process is not None
        if self._cgroup is not None:
            self._cgroup.signal(sig)
        else:
            self._process.signal_group(sig)

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
        )
        if self._state.is_final:
            self._final_info = info  # an ended job's facts no longer change
        return info

    def reader(self, offset: int = 0, *, follow: bool = False) -> LogReader:
        """A reader of the job's output from ``offset``; see ``OutputLog.reader``."""
        return self._log.reader(offset, follow=follow)

    async def run(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        """Spawn the job, report it started, and supervise it until it has ended.

        Errors of the spawn (``CannotExecute``, ``InvalidArgument``) reach the
        caller of ``TaskGroup.start``; nothing is left running after them.
        """
        try:
            self._cgroup = self._driver.create(self.id, self.spec.limits, self.spec.cwd)
            self._process = await self._spawn(self._cgroup)
        except BaseException:
            self._log.close()
            if self._cgroup is not None:
                self._cgroup.close()
            raise
        self._pid = self._process.pid
        self._started_at = time.time()
        self._record(process_start_time(self._pid))
        log.info("started %r: %s", self, self.spec.argv)
        try:
            # Shielded: a job ends by stop(), timeout or its own exit, never because
            # whoever started it was cancelled. Its manager stops it on the way out.
            with anyio.CancelScope(shield=True):
                await self._supervise(self._process, task_status)
        finally:
            # Only reached early by cancellation: nothing of the job may outlive us.
            if not self._process.reaped:
                self._signal(signal.SIGKILL)
                self._status = self._process.reap()
            if self._cgroup is not None:
                self._oom = self._cgroup.oom_killed()
                self._cgroup.close()
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

    async def _supervise(self, process: Process, task_status: anyio.abc.TaskStatus[None]) -> None:
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
                self._signal(signal.SIGKILL)
                self._status = process.reap()
                with anyio.move_on_after(DRAIN_AFTER_EXIT):
                    await pumps_done.wait()
                if not pumps_done.done:
                    log.warning("%r: a process outside the job's tree holds its output open", self)
                if self._cgroup is not None:
                    await self._cgroup.wait_empty()
                elif not await process.wait_group_gone():
                    log.warning("%r: a process of the job's group does not die", self)
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


def _chain(steps: list[Callable[[], None]]) -> Callable[[], None] | None:
    """One preexec function running ``steps`` in order (None when there are none)."""
    if not steps:
        return None

    def run_all() -> None:
        for step in steps:
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

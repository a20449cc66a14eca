"""The job manager: owns every job's task and process through one task group."""

from __future__ import annotations

import collections
import functools
import hashlib
import logging
import math
import shutil
import signal
import time
import uuid
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from types import TracebackType

import anyio
import anyio.abc

from ..errors import (
    AmbiguousJob,
    InvalidArgument,
    JobNotFound,
    NameInUse,
    ShuttingDown,
    TooManyJobs,
    TooManyStreams,
)
from .containment import Containment, Leftover, detect
from .job import Job
from .model import MAX_SECONDS, JobInfo, JobSpec, JobState
from .output import LogReader, Selection
from .records import RECORD, load_record
from .settings import ManagerSettings

__all__ = ["MIN_PREFIX", "JobManager", "cgroup_scope"]

log = logging.getLogger(__name__)

MIN_PREFIX = 6
"""The shortest id prefix that refers to a job (as with git and docker, shorter ones
are too likely to become ambiguous as jobs accumulate)."""


def cgroup_scope(state_dir: Path) -> str:
    """The name of the cgroup directory holding the jobs of the manager of ``state_dir``."""
    digest = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:12]
    return f"jobs-{digest}"


class JobManager:
    """Runs jobs on behalf of accounts and keeps their records and output.

    Use it as an async context manager: every job runs in the manager's task
    group, and leaving the block stops every job that still runs (SIGTERM, grace,
    SIGKILL), so no task or process outlives the manager.

    Every lookup is scoped to an owner: another account's job is reported exactly
    like an unknown one (``JobNotFound``). ``settings`` holds the caps, the grace
    and the history. Jobs are contained by ``containment`` (default: the best
    this host offers, see ``containment.detect``); what an earlier run left of its
    jobs is killed on entry.
    """

    def __init__(
        self,
        state_dir: Path,
        settings: ManagerSettings | None = None,
        *,
        containment: Containment | None = None,
    ) -> None:
        self.state_dir = state_dir
        self.settings = settings or ManagerSettings()
        self.containment = containment
        self._jobs: dict[str, Job] = {}
        self._ended: dict[str, Job] = {}
        """Ended jobs, oldest first: pruning takes from the front."""
        self._running: collections.Counter[str] = collections.Counter()
        self._streams: collections.Counter[str] = collections.Counter()
        self._names: dict[tuple[str, str], str] = {}
        """(owner, name) -> id of the running (or starting) job of that name."""
        self._task_group: anyio.abc.TaskGroup | None = None
        self._closing = False

    def __repr__(self) -> str:
        running = sum(self._running.values())
        return f"<JobManager {self.state_dir} jobs={len(self._jobs)} running={running}>"

    async def __aenter__(self) -> JobManager:
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        (self.state_dir / "jobs").mkdir(mode=0o700, exist_ok=True)
        if self.containment is None:
            self.containment = detect(cgroup_scope(self.state_dir))
        log.info("job containment: %s", self.containment.description)
        leftovers = self._restore(self.containment)
        if swept := self.containment.sweep(leftovers):
            log.warning("killed what was left of %d jobs of an earlier run", swept)
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._task_group is not None
        with anyio.CancelScope(shield=True):
            await self.shutdown()
        try:
            return await self._task_group.__aexit__(exc_type, exc, tb)
        finally:
            if self.containment is not None:
                self.containment.close()

    async def shutdown(self) -> None:
        """Refuse new jobs and stop every running one, each with the manager's grace."""
        self._closing = True
        async with anyio.create_task_group() as tg:
            for job in list(self._jobs.values()):
                if not job.state.is_final:
                    tg.start_soon(
                        functools.partial(job.stop, self.settings.grace, reason=JobState.SHUTDOWN)
                    )

    async def start(self, spec: JobSpec, owner: str) -> JobInfo:
        """Start a job for ``owner`` and return once its main process runs.

        Raises ``TooManyJobs`` at the account's cap, ``NameInUse`` when a running
        job of the owner has the spec's name, ``CannotExecute`` or
        ``InvalidArgument`` when the command cannot be started,
        ``LimitUnsupported`` for limits or isolation this host cannot enforce, and
        ``ShuttingDown`` once the manager is closing.
        """
        if self._closing or self._task_group is None or self.containment is None:
            raise ShuttingDown
        settings = self.settings
        if self._running[owner] >= settings.max_running:
            raise TooManyJobs(owner, settings.max_running)
        job_id = str(uuid.uuid4())
        name_key = None if spec.name is None else (owner, spec.name)
        if name_key is not None:
            if (holder := self._names.get(name_key)) is not None:
                raise NameInUse(spec.name or "", holder)
            self._names[name_key] = job_id  # held while spawning, as the running count
        job = Job(
            job_id,
            owner,
            spec,
            self.state_dir / "jobs" / job_id,
            containment=self.containment,
            grace=settings.grace,
            output_cap=settings.output_cap,
        )
        self._running[owner] += 1  # held while spawning, so concurrent starts respect the cap
        try:
            # The job belongs to the manager: a caller cancelled meanwhile must not
            # leave a half-started process behind.
            with anyio.CancelScope(shield=True):
                await self._task_group.start(self._run, job)
        except BaseException:
            self._release_running(owner)
            if name_key is not None:
                del self._names[name_key]
            shutil.rmtree(job.directory, ignore_errors=True)
            raise
        self._jobs[job_id] = job
        return job.info()

    def get(self, job_id: str, owner: str) -> Job:
        """The job of ``owner`` that ``job_id`` refers to: its full id, its name, or a
        unique prefix of its id of at least ``MIN_PREFIX`` characters.

        A name refers to the running job of that name, else the newest ended one.
        Raises ``JobNotFound`` if there is none, ``AmbiguousJob`` (listing the
        candidates) for a prefix of several.
        """
        job = self._jobs.get(job_id)
        if job is not None and job.owner == owner:
            return job
        if not job_id:
            raise JobNotFound(job_id)
        running = self._names.get((owner, job_id))
        if running is not None and running in self._jobs:
            return self._jobs[running]
        named = [j for j in self._jobs.values() if j.owner == owner and j.spec.name == job_id]
        if named:
            return max(named, key=lambda j: j.started_at)
        if len(job_id) >= MIN_PREFIX:
            matches = [
                j for j in self._jobs.values() if j.owner == owner and j.id.startswith(job_id)
            ]
            if len(matches) == 1:
                return matches[0]
            if matches:
                raise AmbiguousJob(job_id, sorted(j.id for j in matches))
        raise JobNotFound(job_id)

    def status(self, job_id: str, owner: str) -> JobInfo:
        """A snapshot of one job."""
        return self.get(job_id, owner).info()

    def running(self, owner: str | None = None) -> int:
        """How many jobs run now: ``owner``'s, or every account's when ``None``."""
        return sum(self._running.values()) if owner is None else self._running[owner]

    def list(
        self,
        owner: str,
        *,
        labels: Callable[[Mapping[str, str]], bool] | None = None,
        states: Collection[JobState] = (),
    ) -> list[JobInfo]:
        """The owner's jobs, oldest first: those whose labels ``labels`` accepts
        (a selector's ``matches``; all when None), in ``states`` (all when empty)."""
        chosen = []
        for job in self._jobs.values():
            if job.owner != owner or (states and job.state not in states):
                continue
            if labels is not None and not labels(dict(job.spec.labels)):
                continue
            chosen.append(job.info())
        return sorted(chosen, key=lambda info: info.started_at)

    async def stop(
        self, job_id: str, owner: str, grace: float | None = None, sig: int | None = None
    ) -> JobInfo:
        """Stop a job (see ``Job.stop``) and return its final status.

        ``sig`` is the first signal (SIGTERM by default); ``InvalidArgument`` if it
        is not a signal, or a negative or non-finite grace.
        """
        job = self.get(job_id, owner)
        if grace is not None and not (math.isfinite(grace) and 0 <= grace <= MAX_SECONDS):
            raise InvalidArgument(f"grace must be 0 to {MAX_SECONDS:.0f} seconds, not {grace}")
        if sig is not None and sig not in signal.valid_signals():
            raise InvalidArgument(f"{sig} is not a signal")
        return await job.stop(grace, sig=signal.SIGTERM if sig is None else sig)

    async def wait(self, job_id: str, owner: str) -> JobInfo:
        """Wait until a job has ended; return its final status."""
        return await self.get(job_id, owner).wait()

    def reader(
        self,
        job_id: str,
        owner: str,
        offset: int = 0,
        *,
        follow: bool = False,
        selection: Selection | None = None,
    ) -> LogReader:
        """A reader of a job's output, counted against the owner's stream cap.

        ``selection`` narrows it to streams, a time window or the last lines (see
        ``OutputLog.reader``). Close it (or use it as an async context manager) to
        release it.
        """
        job = self.get(job_id, owner)
        if self._streams[owner] >= self.settings.max_streams:
            raise TooManyStreams(owner, self.settings.max_streams)
        reader = job.reader(offset, follow=follow, selection=selection)
        self._streams[owner] += 1
        reader.on_close(lambda: self._release_stream(owner))
        return reader

    async def _run(self, job: Job, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        try:
            await job.run(task_status=task_status)
        finally:
            # A job that failed to spawn never became final; start() released it.
            if job.state.is_final:
                self._release_running(job.owner)
                if job.spec.name is not None:
                    self._names.pop((job.owner, job.spec.name), None)
                self._ended[job.id] = job
                self._prune()

    def _restore(self, containment: Containment) -> tuple[Leftover, ...]:
        """Load the jobs of earlier runs; those cut off by a crash become LOST.

        Returns the main processes of the lost jobs, for the containment to sweep.
        """
        lost: list[Leftover] = []
        lost_count = 0
        for directory in sorted((self.state_dir / "jobs").iterdir()):
            if not (directory / RECORD).exists():
                # Created, but the process never started (or the record never made
                # it to disk): nothing to show for it.
                shutil.rmtree(directory, ignore_errors=True)
                continue
            try:
                info, start_time = load_record(directory)
                job = Job.restore(directory, info, containment)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.error(  # noqa: TRY400 (expected, no traceback)
                    "cannot read the record in %s, leaving it alone: %s", directory, exc
                )
                continue
            if not info.state.is_final:
                lost_count += 1
                if info.pid and start_time:
                    lost.append(Leftover(info.pid, start_time))
            self._jobs[job.id] = job
        if self._jobs:
            log.info("restored %d jobs (%d lost in a crash)", len(self._jobs), lost_count)
        ended = (job for job in self._jobs.values() if job.state.is_final)
        for job in sorted(ended, key=lambda job: job.ended_at or 0.0):
            self._ended[job.id] = job
        self._prune()
        return tuple(lost)

    def _prune(self) -> None:
        """Forget the oldest ended jobs beyond the history caps, with their output.

        Runs each time a job ends: it looks at the oldest ones only, so its cost
        does not grow with the history.
        """
        history, age = self.settings.history, self.settings.history_age
        horizon = None if age is None else time.time() - age
        while self._ended:
            oldest = next(iter(self._ended.values()))
            too_many = history is not None and len(self._ended) > history
            too_old = horizon is not None and (oldest.ended_at or 0.0) < horizon
            # A job that ended before start() registered it waits for the next round.
            if not (too_many or too_old) or oldest.id not in self._jobs:
                break
            del self._ended[oldest.id], self._jobs[oldest.id]
            shutil.rmtree(oldest.directory, ignore_errors=True)

    def _release_running(self, owner: str) -> None:
        self._running[owner] -= 1
        if self._running[owner] <= 0:
            del self._running[owner]

    def _release_stream(self, owner: str) -> None:
        self._streams[owner] -= 1
        if self._streams[owner] <= 0:
            del self._streams[owner]

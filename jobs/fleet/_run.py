"""Running one command on many hosts: start, follow with resume, wait, and stop the rest.

``FleetRun`` starts the job on every host (at most ``parallel`` at once), feeds
each host's output to an ``Output`` as it arrives, resumes a host's stream from
its offset after a dropped connection, and collects one ``HostResult`` per
host. ``max_failures`` stops the jobs still running (each with the server's
grace) once that many hosts have failed.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import anyio
from grpclib.const import Status

from gen import service_pb2 as wire
from gen.jobs import v1 as pb
from jobs.client import LineStamper, docker_exit_code, log_stream

from ._connect import DEFAULT_HOST_TIMEOUT, Failure, HostFailed, Identity, host_errors, open_host
from ._fanout import DEFAULT_PARALLEL
from ._info import HostInfo, query_info
from ._inventory import Host

__all__ = [
    "DEFAULT_RESUME_WINDOW",
    "FleetRun",
    "HostResult",
    "Output",
    "exit_status",
    "job_exit_code",
    "least_loaded",
    "stream_output",
]

#: How long a host's lost connection is retried (from its last sign of life)
#: before the host counts as unreachable.
DEFAULT_RESUME_WINDOW = 60.0

#: ssh's status when the remote side could not be reached; pdsh and tsh use it too.
EXIT_UNREACHABLE = 255

_FIRST_RETRY = 0.2
_MAX_RETRY = 2.0

T = TypeVar("T")


class Output(Protocol):
    """Where each host's output goes as it arrives (a ``LineMerger``, log files...)."""

    def feed(self, host: str, stream: int, data: bytes) -> None:
        """``data`` from ``host``'s ``stream`` (1 stdout, 2 stderr), in order."""

    def dropped(self, host: str, size: int) -> None:
        """``size`` bytes of ``host``'s output were dropped by its retention cap."""

    def end(self, host: str) -> None:
        """``host`` sends no more output."""


def job_exit_code(job: pb.Job) -> int:
    """A job's code as a shell reports it: its exit code, or 128 + its signal; 125
    when it has neither (lost)."""
    return docker_exit_code(job.exit_code, job.signal)


@dataclass
class HostResult:
    """What happened on one host: its job (final when followed), or why there is none."""

    host: str
    job: pb.Job | None = None
    failure: Failure | None = None
    reason: str = ""
    note: str = ""  # why we ended it: "stopped: a host failed", "skipped"
    status: Status | None = None  # the gRPC status of a refusal
    stopped_by_run: bool = False  # ended by --fail-fast/--max-failures, not by itself

    @property
    def ended(self) -> bool:
        """Whether the job has ended (a detached run leaves it running)."""
        return self.job is not None and self.job.state not in (
            pb.JobState.RUNNING,
            pb.JobState.UNSPECIFIED,
        )

    @property
    def succeeded(self) -> bool:
        """Started and, when followed to its end, exited 0."""
        if self.failure is not None or self.job is None:
            return False
        return not self.ended or (self.job.state == pb.JobState.EXITED and self.job.exit_code == 0)

    @property
    def exit_code(self) -> int:
        """255 for a host unreachable or refusing; the job's code; 0 while it runs."""
        if self.failure is not None:
            return EXIT_UNREACHABLE
        if self.job is None or not self.ended or self.stopped_by_run:
            return 0  # a job the run stopped hides no failure of its own
        # As `jobs run -f` on one host: a timed-out job never exits 0.
        timed_out = self.job.state == pb.JobState.TIMED_OUT
        code = docker_exit_code(self.job.exit_code, self.job.signal, timed_out=timed_out)
        # A job stopped "exited 0" only by accident.
        return code or (0 if self.job.state == pb.JobState.EXITED else 1)

    def describe(self) -> str:
        """The summary words: ``exited 0``, ``killed by SIGKILL (OOM)``, ``unreachable: ...``."""
        if self.failure is not None:
            return f"{self.failure.value}: {self.reason}"
        if self.job is None:
            return self.note or "not started"
        words = _state_words(self.job)
        return f"{words} ({self.note})" if self.note else words


def _state_words(job: pb.Job) -> str:
    import signal as signals

    def signame(number: int | None) -> str:
        try:
            return signals.Signals(number or 0).name
        except ValueError:
            return f"signal {number}"

    state = job.state
    if state == pb.JobState.RUNNING:
        return f"running as {job.id}"
    if state == pb.JobState.EXITED:
        return f"exited {job.exit_code}"
    if state == pb.JobState.OOM_KILLED:
        return f"killed by {signame(job.signal or 9)} (OOM)"
    if state == pb.JobState.SIGNALED:
        return f"killed by {signame(job.signal)}"
    if state == pb.JobState.TIMED_OUT:
        return f"timed out after {job.timeout_seconds or 0:g}s"
    if state == pb.JobState.STOPPED:
        return "stopped"
    if state == pb.JobState.SHUTDOWN:
        return "stopped by the server's shutdown"
    if state == pb.JobState.LOST:
        return "lost (the server restarted)"
    return (pb.JobState(state).name or "unknown").lower()


def exit_status(results: Sequence[HostResult]) -> int:
    """0 if every host exited 0; else the largest job exit code; 255 when any host
    was unreachable or refused (pdsh's rule, with ssh's 255)."""
    return max((result.exit_code for result in results), default=0)


def least_loaded(infos: Sequence[HostInfo]) -> list[HostInfo]:
    """The hosts that answered, least loaded first (running jobs, then ours), then
    those whose load is unknown; hosts that did not answer are left out."""
    known = [i for i in infos if i.info is not None]
    unknown = [i for i in infos if i.info is None and i.failure is Failure.REFUSED]

    def load(item: HostInfo) -> tuple[int, int]:
        assert item.info is not None
        return (item.info.load.running_jobs, item.info.load.caller_running_jobs)

    return sorted(known, key=load) + unknown


class FleetRun:
    """One command on many hosts; see the module's docstring.

    ``follow`` streams the output to ``output`` and waits for every job's end;
    without it, each host's result holds its running job.
    """

    def __init__(
        self,
        request: pb.RunRequest,
        identity: Identity,
        output: Output | None = None,
        *,
        parallel: int = DEFAULT_PARALLEL,
        timeout: float = DEFAULT_HOST_TIMEOUT,
        resume_window: float = DEFAULT_RESUME_WINDOW,
        max_failures: int | None = None,
        on_result: Callable[[HostResult], None] | None = None,
    ) -> None:
        self.request = request
        self.identity = identity
        self.output = output
        self.parallel = parallel
        self.timeout = timeout
        self.resume_window = resume_window
        self.max_failures = max_failures
        self.on_result = on_result
        self.failures = 0
        self.stopping = False
        self._running: dict[str, tuple[pb.JobServiceStub, str]] = {}
        # Jobs followed whose end has not been seen: what a cancelled run leaves running.
        self._unfinished: dict[str, str] = {}
        self._hosts: dict[str, Host] = {}
        self._tg: anyio.abc.TaskGroup | None = None
        self._start: Callable[[Host], Coroutine[Any, Any, None]] | None = None

    async def run(self, hosts: Sequence[Host]) -> list[HostResult]:
        """Run on every host of ``hosts`` (and those ``add``-ed meanwhile); one
        result per host, in that order."""
        results: dict[str, HostResult] = {}
        limiter = anyio.CapacityLimiter(self.parallel)

        async def one(host: Host) -> None:
            async with limiter:
                results[host.name] = await self._host(host)
            self._done(results[host.name])

        self._start = one
        async with anyio.create_task_group() as tg:
            self._tg = tg
            for host in hosts:
                self.add(host)
        self._tg = None
        return [results[name] for name in self._hosts if name in results]

    @property
    def following(self) -> list[str]:
        """``HOST/ID`` of each job started and being followed now (still running)."""
        return [f"{host}/{job_id}" for host, job_id in self._unfinished.items()]

    def add(self, host: Host) -> bool:
        """Run on ``host`` too, if this run is still going and has not seen it;
        whether it was added. (A host that joins while the run lasts.)"""
        if self._tg is None or self._start is None or host.name in self._hosts:
            return False
        if self._stopping():
            return False
        self._hosts[host.name] = host
        self._tg.start_soon(self._start, host)
        return True

    async def run_one(self, hosts: Sequence[Host]) -> HostResult:
        """Run on one host: the least loaded by ``Info``, the next when one refuses.

        Hosts are asked at once (``timeout`` each); a host that refuses the job
        (RESOURCE_EXHAUSTED, a limit it cannot enforce, unreachable by now) is
        passed over for the next. An invalid request is not retried elsewhere.
        """
        infos = await query_info(hosts, self.identity, parallel=self.parallel, timeout=self.timeout)
        candidates = least_loaded(infos)
        self._hosts.update((host.name, host) for host in hosts)
        by_name = {host.name: host for host in hosts}
        reasons: list[str] = []
        for candidate in candidates:
            host = by_name[candidate.host]
            result = await self._host(host)
            if result.failure is None or result.job is not None:
                return result
            if result.status is Status.INVALID_ARGUMENT:
                return result
            reasons.append(f"{host.name}: {result.failure.value}: {result.reason}")
        for item in infos:
            if item.failure is Failure.UNREACHABLE or item.failure is Failure.DENIED:
                assert item.failure is not None
                reasons.append(f"{item.host}: {item.failure.value}: {item.reason}")
        return HostResult(
            "-",
            failure=Failure.UNREACHABLE,
            reason="no host took the job (" + "; ".join(reasons) + ")",
        )

    async def _host(self, host: Host) -> HostResult:
        if self._stopping():
            return HostResult(host.name, note="skipped: the run is stopping")
        try:
            async with open_host(host, self.identity) as stub:
                with host_errors(host, self.timeout), anyio.fail_after(self.timeout):
                    job = (await stub.run(self.request)).job
                if self.output is None:
                    return HostResult(host.name, job)
                self._running[host.name] = (stub, job.id)
                self._unfinished[host.name] = job.id
                if self._stopping():  # it stopped while this host was starting
                    self._stop(host.name)
                try:
                    await stream_output(
                        host,
                        stub,
                        job.id,
                        self.output,
                        timeout=self.timeout,
                        resume_window=self.resume_window,
                        reached=True,
                    )
                    final = await self._retrying(
                        host, lambda: stub.wait(pb.WaitRequest(job_id=job.id))
                    )
                    del self._unfinished[host.name]
                finally:
                    self._running.pop(host.name, None)
                # STOPPED is the state of a job ended by a Stop: ours. SIGNALED would
                # be a signal nobody asked for (a crash), a failure of its own.
                stopped = self._stopping() and final.job.state == pb.JobState.STOPPED
                failed = "a host" if self.max_failures == 1 else f"{self.max_failures} hosts"
                note = f"stopped: {failed} failed" if stopped else ""
                return HostResult(host.name, final.job, note=note, stopped_by_run=stopped)
        except HostFailed as exc:
            return HostResult(host.name, failure=exc.failure, reason=exc.reason, status=exc.status)
        finally:
            if self.output is not None:
                self.output.end(host.name)

    async def _retrying(self, host: Host, call: Callable[[], Awaitable[T]]) -> T:
        """``call()`` bounded by ``timeout``, retried while the host is unreachable
        for at most ``resume_window``."""
        deadline = time.monotonic() + self.resume_window
        delay = _FIRST_RETRY
        while True:
            try:
                with host_errors(host, self.timeout), anyio.fail_after(self.timeout):
                    return await call()
            except HostFailed as exc:
                if exc.failure is not Failure.UNREACHABLE or time.monotonic() > deadline:
                    raise
            await anyio.sleep(delay)
            delay = min(delay * 2, _MAX_RETRY)

    def _done(self, result: HostResult) -> None:
        if self.on_result is not None:
            self.on_result(result)
        if result.succeeded or (result.job is None and result.failure is None):
            return
        self.failures += 1
        limit = self.max_failures
        if limit is not None and self.failures >= limit and not self.stopping:
            self.stopping = True
            for name in list(self._running):
                self._stop(name)

    def _stopping(self) -> bool:
        # A method, not the attribute: it changes while a host's task awaits.
        return self.stopping

    def _stop(self, name: str) -> None:
        stub, job_id = self._running[name]
        assert self._tg is not None

        async def stop() -> None:
            try:
                with host_errors(self._hosts[name], self.timeout), anyio.fail_after(self.timeout):
                    await stub.stop(pb.StopRequest(job_id=job_id))
            except HostFailed:
                # Best effort: that host's own follower reports what became of it.
                pass

        self._tg.start_soon(stop)


async def stream_output(
    host: Host,
    stub: pb.JobServiceStub,
    job_id: str,
    output: Output,
    *,
    follow: bool = True,
    offset: int = 0,
    selection: wire.LogsRequest | None = None,
    timestamps: bool = False,
    timeout: float = DEFAULT_HOST_TIMEOUT,
    resume_window: float = DEFAULT_RESUME_WINDOW,
    reached: bool = False,
) -> None:
    """Feed ``job_id``'s output on ``host`` to ``output`` (to the job's end when
    following), resuming from the offset reached after a dropped connection: no
    gap, no duplicate. ``HostFailed`` once the host stayed unreachable for
    ``resume_window`` since its last message, or when it refuses the call.

    ``selection`` narrows the output as ``jobs logs`` does: its ``tail_lines``,
    ``since``, ``until`` and ``streams`` are asked for (the rest of it is ignored);
    ``timestamps`` prefixes each line with its chunk's time (see ``LineStamper``).
    ``reached`` says the host has just answered (a Run): it has the resume window
    from the start, where one not heard from yet has ``timeout``.
    """
    received = False
    stamper = LineStamper() if timestamps else None
    # A host that never answered is unreachable after ``timeout``; one that did gets
    # ``resume_window`` from its last message to come back.
    deadline = time.monotonic() + (resume_window if reached else timeout)
    delay = _FIRST_RETRY
    while True:
        request = wire.LogsRequest()
        if selection is not None:
            request.CopyFrom(selection)
        request.job_id, request.follow, request.offset = job_id, follow, offset
        request.timestamps = timestamps
        if received:
            # The tail's start is behind: counted again now, it could skip output.
            request.ClearField("tail_lines")
        try:
            with host_errors(host, timeout):
                # Connect (again) with a bound first: a host that hangs (stopped, or
                # half-open) must not hold an open-ended stream forever.
                with anyio.fail_after(timeout):
                    await stub.status(pb.StatusRequest(job_id=job_id))
                if not reached:  # answered at last: from now on, the resume window
                    reached = True
                    deadline = max(deadline, time.monotonic() + resume_window)
                async with log_stream(stub.channel, request) as messages:
                    message: wire.LogsResponse
                    async for message in messages:
                        received = True
                        if message.dropped:
                            output.dropped(host.name, message.dropped)
                            offset = message.offset
                        else:
                            data = stamper.stamp(message) if stamper else message.data
                            output.feed(host.name, message.stream, data)
                            offset = message.offset + len(message.data)
                        deadline = time.monotonic() + resume_window
                        delay = _FIRST_RETRY
        except HostFailed as exc:
            if exc.failure is not Failure.UNREACHABLE or time.monotonic() > deadline:
                raise
        else:
            return
        await anyio.sleep(delay)
        delay = min(delay * 2, _MAX_RETRY)

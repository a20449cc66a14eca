"""The gRPC servicer: translates between the generated messages and the job core.

Errors are not handled here: the core raises its own, and the guard maps them to
statuses in one table (``jobs._guard.STATUS``).
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import AsyncGenerator
from typing import Any

import grpclib.const

from gen.jobs import v1 as pb

from ._guard import current_principal
from ._manager import JobManager
from ._model import Chunk, IoRate, JobInfo, JobSpec, JobState, Limits, Namespace
from .errors import InvalidArgument

__all__ = ["LOGS_METHOD", "JobService", "job_message", "spec_from_request"]

LOGS_METHOD = "/jobs.v1.JobService/Logs"

_STATES = {state: pb.JobState[state.name] for state in JobState}
_NAMESPACES = {pb.Namespace[ns.name]: ns for ns in Namespace}
_NAMESPACE_MESSAGES = {ns: message for message, ns in _NAMESPACES.items()}


class JobService(pb.JobServiceBase):
    """jobs.v1.JobService over a ``JobManager``; every call scoped to the caller's account."""

    def __init__(self, manager: JobManager) -> None:
        self._manager = manager

    async def run(self, run_request: pb.RunRequest) -> pb.RunResponse:
        spec = spec_from_request(run_request)
        info = await self._manager.start(spec, current_principal().account)
        return pb.RunResponse(job=job_message(info))

    async def stop(self, stop_request: pb.StopRequest) -> pb.StopResponse:
        info = await self._manager.stop(
            stop_request.job_id,
            current_principal().account,
            stop_request.grace_seconds,
            stop_request.signal,
        )
        return pb.StopResponse(job=job_message(info))

    async def status(self, status_request: pb.StatusRequest) -> pb.StatusResponse:
        info = self._manager.status(status_request.job_id, current_principal().account)
        return pb.StatusResponse(job=job_message(info))

    async def list(self, list_request: pb.ListRequest) -> pb.ListResponse:
        infos = self._manager.list(current_principal().account)
        return pb.ListResponse(jobs=[job_message(info) for info in infos])

    async def wait(self, wait_request: pb.WaitRequest) -> pb.WaitResponse:
        info = await self._manager.wait(wait_request.job_id, current_principal().account)
        return pb.WaitResponse(job=job_message(info))

    async def logs(self, logs_request: pb.LogsRequest) -> AsyncGenerator[pb.LogsResponse]:
        reader = self._manager.reader(
            logs_request.job_id,
            current_principal().account,
            logs_request.offset,
            follow=logs_request.follow,
        )
        async with reader:
            async for item in reader:
                if isinstance(item, Chunk):
                    yield pb.LogsResponse(
                        offset=item.offset,
                        stream=pb.Stream(int(item.stream)),
                        data=item.data,
                        time=_datetime(item.time_ns / 1e9),
                    )
                else:
                    yield pb.LogsResponse(offset=item.offset + item.size, dropped=item.size)

    def __mapping__(self) -> dict[str, grpclib.const.Handler]:
        mapping: dict[str, grpclib.const.Handler] = super().__mapping__()
        # betterproto iterates the generator without closing it when the client
        # goes away; this handler closes it at once, which frees the log reader.
        mapping[LOGS_METHOD] = grpclib.const.Handler(
            self._logs_handler,
            grpclib.const.Cardinality.UNARY_STREAM,
            pb.LogsRequest,
            pb.LogsResponse,
        )
        return mapping

    async def _logs_handler(self, stream: Any) -> None:
        logs_request = await stream.recv_message()
        async with contextlib.aclosing(self.logs(logs_request)) as responses:
            async for response in responses:
                await stream.send_message(response)


def spec_from_request(request: pb.RunRequest) -> JobSpec:
    """The core's job spec for a Run request; ``InvalidArgument`` when it is malformed."""
    env = tuple((var.name, var.value) for var in request.env)
    isolation = set()
    for namespace in request.isolation:
        if namespace not in _NAMESPACES:
            raise InvalidArgument(f"unknown namespace {namespace!r}")
        isolation.add(_NAMESPACES[namespace])
    return JobSpec(
        argv=tuple(request.command),
        env=env,
        cwd=request.cwd or None,
        timeout=request.timeout_seconds,
        limits=_limits(request.limits),
        isolation=frozenset(isolation),
    )


def _limits(message: pb.Limits | None) -> Limits:
    if message is None:
        return Limits()
    return Limits(
        cpu=message.cpu,
        memory=message.memory,
        pids=message.pids,
        io_read=tuple(IoRate(io.bytes_per_second, io.device or None) for io in message.io_read),
        io_write=tuple(IoRate(io.bytes_per_second, io.device or None) for io in message.io_write),
    )


def job_message(info: JobInfo) -> pb.Job:
    """The API's view of a job."""
    spec = info.spec
    limits = spec.limits
    job = pb.Job(
        id=info.id,
        owner=info.owner,
        command=list(spec.argv),
        cwd=spec.cwd or "",
        state=_STATES[info.state],
        pid=info.pid or 0,
        exit_code=info.exit_code,
        signal=info.signal,
        started_at=_datetime(info.started_at),
        limits=pb.Limits(
            cpu=limits.cpu,
            memory=limits.memory,
            pids=limits.pids,
            io_read=[pb.IoLimit(r.device or "", r.bytes_per_second) for r in limits.io_read],
            io_write=[pb.IoLimit(r.device or "", r.bytes_per_second) for r in limits.io_write],
        ),
        isolation=sorted((_NAMESPACE_MESSAGES[ns] for ns in spec.isolation), key=int),
        timeout_seconds=spec.timeout,
        output_bytes=info.output_bytes,
        dropped_bytes=info.dropped_bytes,
        lost_bytes=info.lost_bytes,
    )
    if info.ended_at is not None:
        job.ended_at = _datetime(info.ended_at)
    return job


def _datetime(timestamp: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC)

"""The gRPC servicer: translates between the generated messages and the job core.

Errors are not handled here: the core raises its own, and the guard maps them to
statuses in one table (``jobs._guard.STATUS``).
"""

from __future__ import annotations

import datetime
import functools
from typing import Any

import grpclib.const
from google.protobuf.timestamp_pb2 import Timestamp

# Also registers service.proto's descriptors, which server reflection serves.
from gen import service_pb2 as wire
from gen.jobs import v1 as pb

from ._codec import Encoded
from ._guard import current_principal
from ._manager import JobManager
from ._model import Chunk, Gap, IoRate, JobInfo, JobSpec, JobState, Limits, Namespace, Stream
from .errors import InvalidArgument

__all__ = ["LOGS_METHOD", "JobService", "job_message", "spec_from_request"]

LOGS_METHOD = "/jobs.v1.JobService/Logs"

_STATES = {state: pb.JobState[state.name] for state in JobState}
_NAMESPACES = {pb.Namespace[ns.name]: ns for ns in Namespace}
_NAMESPACE_MESSAGES = {ns: message for message, ns in _NAMESPACES.items()}
_WIRE_STREAMS = {Stream.STDOUT: wire.STREAM_STDOUT, Stream.STDERR: wire.STREAM_STDERR}


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

    def __mapping__(self) -> dict[str, grpclib.const.Handler]:
        mapping: dict[str, grpclib.const.Handler] = super().__mapping__()
        # Its own handler: betterproto iterates the generator without closing it
        # when the client goes away (this one frees the log reader at once), and
        # encodes big messages slowly (this one sends them pre-encoded).
        mapping[LOGS_METHOD] = grpclib.const.Handler(
            self._logs_handler,
            grpclib.const.Cardinality.UNARY_STREAM,
            pb.LogsRequest,
            pb.LogsResponse,
        )
        return mapping

    async def _logs_handler(self, stream: Any) -> None:
        request = await stream.recv_message()
        reader = self._manager.reader(
            request.job_id, current_principal().account, request.offset, follow=request.follow
        )
        async with reader:
            async for item in reader:
                await stream.send_message(Encoded(_encode_log_item(item)))


def _encode_log_item(item: Chunk | Gap) -> bytes:
    """A ``LogsResponse`` in wire format, encoded by protobuf's C implementation."""
    if isinstance(item, Gap):
        return wire.LogsResponse(
            offset=item.offset + item.size, dropped=item.size
        ).SerializeToString()
    seconds, nanos = divmod(item.time_ns, 1_000_000_000)
    return wire.LogsResponse(
        offset=item.offset,
        stream=_WIRE_STREAMS[item.stream],
        data=item.data,
        time=Timestamp(seconds=seconds, nanos=nanos),
    ).SerializeToString()


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


@functools.lru_cache(maxsize=4096)
def job_message(info: JobInfo) -> pb.Job:
    """The API's view of a job. Cached: building a message costs more than the
    call around it, and an ended job's facts never change (callers must not
    modify the message)."""
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

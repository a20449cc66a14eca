"""The gRPC servicer: translates between the wire messages and the job core, nothing more.

Messages are protobuf's C ones (``gen/service_pb2``); byte-level assembly lives in
``_wire``. Errors are not handled here: the core raises its own, and the guard
maps them to statuses in one table (``_guard.STATUS``).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from grpclib.const import Cardinality, Handler

# Also registers service.proto's descriptors, which server reflection serves.
from gen import service_pb2 as wire

from .. import JobManager
from .._core.model import (
    Chunk,
    Gap,
    IoRate,
    JobInfo,
    JobSpec,
    JobState,
    Limits,
    Namespace,
    Stream,
    Usage,
)
from .._core.output import Selection
from ..errors import InvalidArgument
from ..selectors import parse_selector
from . import _audit, _wire
from ._guard import current_principal
from ._identity import ServerIdentity
from ._wire import Encoded

__all__ = [
    "SERVICE",
    "JobService",
    "encode_jobs",
    "encode_log_item",
    "selection_from_request",
    "spec_from_request",
]

SERVICE = "jobs.v1.JobService"

_STATES = {state: f"JOB_STATE_{state.name}" for state in JobState}
_WIRE_STATES = {wire.JobState.Value(name): state for state, name in _STATES.items()}
_STREAMS = {wire.STREAM_STDOUT: Stream.STDOUT, wire.STREAM_STDERR: Stream.STDERR}
_NAMESPACE_NAMES = {ns: f"NAMESPACE_{ns.name}" for ns in Namespace}
"""Wire names, in the order of their numbers."""
_NAMESPACES = {wire.Namespace.Value(name): ns for ns, name in _NAMESPACE_NAMES.items()}
_WIRE_STREAMS = {Stream.STDOUT: wire.STREAM_STDOUT, Stream.STDERR: wire.STREAM_STDERR}

Request = TypeVar("Request", bound=Message)
K = TypeVar("K")
T = TypeVar("T")


class JobService:
    """jobs.v1.JobService over a ``JobManager``; every call scoped to the caller's account."""

    def __init__(self, manager: JobManager, identity: ServerIdentity) -> None:
        self._manager = manager
        self._identity = identity

    async def run(self, request: wire.RunRequest) -> bytes:
        """Run: start the job; the encoded ``RunResponse``."""
        info = await self._manager.start(spec_from_request(request), current_principal().account)
        _audit.annotate(job_id=info.id, user=info.user)
        return encode_jobs([info])

    async def stop(self, request: wire.StopRequest) -> bytes:
        """Stop: stop the job and wait until it is gone; the encoded ``StopResponse``."""
        info = await self._manager.stop(
            request.job_id,
            current_principal().account,
            request.grace_seconds if request.HasField("grace_seconds") else None,
            request.signal if request.HasField("signal") else None,
        )
        return encode_jobs([info])

    async def status(self, request: wire.StatusRequest) -> bytes:
        """Status: the encoded ``StatusResponse``."""
        return encode_jobs([self._manager.status(request.job_id, current_principal().account)])

    async def list(self, request: wire.ListRequest) -> bytes:
        """List: the caller's jobs, oldest first, those the selector and states
        choose; the encoded ``ListResponse``."""
        selector = parse_selector(request.selector) if request.selector else None
        states = set()
        for state in request.states:
            if state not in _WIRE_STATES:
                raise InvalidArgument(f"unknown job state {state!r}")
            states.add(_WIRE_STATES[state])
        infos = self._manager.list(
            current_principal().account,
            labels=None if selector is None else selector.matches,
            states=states,
        )
        return encode_jobs(infos)

    async def wait(self, request: wire.WaitRequest) -> bytes:
        """Wait: wait until the job has ended; the encoded ``WaitResponse``."""
        info = await self._manager.wait(request.job_id, current_principal().account)
        return encode_jobs([info])

    async def info(self, request: wire.InfoRequest) -> bytes:
        """Info: who this server is, what it offers and how loaded it is; the
        encoded ``InfoResponse``."""
        identity = self._identity
        capabilities = identity.capabilities
        settings = self._manager.settings
        reply = wire.InfoResponse(
            name=identity.name,
            labels=identity.labels,
            version=identity.version,
            capabilities=wire.Capabilities(
                cgroup=capabilities.cgroup,
                controllers=sorted(capabilities.controllers),
                namespaces=[
                    name for ns, name in _NAMESPACE_NAMES.items() if ns in capabilities.namespaces
                ],
                block_devices=capabilities.block_devices,
            ),
            load=wire.Load(
                running_jobs=self._manager.running(),
                caller_running_jobs=self._manager.running(current_principal().account),
                max_running_per_account=settings.max_running,
                max_streams_per_account=settings.max_streams,
            ),
            certificate_names=identity.certificate_names,
        )
        return reply.SerializeToString()

    def __mapping__(self) -> dict[str, Handler]:
        """The grpclib handlers, by method path."""
        return {
            f"/{SERVICE}/Run": _unary(self.run, wire.RunRequest, wire.RunResponse),
            f"/{SERVICE}/Stop": _unary(self.stop, wire.StopRequest, wire.StopResponse),
            f"/{SERVICE}/Status": _unary(self.status, wire.StatusRequest, wire.StatusResponse),
            f"/{SERVICE}/List": _unary(self.list, wire.ListRequest, wire.ListResponse),
            f"/{SERVICE}/Wait": _unary(
                self.wait, wire.WaitRequest, wire.WaitResponse, answer_first=True
            ),
            f"/{SERVICE}/Info": _unary(self.info, wire.InfoRequest, wire.InfoResponse),
            f"/{SERVICE}/Logs": Handler(
                self._logs, Cardinality.UNARY_STREAM, wire.LogsRequest, wire.LogsResponse
            ),
        }

    async def _logs(self, stream: Any) -> None:
        request = await _request(stream)
        reader = self._manager.reader(
            request.job_id,
            current_principal().account,
            request.offset,
            follow=request.follow,
            selection=selection_from_request(request),
        )
        # Leaving closes the reader at once when the client goes away.
        async with reader:
            # Headers now, not with the first output: a follower of a silent job then
            # knows the server answered (a connection lost later is no refused TLS).
            await stream.send_initial_metadata()
            async for item in reader:
                message = Encoded(encode_log_item(item))
                del item  # not held while the message waits for the client's window
                await stream.send_message(message)


def _unary(
    call: Callable[[Request], Awaitable[bytes]],
    request: type[Request],
    reply: type[Message],
    *,
    answer_first: bool = False,
) -> Handler:
    """A unary handler; ``answer_first`` sends the headers before the call, which may
    take long (Wait), so that the client knows the server has answered."""

    async def handle(stream: Any) -> None:
        message = await _request(stream)
        if answer_first:
            await stream.send_initial_metadata()
        await stream.send_message(Encoded(await call(message)))

    return Handler(handle, Cardinality.UNARY_UNARY, request, reply)


async def _request(stream: Any) -> Any:
    request = await stream.recv_message()
    if request is None:
        raise InvalidArgument("the call carries no request message")
    return request


def encode_jobs(infos: Iterable[JobInfo]) -> bytes:
    """A response whose field 1 holds these jobs, in wire format: every response
    but Logs's is one (one job, or the repeated jobs of List)."""
    return b"".join(map(_job_field, infos))


@functools.lru_cache(maxsize=4096)
def _job_field(info: JobInfo) -> bytes:
    # An ended job's facts never change, so its bytes are served from this
    # cache; a running job's output_bytes moves and it is encoded again.
    return _wire.job_field(_job(info).SerializeToString())


def _job(info: JobInfo) -> wire.Job:
    spec = info.spec
    limits = spec.limits
    return wire.Job(
        id=info.id,
        owner=info.owner,
        command=spec.argv,
        cwd=spec.cwd or "",
        state=_STATES[info.state],
        pid=info.pid or 0,
        exit_code=info.exit_code,
        signal=info.signal,
        started_at=_timestamp(info.started_at),
        ended_at=None if info.ended_at is None else _timestamp(info.ended_at),
        limits=wire.Limits(
            cpu=limits.cpu,
            memory=limits.memory,
            pids=limits.pids,
            io_read=_io_limits(limits.io_read),
            io_write=_io_limits(limits.io_write),
        ),
        isolation=[name for ns, name in _NAMESPACE_NAMES.items() if ns in spec.isolation],
        timeout_seconds=spec.timeout,
        output_bytes=info.output_bytes,
        dropped_bytes=info.dropped_bytes,
        lost_bytes=info.lost_bytes,
        name=spec.name or "",
        labels=dict(spec.labels),
        usage=None if info.usage is None else _usage(info.usage),
        user=info.user,
        uid=info.uid or 0,
    )


def _usage(usage: Usage) -> wire.Usage:
    return wire.Usage(
        cpu_user_seconds=usage.cpu_user,
        cpu_system_seconds=usage.cpu_system,
        memory_peak_bytes=usage.memory_peak,
        io_read_bytes=usage.io_read,
        io_write_bytes=usage.io_write,
        source=usage.source,
    )


def _io_limits(rates: Iterable[IoRate]) -> list[wire.IoLimit]:
    return [wire.IoLimit(device=r.device or "", bytes_per_second=r.bytes_per_second) for r in rates]


def _timestamp(seconds: float) -> Timestamp:
    whole, fraction = divmod(seconds, 1)
    return Timestamp(seconds=int(whole), nanos=int(fraction * 1e9))


def encode_log_item(item: Chunk | Gap) -> bytes:
    """A ``LogsResponse`` in wire format for a piece of output or a gap."""
    if isinstance(item, Gap):
        return _wire.gap_message(item.offset, item.size)
    return _wire.log_message(item.offset, _WIRE_STREAMS[item.stream], item.time_ns, item.data)


def spec_from_request(request: wire.RunRequest) -> JobSpec:
    """The core's job spec for a Run request; ``InvalidArgument`` when it is malformed."""
    return JobSpec(
        argv=tuple(request.command),
        env=tuple((var.name, var.value) for var in request.env),
        cwd=request.cwd or None,
        timeout=request.timeout_seconds if request.HasField("timeout_seconds") else None,
        limits=_limits(request.limits) if request.HasField("limits") else Limits(),
        isolation=_decoded(request.isolation, _NAMESPACES, "namespace"),
        name=request.name or None,
        labels=tuple(sorted(request.labels.items())),
        user=request.user or None,
    )


def selection_from_request(request: wire.LogsRequest) -> Selection:
    """The core's log selection for a Logs request; ``InvalidArgument`` when malformed."""
    streams = _decoded(request.streams, _STREAMS, "stream")
    since = _nanoseconds(request, "since")
    until = _nanoseconds(request, "until")
    return Selection(
        streams=streams,
        tail_lines=request.tail_lines if request.HasField("tail_lines") else None,
        since_ns=since,
        until_ns=until,
        chunk_times=request.timestamps,
    )


def _decoded(numbers: Iterable[K], table: Mapping[K, T], what: str) -> frozenset[T]:
    """The core's values of a repeated enum field; ``InvalidArgument`` naming the
    first number the table does not know."""
    for number in numbers:
        if number not in table:
            raise InvalidArgument(f"unknown {what} {number!r}")
    return frozenset(table[number] for number in numbers)


def _nanoseconds(request: wire.LogsRequest, name: str) -> int | None:
    """A Timestamp field in nanoseconds since the epoch; ``InvalidArgument`` outside
    the range a Timestamp may hold (years 1 to 9999, nanos below a second)."""
    if not request.HasField(name):
        return None
    try:
        return int(getattr(request, name).ToNanoseconds())
    except ValueError as exc:
        raise InvalidArgument(f"{name}: {exc}") from None


def _limits(message: wire.Limits) -> Limits:
    return Limits(
        cpu=message.cpu if message.HasField("cpu") else None,
        memory=message.memory if message.HasField("memory") else None,
        pids=message.pids if message.HasField("pids") else None,
        io_read=tuple(IoRate(io.bytes_per_second, io.device or None) for io in message.io_read),
        io_write=tuple(IoRate(io.bytes_per_second, io.device or None) for io in message.io_write),
    )

"""The API end to end: a real server over real mTLS, driven by the generated stubs."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from grpclib.const import Cardinality, Status
from grpclib.exceptions import GRPCError
from grpclib.health.v1.health_grpc import HealthStub
from grpclib.health.v1.health_pb2 import HealthCheckRequest, HealthCheckResponse
from grpclib.reflection.v1.reflection_grpc import ServerReflectionStub
from grpclib.reflection.v1.reflection_pb2 import ServerReflectionRequest
from harness import RunningServer, ServerProcess, running_server
from pki_fixtures import Certificates

from gen import service_pb2 as wire
from gen.jobs import v1 as pb
from jobs import ManagerSettings
from jobs._core.model import (
    Chunk,
    Gap,
    IoRate,
    JobInfo,
    JobSpec,
    JobState,
    Limits,
    Namespace,
    Stream,
)
from jobs.server._service import encode_jobs, encode_log_item


async def run_to_end(stub: pb.JobServiceStub, *command: str) -> tuple[pb.Job, bytes, bytes]:
    job = (await stub.run(pb.RunRequest(command=list(command)))).job
    out, err = bytearray(), bytearray()
    async for message in stub.logs(pb.LogsRequest(job_id=job.id, follow=True)):
        (out if message.stream is pb.Stream.STDOUT else err).extend(message.data)
    final = (await stub.wait(pb.WaitRequest(job_id=job.id))).job
    return final, bytes(out), bytes(err)


async def expect(code: Status, call: object) -> GRPCError:
    with pytest.raises(GRPCError) as caught:
        await call  # type: ignore[misc]
    assert caught.value.status is code, caught.value
    return caught.value


async def test_run_follow_wait_status_list(server: RunningServer, tmp_path: Path) -> None:
    payload = os.urandom(3_000_000)
    (tmp_path / "blob").write_bytes(payload)
    async with server.stub() as stub:
        final, out, err = await run_to_end(
            stub, "sh", "-c", f"cat {tmp_path}/blob; echo oops >&2; exit 5"
        )
        assert (out, err) == (payload, b"oops\n")
        assert final.state is pb.JobState.EXITED
        assert final.exit_code == 5
        assert final.signal is None
        assert final.owner == "alice"
        assert final.command == ["sh", "-c", f"cat {tmp_path}/blob; echo oops >&2; exit 5"]
        assert final.output_bytes == len(payload) + 5
        assert final.ended_at >= final.started_at
        status = (await stub.status(pb.StatusRequest(job_id=final.id))).job
        assert status == final
        listed = (await stub.list(pb.ListRequest())).jobs
        assert [job.id for job in listed] == [final.id]


async def test_stop_with_grace(server: RunningServer) -> None:
    async with server.stub() as stub:
        job = (await stub.run(pb.RunRequest(command=["sleep", "3600"]))).job
        assert job.state is pb.JobState.RUNNING
        assert job.pid > 0
        stopped = (await stub.stop(pb.StopRequest(job_id=job.id, grace_seconds=0))).job
        assert stopped.state is pb.JobState.STOPPED
        assert stopped.signal == 9  # a grace of zero: SIGKILL at once


async def test_timeout(server: RunningServer) -> None:
    async with server.stub() as stub:
        job = (await stub.run(pb.RunRequest(command=["sleep", "3600"], timeout_seconds=0.2))).job
        final = (await stub.wait(pb.WaitRequest(job_id=job.id))).job
        assert final.state is pb.JobState.TIMED_OUT
        assert final.timeout_seconds == 0.2


async def test_logs_from_an_offset_and_past_the_end(server: RunningServer) -> None:
    async with server.stub() as stub:
        final, _out, _ = await run_to_end(stub, "printf", "0123456789")
        rest = [m.data async for m in stub.logs(pb.LogsRequest(job_id=final.id, offset=6))]
        assert b"".join(rest) == b"6789"
        await expect(
            Status.OUT_OF_RANGE, _drain(stub.logs(pb.LogsRequest(job_id=final.id, offset=11)))
        )


async def _drain(responses: object) -> None:
    async for _ in responses:  # type: ignore[attr-defined]
        pass


@pytest.mark.parametrize(
    ("request_", "code", "text"),
    [
        (pb.RunRequest(command=[]), Status.INVALID_ARGUMENT, "empty"),
        (pb.RunRequest(command=["echo", "a\0b"]), Status.INVALID_ARGUMENT, "NUL"),
        (
            pb.RunRequest(command=["true"], env=[pb.EnvVar("A", "1"), pb.EnvVar("A", "2")]),
            Status.INVALID_ARGUMENT,
            "twice",
        ),
        (pb.RunRequest(command=["true"], env=[pb.EnvVar("", "1")]), Status.INVALID_ARGUMENT, ""),
        (pb.RunRequest(command=["true"], cwd="relative"), Status.INVALID_ARGUMENT, "absolute"),
        (pb.RunRequest(command=["true"], timeout_seconds=-1), Status.INVALID_ARGUMENT, "timeout"),
        (
            pb.RunRequest(command=["true"], limits=pb.Limits(cpu=-1)),
            Status.INVALID_ARGUMENT,
            "cpu",
        ),
        (
            pb.RunRequest(command=["echo", "x" * 200_000]),
            Status.INVALID_ARGUMENT,
            "limit",
        ),
        (pb.RunRequest(command=["no-such-command"]), Status.FAILED_PRECONDITION, "not found"),
        (pb.RunRequest(command=["true"], cwd="/no/such/dir"), Status.FAILED_PRECONDITION, "dir"),
    ],
)
async def test_bad_run_requests(
    server: RunningServer, request_: pb.RunRequest, code: Status, text: str
) -> None:
    async with server.stub() as stub:
        error = await expect(code, stub.run(request_))
        assert text in (error.message or "")
        assert (await stub.list(pb.ListRequest())).jobs == []


async def test_negative_grace_is_invalid(server: RunningServer) -> None:
    async with server.stub() as stub:
        job = (await stub.run(pb.RunRequest(command=["sleep", "3600"]))).job
        await expect(
            Status.INVALID_ARGUMENT, stub.stop(pb.StopRequest(job_id=job.id, grace_seconds=-1))
        )
        await stub.stop(pb.StopRequest(job_id=job.id))


async def test_undecodable_request(server: RunningServer) -> None:
    channel = server.channel()
    try:
        async with channel.request(
            "/jobs.v1.JobService/Status",
            Cardinality.UNARY_UNARY,
            pb.StatusRequest,
            pb.StatusResponse,
        ) as stream:
            await stream.send_request()
            await stream.send_message(_Raw(b"\x0a\xff\xff\xff"), end=True)  # a truncated string
            with pytest.raises(GRPCError) as caught:
                await stream.recv_message()
        assert caught.value.status is Status.INVALID_ARGUMENT
    finally:
        channel.close()


async def test_a_call_without_its_request_message_is_invalid(server: RunningServer) -> None:
    channel = server.channel()
    try:
        async with channel.request(
            "/jobs.v1.JobService/Status",
            Cardinality.STREAM_UNARY,  # grpclib's client lets only streams send nothing
            pb.StatusRequest,
            pb.StatusResponse,
        ) as stream:
            await stream.send_request(end=True)
            with pytest.raises(GRPCError) as caught:
                await stream.recv_message()
        assert caught.value.status is Status.INVALID_ARGUMENT
        assert caught.value.message == "the call carries no request message"
    finally:
        channel.close()


def test_encoded_jobs_are_the_responses_protobuf_would_send() -> None:
    # Lengths around the varint boundaries: 1, 2 and 3 bytes of length prefix.
    infos = [
        JobInfo(
            id=f"{n:032x}",
            owner="alice",
            spec=JobSpec(
                argv=("x" * n,),
                cwd="/tmp" if n > 1 else None,
                timeout=1.5 if n > 1 else None,
                limits=Limits(cpu=0.5, pids=7, io_read=(IoRate(1 << 20, "8:0"),)),
                isolation=frozenset({Namespace.NET, Namespace.PID}),
            ),
            state=JobState.EXITED if n > 1 else JobState.RUNNING,
            pid=42,
            started_at=1_700_000_000.25,
            ended_at=1_700_000_001.5 if n > 1 else None,
            exit_code=3 if n > 1 else None,
            output_bytes=n,
        )
        for n in (1, 100, 127, 128, 16_383, 16_384, 70_000)
    ]
    expected = [
        wire.Job(
            id=info.id,
            owner="alice",
            command=info.spec.argv,
            cwd=info.spec.cwd or "",
            state=f"JOB_STATE_{info.state.name}",
            pid=42,
            exit_code=info.exit_code,
            started_at={"seconds": 1_700_000_000, "nanos": 250_000_000},
            ended_at={"seconds": 1_700_000_001, "nanos": 500_000_000} if info.ended_at else None,
            limits=wire.Limits(
                cpu=0.5, pids=7, io_read=[wire.IoLimit(device="8:0", bytes_per_second=1 << 20)]
            ),
            isolation=["NAMESPACE_PID", "NAMESPACE_NET"],
            timeout_seconds=info.spec.timeout,
            output_bytes=info.output_bytes,
        )
        for info in infos
    ]
    assert wire.ListResponse.FromString(encode_jobs(infos)) == wire.ListResponse(jobs=expected)
    for info, job in zip(infos, expected, strict=True):
        assert wire.StatusResponse.FromString(encode_jobs([info])) == wire.StatusResponse(job=job)
        # What betterproto clients decode, field by field.
        assert pb.StatusResponse().parse(encode_jobs([info])).job.command == list(info.spec.argv)
    assert encode_jobs([]) == b""


def test_log_messages_are_the_bytes_protobuf_would_send() -> None:
    for size in (0, 1, 127, 128, 16_384, 300_000):
        chunk = Chunk(12_345, Stream.STDERR, 1_700_000_000_123_456_789, os.urandom(size))
        expected = wire.LogsResponse(
            offset=12_345,
            stream=wire.STREAM_STDERR,
            data=chunk.data,
            time=Timestamp(seconds=1_700_000_000, nanos=123_456_789),
        )
        assert encode_log_item(chunk) == expected.SerializeToString()
    gap = wire.LogsResponse(offset=1_000, dropped=600)
    assert encode_log_item(Gap(400, 600)) == gap.SerializeToString()


class _Raw(pb.StatusRequest):
    """A request whose encoding is given bytes, to send what no stub would."""

    def __init__(self, raw: bytes) -> None:
        super().__init__()
        object.__setattr__(self, "_raw", raw)

    def __bytes__(self) -> bytes:
        return object.__getattribute__(self, "_raw")  # type: ignore[no-any-return]


async def test_not_found_is_identical_for_foreign_unknown_and_malformed_ids(
    server: RunningServer,
) -> None:
    async with server.stub("alice") as alice, server.stub("bob") as bob:
        job = (await alice.run(pb.RunRequest(command=["sleep", "3600"]))).job
        answers = set()
        for job_id in (job.id, "0b8d2f43-5f3a-4f0e-9c55-1f1a2b3c4d5e", "../../etc/passwd", ""):
            for call in (
                bob.status(pb.StatusRequest(job_id=job_id)),
                bob.wait(pb.WaitRequest(job_id=job_id)),
                bob.stop(pb.StopRequest(job_id=job_id)),
                _drain(bob.logs(pb.LogsRequest(job_id=job_id))),
            ):
                error = await expect(Status.NOT_FOUND, call)
                answers.add((error.message, error.details))
        assert answers == {("job not found", None)}
        assert (await alice.status(pb.StatusRequest(job_id=job.id))).job.state is (
            pb.JobState.RUNNING
        )
        assert (await bob.list(pb.ListRequest())).jobs == []
        await alice.stop(pb.StopRequest(job_id=job.id))


async def test_running_job_cap(test_pki: Certificates, tmp_path: Path) -> None:
    async with (
        running_server(test_pki, tmp_path, ManagerSettings(grace=2.0, max_running=2)) as server,
        server.stub() as stub,
    ):
        for _ in range(2):
            await stub.run(pb.RunRequest(command=["sleep", "3600"]))
        await expect(Status.RESOURCE_EXHAUSTED, stub.run(pb.RunRequest(command=["sleep", "3600"])))


async def test_log_stream_cap(test_pki: Certificates, tmp_path: Path) -> None:
    async with (
        running_server(test_pki, tmp_path, ManagerSettings(grace=2.0, max_streams=2)) as server,
        server.stub() as stub,
    ):
        job = (await stub.run(pb.RunRequest(command=["sleep", "3600"]))).job
        async with anyio.create_task_group() as tg:
            for _ in range(2):
                tg.start_soon(_drain, stub.logs(pb.LogsRequest(job_id=job.id, follow=True)))
            await anyio.sleep(0.3)
            await expect(
                Status.RESOURCE_EXHAUSTED,
                _drain(stub.logs(pb.LogsRequest(job_id=job.id, follow=True))),
            )
            tg.cancel_scope.cancel()
        # Cancelled followers free their places at once.
        await anyio.sleep(0.3)
        await _drain(stub.logs(pb.LogsRequest(job_id=job.id)))


async def test_oversized_requests_are_refused_and_the_connection_lives_on(
    server: RunningServer,
) -> None:
    async with server.stub() as stub:
        # 3 x 2 MiB is more than the connection's 4 MiB window: were the bodies
        # left unread, the window would never come back and the last call would hang.
        for _ in range(3):
            await expect(
                Status.RESOURCE_EXHAUSTED, stub.status(pb.StatusRequest(job_id="x" * (2 << 20)))
            )
        await expect(
            Status.RESOURCE_EXHAUSTED, stub.run(pb.RunRequest(command=["echo", "y" * (1 << 20)]))
        )
        with anyio.fail_after(10):
            job = (await stub.run(pb.RunRequest(command=["echo", "y" * 60_000]))).job
            assert (await stub.wait(pb.WaitRequest(job_id=job.id))).job.exit_code == 0


async def test_health(server: RunningServer) -> None:
    channel = server.channel("norole")  # health needs a certificate, not a role
    try:
        health = HealthStub(channel)
        for service in ("", "jobs.v1.JobService"):
            reply = await health.Check(HealthCheckRequest(service=service))
            assert reply.status == HealthCheckResponse.SERVING
    finally:
        channel.close()


async def test_reflection_describes_the_service(server: RunningServer) -> None:
    from google.protobuf import descriptor_pb2

    channel = server.channel()
    try:
        reflection = ServerReflectionStub(channel)
        async with reflection.ServerReflectionInfo.open() as stream:
            await stream.send_message(ServerReflectionRequest(list_services=""))
            listed = await stream.recv_message()
            assert listed is not None
            names = {s.name for s in listed.list_services_response.service}
            assert "jobs.v1.JobService" in names
            await stream.send_message(
                ServerReflectionRequest(file_containing_symbol="jobs.v1.JobService"), end=True
            )
            described = await stream.recv_message()
            assert described is not None
            raw = described.file_descriptor_response.file_descriptor_proto[0]
            proto = descriptor_pb2.FileDescriptorProto.FromString(raw)
            assert proto.package == "jobs.v1"
            assert [m.name for m in proto.service[0].method] == [
                "Run",
                "Stop",
                "Status",
                "List",
                "Logs",
                "Wait",
                "Info",
            ]
    finally:
        channel.close()


async def test_disconnecting_follower_frees_its_stream_at_once(server: RunningServer) -> None:
    async with server.stub() as stub:
        job = (await stub.run(pb.RunRequest(command=["sh", "-c", "while :; do echo y; done"]))).job
        channel = server.channel()
        follower = pb.JobServiceStub(channel)
        async for _ in follower.logs(pb.LogsRequest(job_id=job.id, follow=True)):
            break
        channel.close()
        with anyio.fail_after(5):
            while True:
                final = (await stub.status(pb.StatusRequest(job_id=job.id))).job
                assert final.state is pb.JobState.RUNNING
                # The manager's count of alice's open streams drops back to zero.
                await anyio.sleep(0.05)
                if not server.manager._streams["alice"]:
                    break
        await stub.stop(pb.StopRequest(job_id=job.id, grace_seconds=0))


async def test_oversized_requests_leave_the_servers_memory_unchanged(
    test_pki: Certificates, tmp_path: Path
) -> None:
    server = ServerProcess(test_pki, tmp_path / "state")
    await server.start()
    try:
        async with server.stub() as stub:
            await stub.list(pb.ListRequest())  # warm up
            before = server.rss()
            for _ in range(4):
                await expect(
                    Status.RESOURCE_EXHAUSTED,
                    stub.status(pb.StatusRequest(job_id="x" * (32 << 20))),
                )
            grown = server.rss() - before
            # 128 MiB were sent; a server that buffered them would have grown by as much.
            assert grown < 16 << 20, f"the server grew by {grown} bytes"
            await stub.list(pb.ListRequest())
    finally:
        assert await server.stop() == 0

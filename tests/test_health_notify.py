"""The plaintext health port and systemd's readiness protocol, with real sockets."""

from __future__ import annotations

import functools
import os
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import anyio.to_thread
import grpc
import pytest
from grpclib.client import Channel
from grpclib.health.v1.health_grpc import HealthStub
from grpclib.health.v1.health_pb2 import HealthCheckRequest, HealthCheckResponse
from harness import JOBS, serving
from pki_fixtures import Certificates

from jobs import InvalidArgument, JobSpec, ManagerSettings
from jobs.server import ServerConfig, Serving, serve
from jobs.server._health import check_health_address
from jobs.server._notify import notify

SERVING = HealthCheckResponse.SERVING
NOT_SERVING = HealthCheckResponse.NOT_SERVING


def config(test_pki: Certificates, state: Path, **options: object) -> ServerConfig:
    return ServerConfig(
        cert=test_pki.server.cert,
        key=test_pki.server.key,
        ca=test_pki.ca,
        state_dir=state,
        port=0,
        manager=ManagerSettings(grace=3.0),
        **options,  # type: ignore[arg-type]
    )


async def health(port: int, service: str = "") -> int:
    channel = Channel("127.0.0.1", port)  # plaintext: no TLS on this port
    try:
        with anyio.fail_after(5):
            reply = await HealthStub(channel).Check(HealthCheckRequest(service=service))
        assert reply is not None
        return int(reply.status)
    finally:
        channel.close()


@pytest.fixture
async def with_health(test_pki: Certificates, tmp_path: Path) -> AsyncIterator[Serving]:
    async with anyio.create_task_group() as tg:
        running: Serving = await tg.start(
            functools.partial(
                serve, config(test_pki, tmp_path / "state", health_listen=("127.0.0.1", 0))
            )
        )
        yield running
        tg.cancel_scope.cancel()


async def test_health_port_answers_health_only_in_plaintext(with_health: Serving) -> None:
    assert with_health.health_port not in (0, with_health.port)
    assert await health(with_health.health_port) == SERVING
    assert await health(with_health.health_port, "jobs.v1.JobService") == SERVING
    # Nothing else is served there. (Asked with grpcio: grpclib's own client
    # reports grpclib's trailers-only UNIMPLEMENTED as UNKNOWN.)
    for method in ("/jobs.v1.JobService/List", "/grpc.reflection.v1alpha.ServerReflection/x"):
        code = await anyio.to_thread.run_sync(unary_status, with_health.health_port, method)
        assert code == "UNIMPLEMENTED", method


def unary_status(port: int, method: str) -> str:
    """The status name grpcio reports for an empty plaintext unary call."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            call = channel.unary_unary(
                method, request_serializer=bytes, response_deserializer=bytes
            )
            call(b"", timeout=5)
        except grpc.RpcError as error:
            return str(error.code().name)
    return "OK"


async def test_health_says_not_serving_while_the_server_shuts_down(
    test_pki: Certificates, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    async with anyio.create_task_group() as tg:
        running: Serving = await tg.start(
            functools.partial(serve, config(test_pki, state, health_listen=("127.0.0.1", 0)))
        )
        port = running.health_port
        # A job that ignores SIGTERM holds the shutdown for the whole grace (3 s).
        spec = JobSpec(argv=("sh", "-c", "trap '' TERM; sleep 60"))
        job = await running.manager.start(spec, "alice")
        assert await health(port) == SERVING
        tg.cancel_scope.cancel()
        with anyio.CancelScope(shield=True):
            await anyio.sleep(0.5)
            assert await health(port) == NOT_SERVING
            assert await health(port, "jobs.v1.JobService") == NOT_SERVING
            assert not running.manager.status(job.id, "alice").state.is_final
    with pytest.raises(ConnectionRefusedError):  # closed once the server is gone
        await health(port)


def test_health_refuses_non_loopback_addresses_unless_forced() -> None:
    for host in ("127.0.0.1", "127.0.0.9", "::1", "localhost"):
        check_health_address(host)
    for host in ("0.0.0.0", "::", "10.1.2.3", "example.com"):
        with pytest.raises(InvalidArgument, match="loopback"):
            check_health_address(host)
        check_health_address(host, force=True)


async def test_cli_refuses_a_public_health_port(tmp_path: Path) -> None:
    result = await anyio.run_process(
        [
            JOBS,
            "serve",
            f"--state-dir={tmp_path / 'state'}",
            "--listen=127.0.0.1:0",
            "--health-listen=0.0.0.0:0",
        ],
        env={"JOBS_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    stderr = result.stderr.decode()
    assert result.returncode == 1, stderr
    assert "loopback" in stderr
    assert stderr.count("\n") == 1, stderr
    assert not (tmp_path / "state").exists(), "refused before touching anything"


async def test_sd_notify_ready_then_stopping(test_pki: Certificates, tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    notify_env = {"NOTIFY_SOCKET": str(path)}
    async with (
        await anyio.create_unix_datagram_socket(local_path=path) as sock,
        serving(test_pki, tmp_path / "state", env=notify_env) as server,
    ):
        with anyio.fail_after(10):
            ready, _ = await sock.receive()
        assert ready.split(b"\n")[0] == b"READY=1"
        assert f"STATUS=serving on 127.0.0.1:{server.port}".encode() in ready.split(b"\n")
        assert await server.stop() == 0
        with anyio.fail_after(10):
            stopping, _ = await sock.receive()
        assert stopping.split(b"\n")[0] == b"STOPPING=1"


async def test_sd_notify_abstract_socket_and_no_socket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"jobs-test-{os.getpid()}-{tmp_path.name}"
    receiver = await anyio.create_unix_datagram_socket(local_path="\0" + name)
    async with receiver:
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert notify("READY=1")
        with anyio.fail_after(5):
            data, _ = await receiver.receive()
        assert data == b"READY=1"
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens"))
    assert not notify("READY=1")  # logged, not raised
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert not notify("READY=1")

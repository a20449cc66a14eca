"""The client tells a refused TLS handshake apart from a connection lost later: a
follower whose connection the server drops by keepalive is told so, not blamed on
its certificate."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import anyio.abc
import pytest
from harness import JOBS, running_server, serving
from pki_fixtures import Certificates

from cli._client import CONNECT_TIMEOUT
from gen.jobs.v1 import RunRequest
from jobs.client import _HANDSHAKE_REFUSED as HANDSHAKE_REFUSED
from jobs.client import ConnectionFailed, connection_errors, logs, open_channel


class PausingProxy:
    """A TCP relay that can hold everything in both directions for a while (a
    suspended laptop, a network down), then let it through in order."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.running = anyio.Event()
        self.running.set()
        self.port = 0

    async def serve(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        async with listener:
            self.port = listener.extra(anyio.abc.SocketAttribute.local_port)
            task_status.started()
            await listener.serve(self._relay)

    def pause(self, seconds: float) -> None:
        """Hold everything for ``seconds`` from now."""
        self.running = running = anyio.Event()
        asyncio.get_running_loop().call_later(seconds, running.set)

    async def _relay(self, client: anyio.abc.SocketStream) -> None:
        server = await anyio.connect_tcp("127.0.0.1", self.target)
        async with client, server, anyio.create_task_group() as tg:
            tg.start_soon(self._pump, client, server, tg.cancel_scope)
            tg.start_soon(self._pump, server, client, tg.cancel_scope)

    async def _pump(
        self, source: anyio.abc.SocketStream, sink: anyio.abc.SocketStream, scope: anyio.CancelScope
    ) -> None:
        with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
            async for data in source:
                await self.running.wait()
                await sink.send(data)
        scope.cancel()  # one side closed: close both


@contextlib.asynccontextmanager
async def proxied(test_pki: Certificates, state: Path) -> AsyncIterator[tuple[PausingProxy, str]]:
    async with (
        running_server(test_pki, state, keepalive_time=0.5, keepalive_timeout=0.5) as server,
        anyio.create_task_group() as tg,
    ):
        proxy = PausingProxy(server.port)
        await tg.start(proxy.serve)
        async with server.stub() as stub:
            job = await stub.run(RunRequest(command=["sh", "-c", "echo hi; exec sleep 30"]))
        yield proxy, job.job.id
        tg.cancel_scope.cancel()


async def _follow(proxy: PausingProxy, job_id: str, client: str, pki: Certificates) -> None:
    """Follow the job through the proxy; pause the proxy at the first message for
    longer than the server's keepalive allows."""
    files = pki.clients[client]
    channel = open_channel("127.0.0.1", proxy.port, ca=pki.ca, cert=files.cert, key=files.key)
    try:
        with connection_errors("the server", channel):
            async with logs(channel, job_id, follow=True) as messages:
                async for message in messages:
                    assert message.data == b"hi\n"
                    proxy.pause(3.0)
    finally:
        channel.close()


async def test_follower_dropped_by_keepalive(test_pki: Certificates, tmp_path: Path) -> None:
    async with proxied(test_pki, tmp_path / "state") as (proxy, job_id):
        with anyio.fail_after(20), pytest.raises(ConnectionFailed) as failed:
            await _follow(proxy, job_id, "alice", test_pki)
    message = str(failed.value)
    assert "was lost after the server had answered" in message
    assert message != HANDSHAKE_REFUSED


async def test_refused_handshake_is_still_named(test_pki: Certificates, tmp_path: Path) -> None:
    """A certificate without clientAuth: the server closes the connection at the handshake."""
    async with proxied(test_pki, tmp_path / "state") as (proxy, job_id):
        with anyio.fail_after(20), pytest.raises(ConnectionFailed, match="TLS handshake"):
            await _follow(proxy, job_id, "server-auth-only", test_pki)


async def test_a_server_killed_under_silent_waiters_is_no_refused_handshake(
    test_pki: Certificates, tmp_path: Path
) -> None:
    # wait and logs -f on a job that writes nothing: the server has sent no message
    # when it dies, only its headers, and they are enough to tell a crash from a
    # refused certificate.
    async with serving(test_pki, tmp_path / "state") as server:
        async with server.stub() as stub:
            job = (await stub.run(RunRequest(command=["sleep", "30"]))).job
        env = server.client_env()
        waiting = [
            await anyio.open_process([JOBS, *command, job.id], env=env)
            for command in (["wait"], ["logs", "-f"])
        ]
        await anyio.sleep(3)  # both calls are in flight (each CLI starts in well under 1 s)
        await server.stop(signal.SIGKILL)
        with anyio.fail_after(20):
            for process in waiting:
                await process.wait()
        errors = []
        for process in waiting:
            assert process.stderr is not None
            errors.append((process.returncode, (await process.stderr.receive()).decode()))
            await process.aclose()
    for _, message in errors:
        assert "was lost after the server had answered" in message, message
        assert "TLS handshake" not in message
    assert [status for status, _ in errors] == [125, 1]  # wait as docker's; logs


async def test_a_stopped_server_is_given_up_on_at_the_handshake(
    test_pki: Certificates, tmp_path: Path
) -> None:
    # SIGSTOPped, the server's kernel still accepts connections: only the TLS
    # handshake tells, and the CLI gives up on it in CONNECT_TIMEOUT, not 60 s.
    async with serving(test_pki, tmp_path / "state") as server:
        assert server.process is not None
        server.process.send_signal(signal.SIGSTOP)
        try:
            with anyio.fail_after(CONNECT_TIMEOUT + 10):
                result = await anyio.run_process(
                    [JOBS, "wait", "anything"], env=server.client_env(), check=False
                )
        finally:
            server.process.send_signal(signal.SIGCONT)
    assert result.returncode == 125
    assert result.stderr.decode() == (
        f"jobs: {server.address} did not answer within {CONNECT_TIMEOUT:g}s (connection "
        "and TLS handshake): is the server stopped or overloaded?\n"
    )

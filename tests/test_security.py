"""Mutual TLS, identities and roles, over real handshakes with certificates from pki/."""

from __future__ import annotations

import socket
import ssl
import time
from pathlib import Path

import anyio
import h2.config
import h2.connection
import h2.events
import pytest
from grpclib.client import Channel
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from harness import RunningServer, running_server
from pki_fixtures import Certificates

from gen.jobs import v1 as pb
from jobs._tls import client_context
from jobs.client import ConnectionFailed, connection_errors

READ_CALLS = ("status", "list", "logs", "wait")


async def call(stub: pb.JobServiceStub, verb: str, job_id: str) -> object:
    """One call of each kind, against ``job_id``."""
    if verb == "run":
        return await stub.run(pb.RunRequest(command=["true"]))
    if verb == "stop":
        return await stub.stop(pb.StopRequest(job_id=job_id))
    if verb == "status":
        return await stub.status(pb.StatusRequest(job_id=job_id))
    if verb == "list":
        return await stub.list(pb.ListRequest())
    if verb == "wait":
        return await stub.wait(pb.WaitRequest(job_id=job_id))
    return [m async for m in stub.logs(pb.LogsRequest(job_id=job_id))]


@pytest.mark.parametrize(
    ("client", "allowed"),
    [
        ("alice", {"run", "stop", *READ_CALLS}),
        ("alice-ro", set(READ_CALLS)),
        ("norole", set()),
        ("badrole", set()),
        ("malformed-role", set()),
        ("other-oid", set()),  # its role sits under another OID than the server's
    ],
)
async def test_role_matrix(server: RunningServer, client: str, allowed: set[str]) -> None:
    async with server.stub("alice") as alice:
        job = (await alice.run(pb.RunRequest(command=["true"]))).job
        await alice.wait(pb.WaitRequest(job_id=job.id))
    async with server.stub(client) as stub:
        for verb in ("run", "stop", *READ_CALLS):
            if verb in allowed:
                await call(stub, verb, job.id)
            else:
                with pytest.raises(GRPCError) as caught:
                    await call(stub, verb, job.id)
                assert caught.value.status is Status.PERMISSION_DENIED, (verb, caught.value)


async def test_role_oid_is_settable(test_pki: Certificates, tmp_path: Path) -> None:
    async with running_server(test_pki, tmp_path, role_oid="1.3.6.1.4.1.55555.7") as server:
        async with server.stub("other-oid") as stub:
            await stub.run(pb.RunRequest(command=["true"]))
        async with server.stub("alice") as stub:  # its role is under the default OID
            with pytest.raises(GRPCError) as caught:
                await stub.list(pb.ListRequest())
            assert caught.value.status is Status.PERMISSION_DENIED


@pytest.mark.parametrize("client", ["no-eku", "no-cn", "two-cns"])
async def test_certificate_breaking_our_rules_is_unauthenticated(
    server: RunningServer, client: str
) -> None:
    async with server.stub(client) as stub:
        for verb in ("run", "list"):
            with pytest.raises(GRPCError) as caught:
                await call(stub, verb, "")
            assert caught.value.status is Status.UNAUTHENTICATED


@pytest.mark.parametrize("client", ["expired", "foreign", "server-auth-only"])
async def test_certificate_refused_at_the_handshake(server: RunningServer, client: str) -> None:
    async with server.stub(client) as stub:
        with (
            pytest.raises(ConnectionFailed, match="during the TLS handshake"),
            connection_errors(""),
        ):
            await stub.list(pb.ListRequest())


async def test_no_client_certificate(server: RunningServer) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(server.pki.ca)
    context.set_alpn_protocols(["h2"])
    channel = Channel(server.host, server.port, ssl=context)
    try:
        with (
            pytest.raises(ConnectionFailed, match="during the TLS handshake"),
            connection_errors(""),
        ):
            await pb.JobServiceStub(channel).list(pb.ListRequest())
    finally:
        channel.close()


def _handshake(server: RunningServer, context: ssl.SSLContext) -> ssl.SSLSocket:
    files = server.pki.clients["alice"]
    context.load_cert_chain(files.cert, files.key)
    raw = socket.create_connection((server.host, server.port), timeout=5)
    return context.wrap_socket(raw, server_hostname="localhost")


async def test_tls_12_is_refused(server: RunningServer) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(server.pki.ca)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises(ssl.SSLError):
        await anyio.to_thread.run_sync(_handshake, server, context)


async def test_tls_13_and_h2_are_negotiated(server: RunningServer) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(server.pki.ca)
    context.set_alpn_protocols(["h2", "http/1.1"])
    tls = await anyio.to_thread.run_sync(_handshake, server, context)
    with tls:
        assert tls.version() == "TLSv1.3"
        assert tls.selected_alpn_protocol() == "h2"


async def test_client_refuses_a_server_from_another_ca(server: RunningServer) -> None:
    channel = server.channel("alice", ca=server.pki.foreign_ca)
    try:
        with pytest.raises(ConnectionFailed, match="not trusted"), connection_errors(""):
            await pb.JobServiceStub(channel).list(pb.ListRequest())
    finally:
        channel.close()


async def test_stalled_handshake_is_cut(test_pki: Certificates, tmp_path: Path) -> None:
    async with running_server(test_pki, tmp_path, handshake_timeout=0.5) as server:

        def silent_client() -> float:
            with socket.create_connection((server.host, server.port), timeout=10) as sock:
                started = time.monotonic()
                assert sock.recv(1) == b""  # the server hangs up on us
                return time.monotonic() - started

        elapsed = await anyio.to_thread.run_sync(silent_client)
        assert 0.4 <= elapsed < 5


async def test_a_peer_that_goes_silent_is_dropped_by_keepalive(
    test_pki: Certificates, tmp_path: Path
) -> None:
    async with running_server(
        test_pki, tmp_path, keepalive_time=0.3, keepalive_timeout=0.5
    ) as server:
        files = server.pki.clients["alice"]
        context = client_context(server.pki.ca, files.cert, files.key)

        def silent_peer() -> tuple[bool, float]:
            # A real TLS + HTTP/2 client that opens the connection, then never
            # answers again (a peer whose host died, say): not even the pings.
            h2_conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
            h2_conn.initiate_connection()
            with (
                socket.create_connection((server.host, server.port), timeout=10) as raw,
                context.wrap_socket(raw, server_hostname="localhost") as tls,
            ):
                tls.sendall(h2_conn.data_to_send())
                started = time.monotonic()
                pinged = False
                while data := tls.recv(65536):  # until the server hangs up
                    for event in h2_conn.receive_data(data):
                        pinged |= isinstance(event, h2.events.PingReceived)
                return pinged, time.monotonic() - started

        pinged, elapsed = await anyio.to_thread.run_sync(silent_peer)
        assert pinged, "the server never pinged the idle connection"
        # A ping after 0.3 s of silence, unanswered for 0.5 s: the server hangs up.
        assert 0.7 <= elapsed < 5, elapsed

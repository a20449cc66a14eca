"""Revocation (`jobs pki revoke`, `jobs serve --crl`) and reload on SIGHUP, through a
real `jobs serve` and a PKI made by `jobs pki`."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import anyio
import anyio.abc
import pytest
from cryptography import x509
from harness import JOBS, ServerProcess, serving
from pki_fixtures import Certificates, Files

import pki
from gen.jobs import v1 as pb
from jobs.client import ConnectionFailed, connection_errors

TICKER = ["sh", "-c", "while :; do echo tick; sleep 0.05; done"]


async def jobs_cli(*args: str) -> subprocess.CompletedProcess[bytes]:
    return await anyio.run_process([JOBS, *args], check=False)


@pytest.fixture
async def authority(tmp_path: Path) -> Certificates:
    """A PKI made by `jobs pki` (with its empty CRL) and identities alice and bob."""
    directory = tmp_path / "pki"
    assert (await jobs_cli("pki", "init", "--dir", str(directory))).returncode == 0
    for name in ("alice", "bob"):
        result = await jobs_cli("pki", "issue", name, "--role", "full", "--dir", str(directory))
        assert result.returncode == 0, result.stderr
    return Certificates(
        ca=directory / "ca.crt",
        server=Files(directory / "server.crt", directory / "server.key"),
        clients={
            n: Files(directory / f"{n}.crt", directory / f"{n}.key") for n in ("alice", "bob")
        },
        foreign_ca=directory / "ca.crt",
    )


def serving_with_crl(
    authority: Certificates, state: Path
) -> AbstractAsyncContextManager[ServerProcess]:
    """A server that checks client certificates against the CA's CRL."""
    return serving(authority, state, f"--crl={authority.ca.with_name('crl.pem')}")


async def reload(server: ServerProcess, expect: bytes) -> None:
    """SIGHUP, then wait for the line of the server's log that says how it went."""
    assert server.process is not None
    seen = len(server.log)
    server.process.send_signal(signal.SIGHUP)
    with anyio.fail_after(10):
        while expect not in server.log[seen:]:  # noqa: ASYNC110 (a thread drains the log)
            await anyio.sleep(0.05)


class Follower:
    """Follows a job's output in the background and counts what arrives."""

    def __init__(self) -> None:
        self.received = 0
        self.ended: BaseException | None = None
        self.done = anyio.Event()

    async def follow(self, stub: pb.JobServiceStub, job_id: str) -> None:
        try:
            async for _ in stub.logs(pb.LogsRequest(job_id=job_id, follow=True)):
                self.received += 1
        except Exception as exc:
            self.ended = exc
        finally:
            self.done.set()

    async def grows(self) -> None:
        before = self.received
        with anyio.fail_after(10):
            while self.received < before + 5:  # noqa: ASYNC110 (polling a counter)
                await anyio.sleep(0.05)


def serial_of(cert: Path) -> int:
    return x509.load_pem_x509_certificate(cert.read_bytes()).serial_number


async def test_revoke_writes_a_crl_openssl_verifies(authority: Certificates) -> None:
    directory = authority.ca.parent
    result = await jobs_cli("pki", "revoke", "bob", "--dir", str(directory))
    assert result.returncode == 0, result.stderr
    bob = serial_of(authority.clients["bob"].cert)
    assert f"{bob:X}".encode() in result.stderr
    crl = directory / "crl.pem"
    verified = await anyio.run_process(
        ["openssl", "crl", "-in", str(crl), "-CAfile", str(authority.ca), "-noout", "-verify"],
        check=False,
    )
    assert verified.returncode == 0
    assert b"verify OK" in verified.stderr + verified.stdout
    listed = pki.load_crl(crl)
    assert [entry.serial_number for entry in listed] == [bob]
    # By serial (hex, as openssl prints it), and without duplicates.
    alice = serial_of(authority.clients["alice"].cert)
    assert (await jobs_cli("pki", "revoke", f"{alice:X}", "--dir", str(directory))).returncode == 0
    assert (await jobs_cli("pki", "revoke", "bob", "--dir", str(directory))).returncode == 0
    assert sorted(e.serial_number for e in pki.load_crl(crl)) == sorted([alice, bob])
    unknown = await jobs_cli("pki", "revoke", "nobody-we-know", "--dir", str(directory))
    assert unknown.returncode == 1
    assert unknown.stderr.decode().startswith("jobs: no certificate issued to 'nobody-we-know'")


async def test_a_revoked_client_is_refused_at_the_handshake(
    authority: Certificates, tmp_path: Path
) -> None:
    assert (
        await jobs_cli("pki", "revoke", "bob", "--dir", str(authority.ca.parent))
    ).returncode == 0
    async with serving_with_crl(authority, tmp_path / "state") as server:
        async with server.stub("alice") as alice:
            await alice.list(pb.ListRequest())
        async with server.stub("bob") as bob:
            with pytest.raises(ConnectionFailed, match="TLS handshake"), connection_errors(""):
                await bob.list(pb.ListRequest())
    audit = (tmp_path / "state" / "audit.log").read_text()
    assert "certificate revoked" in audit


async def test_revoking_an_identity_closes_its_stream_on_reload(
    authority: Certificates, tmp_path: Path
) -> None:
    async with (
        serving_with_crl(authority, tmp_path / "state") as server,
        server.stub("alice") as alice,
        server.stub("bob") as bob,
        anyio.create_task_group() as tg,
    ):
        theirs = (await bob.run(pb.RunRequest(command=TICKER))).job
        ours = (await alice.run(pb.RunRequest(command=TICKER))).job
        bobs, alices = Follower(), Follower()
        tg.start_soon(bobs.follow, bob, theirs.id)
        tg.start_soon(alices.follow, alice, ours.id)
        await bobs.grows()
        await alices.grows()
        directory = authority.ca.parent
        assert (await jobs_cli("pki", "revoke", "bob", "--dir", str(directory))).returncode == 0
        await reload(server, b"closed 1 connections of revoked identities")
        with anyio.fail_after(10):
            await bobs.done.wait()
        assert bobs.ended is not None  # cut off, not ended normally
        await alices.grows()  # a valid identity's stream goes on
        async with server.stub("bob") as again:
            with pytest.raises(ConnectionFailed, match="TLS handshake"), connection_errors(""):
                await again.list(pb.ListRequest())
        # Its job was not touched: only its connection was.
        status = (await alice.status(pb.StatusRequest(job_id=ours.id))).job
        assert status.state is pb.JobState.RUNNING
        os.kill(theirs.pid, 0)
        await alice.stop(pb.StopRequest(job_id=ours.id, grace_seconds=0))
        with anyio.fail_after(10):
            await alices.done.wait()
        os.kill(theirs.pid, signal.SIGKILL)


def presented_serial(port: int, ca: Path, client: Files) -> int:
    """The serial of the certificate the server presents to a new connection."""
    context = ssl.create_default_context(cafile=str(ca))
    context.load_cert_chain(client.cert, client.key)
    context.set_alpn_protocols(["h2"])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


async def test_rotating_the_server_certificate_under_a_live_follower(
    authority: Certificates, tmp_path: Path
) -> None:
    old = serial_of(authority.server.cert)
    async with (
        serving_with_crl(authority, tmp_path / "state") as server,
        server.stub("alice") as alice,
        anyio.create_task_group() as tg,
    ):
        job = (await alice.run(pb.RunRequest(command=TICKER))).job
        follower = Follower()
        tg.start_soon(follower.follow, alice, job.id)
        await follower.grows()
        ca = pki.load_authority(authority.ca.parent)
        pki.write_identity(pki.issue_server(ca), authority.ca.parent, "server")
        new = serial_of(authority.server.cert)
        assert new != old
        await reload(server, b"reloaded the CA, certificate and key and CRL")
        await follower.grows()  # established streams go on
        assert not follower.done.is_set()
        alice_files = authority.clients["alice"]
        seen = await anyio.to_thread.run_sync(
            presented_serial, server.port, authority.ca, alice_files
        )
        assert seen == new
        # A reload that fails (a broken key) keeps the current material.
        authority.server.key.write_text("not a key\n")
        await reload(server, b"reload failed, keeping the current certificates")
        seen = await anyio.to_thread.run_sync(
            presented_serial, server.port, authority.ca, alice_files
        )
        assert seen == new
        await follower.grows()
        await alice.stop(pb.StopRequest(job_id=job.id, grace_seconds=0))
        with anyio.fail_after(10):
            await follower.done.wait()
        assert follower.ended is None

"""A real etcd for the tests: Debian's ``etcd-server``, one member on loopback ports
with a temporary data directory, optionally behind TLS.

``etcd_server(directory)`` runs one for the block; the ``etcd`` fixture (in
conftest.py) wraps it. ``EtcdServer`` can also be killed and restarted on the
same ports and data, to test what outlives an etcd restart.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.abc
import pytest

import pki
from jobs._etcd import Etcd, EtcdError, tls_context

ETCD = shutil.which("etcd") or "/usr/bin/etcd"
HAVE_ETCD = Path(ETCD).exists()
STARTUP = 30.0
"""Seconds etcd may take to elect itself and answer, on a loaded machine."""


@dataclass(frozen=True)
class EtcdTls:
    """etcd's own certificate, the CA its clients must chain to, and a client
    identity the harness itself uses."""

    ca: Path
    cert: Path
    key: Path
    client_cert: Path
    client_key: Path

    @classmethod
    def make(cls, directory: Path, client: str) -> EtcdTls:
        """A CA of etcd's own in ``directory``, etcd's certificate, and a client
        certificate (no role: etcd only checks the chain) for ``client``."""
        ca = pki.create_ca("etcd CA")
        ca_cert, _ = pki.write_identity(ca, directory, "ca")
        cert, key = pki.write_identity(pki.issue_server(ca, common_name="etcd"), directory, "etcd")
        client_cert, client_key = pki.write_identity(
            pki.issue_client(ca, client, None), directory, "client"
        )
        return cls(ca_cert, cert, key, client_cert, client_key)


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the kernel's choice for port 0)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class EtcdServer:
    """One etcd member on ``127.0.0.1``: started, killed and restarted on demand."""

    def __init__(self, directory: Path, tls: EtcdTls | None = None) -> None:
        self.directory = directory
        self.tls = tls
        self.host = "127.0.0.1"
        self.port = free_port()
        self.peer_port = free_port()
        self.process: anyio.abc.Process | None = None
        self.log = directory / "etcd.log"

    def __repr__(self) -> str:
        return f"<EtcdServer {self.url} running={self.process is not None}>"

    @property
    def url(self) -> str:
        """``etcd://HOST:PORT`` of this member."""
        return f"etcd://{self.host}:{self.port}"

    def client(self, *, cert: Path | None = None, key: Path | None = None) -> Etcd:
        """A client of this member (presenting ``cert``/``key`` when given)."""
        context = tls_context(self.tls.ca, cert, key) if self.tls is not None else None
        return Etcd(self.host, self.port, tls=context, call_timeout=2.0)

    async def start(self) -> None:
        """Start etcd and return once it answers."""
        scheme = "https" if self.tls is not None else "http"
        client_url = f"{scheme}://{self.host}:{self.port}"
        peer_url = f"http://{self.host}:{self.peer_port}"
        command = [
            ETCD,
            "--name=test",
            f"--data-dir={self.directory / 'data'}",
            f"--listen-client-urls={client_url}",
            f"--advertise-client-urls={client_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=test={peer_url}",
            "--initial-cluster-state=new",
            # Fast elections: one member, on loopback.
            "--heartbeat-interval=50",
            "--election-timeout=500",
            "--logger=zap",
            "--log-outputs=stderr",
        ]
        if self.tls is not None:
            command += [
                f"--cert-file={self.tls.cert}",
                f"--key-file={self.tls.key}",
                f"--trusted-ca-file={self.tls.ca}",
                "--client-cert-auth",
            ]
        with self.log.open("ab") as log:
            self.process = await anyio.open_process(command, stdout=log, stderr=log)
        await self._wait_ready()

    async def _wait_ready(self) -> None:
        with anyio.fail_after(STARTUP):
            while True:
                assert self.process is not None
                if self.process.returncode is not None:
                    pytest.fail(f"etcd exited {self.process.returncode}:\n{self.log.read_text()}")
                try:
                    await self._ping()
                except EtcdError:
                    await anyio.sleep(0.1)
                else:
                    return

    async def _ping(self) -> None:
        tls = self.tls
        files = (tls.client_cert, tls.client_key) if tls is not None else (None, None)
        async with self.client(cert=files[0], key=files[1]) as etcd:
            await etcd.get("health")

    async def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop etcd with ``sig`` (SIGKILL: a crash) and wait until it is gone."""
        if self.process is None:
            return
        process, self.process = self.process, None
        if process.returncode is None:
            process.send_signal(signal.Signals(sig))
        with anyio.fail_after(20):
            await process.wait()
        await process.aclose()


@contextlib.asynccontextmanager
async def etcd_server(directory: Path, tls: EtcdTls | None = None) -> AsyncIterator[EtcdServer]:
    """A running etcd for the block's duration, killed after; skips the test on a
    host without etcd."""
    if not HAVE_ETCD:
        pytest.skip("needs etcd (Debian: apt-get install etcd-server)")
    await anyio.Path(directory).mkdir(parents=True, exist_ok=True)
    server = EtcdServer(directory, tls)
    await server.start()
    try:
        yield server
    finally:
        with anyio.CancelScope(shield=True):
            await server.stop(signal.SIGKILL)

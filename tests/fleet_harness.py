"""A fleet for the tests: real ``jobs serve`` processes on 127.0.0.2-9, one CA, an
inventory with labels, and the real ``jobs`` CLI pointed at them."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest
from harness import JOBS
from pki_fixtures import Certificates

import pki
from jobs.testing import STOP_TIMEOUT, JobsServer, PemFiles, ServerDidNotStart

FLEET_ADDRESSES = [f"127.0.0.{n}" for n in range(2, 10)]
# For servers a test starts (and stops) itself.
EXTRA_ADDRESSES = [f"127.0.0.{n}" for n in range(10, 14)]


def fleet_server_cert(test_pki: Certificates, directory: Path) -> tuple[Path, Path]:
    """A server certificate for every fleet address (and the default names)."""
    ca = pki.load_identity(test_pki.ca, test_pki.ca.with_suffix(".key"))
    identity = pki.issue_server(ca, [*FLEET_ADDRESSES, *EXTRA_ADDRESSES])
    return pki.write_identity(identity, directory, "fleet-server")


def free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class FleetServer(JobsServer):
    """One ``jobs serve`` of the fleet: a name and labels, on its own loopback address.

    ``start`` takes the fleet's server identity (a certificate for every fleet
    address) and CA. ``stop`` resumes a server a test stopped with SIGSTOP first.
    """

    def __init__(
        self,
        name: str,
        host: str,
        labels: Mapping[str, str],
        state: Path,
        options: Sequence[str] = (),
    ) -> None:
        identity = (f"--label={k}={v}" for k, v in labels.items())
        super().__init__(
            state, None, "--grace=2s", f"--name={name}", *identity, *options, host=host
        )
        self.name = name
        self.labels = labels

    @property
    def addr(self) -> str:
        return self.address

    async def start(self, cert: tuple[Path, Path] | None = None, ca: Path | None = None) -> None:
        if cert is not None and ca is not None:
            self.server_files, self.ca = PemFiles(*cert), ca
        try:
            await super().start()
        except ServerDidNotStart as exc:
            pytest.fail(str(exc))

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> int:
        if self.process is None:
            return 0
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGCONT)
        return await super().stop(sig, timeout)


def inventory_text(entries: Sequence[tuple[str, str, Mapping[str, str]]]) -> str:
    """``hosts.toml`` for ``(name, addr, labels)`` entries."""
    blocks = []
    for name, addr, labels in entries:
        table = ", ".join(f'"{k}" = "{v}"' for k, v in labels.items())
        blocks.append(f'[[host]]\nname = "{name}"\naddr = "{addr}"\nlabels = {{ {table} }}\n')
    return "\n".join(blocks)


@dataclass
class Fleet:
    """Eight servers h2..h9: role=web (h2-h5) or db (h6-h9), zone=a (even) or b (odd),
    all with fleet=test; an inventory listing them; the client's environment."""

    servers: list[FleetServer]
    directory: Path
    pki: Certificates
    cert: tuple[Path, Path]
    inventories: int = 0

    @property
    def inventory(self) -> Path:
        return self.directory / "hosts.toml"

    def write_inventory(self, *extra: tuple[str, str, Mapping[str, str]]) -> Path:
        """The inventory: the eight servers plus ``extra`` entries (name, addr, labels)."""
        entries = [(s.name, s.addr, s.labels) for s in self.servers] + list(extra)
        self.inventories += 1
        path = self.directory / f"hosts-{self.inventories}.toml"
        path.write_text(inventory_text(entries))
        return path

    def env(self, inventory: Path | None = None) -> dict[str, str]:
        files = self.pki.clients["alice"]
        return {
            **os.environ,
            "JOBS_HOME": str(self.directory / "home"),
            "JOBS_INVENTORY": str(inventory or self.inventory),
            "JOBS_CA": str(self.pki.ca),
            "JOBS_CERT": str(files.cert),
            "JOBS_KEY": str(files.key),
        }

    def server(self, name: str) -> FleetServer:
        return next(s for s in self.servers if s.name == name)


@dataclass
class Result:
    status: int
    stdout: bytes
    stderr: bytes

    @property
    def err_lines(self) -> list[str]:
        return self.stderr.decode(errors="replace").splitlines()


async def jobs(
    fleet: Fleet,
    *args: str,
    inventory: Path | None = None,
    timeout: float = 50,
    env: Mapping[str, str] | None = None,
) -> Result:
    """Run the real ``jobs`` console script with the fleet's environment (and ``env``)."""
    with anyio.fail_after(timeout):
        done = await anyio.run_process(
            [JOBS, *args], env={**fleet.env(inventory), **(env or {})}, check=False, stdin=None
        )
    return Result(done.returncode, done.stdout, done.stderr)


@contextlib.asynccontextmanager
async def running_fleet(test_pki: Certificates, directory: Path) -> AsyncIterator[Fleet]:
    """The eight servers, started concurrently, stopped at the end."""
    cert = fleet_server_cert(test_pki, directory)
    servers = [
        FleetServer(
            name=f"h{n}",
            host=f"127.0.0.{n}",
            labels={"fleet": "test", "role": "web" if n <= 5 else "db", "zone": "ab"[n % 2]},
            state=directory / f"state-h{n}",
        )
        for n in range(2, 10)
    ]
    fleet = Fleet(servers, directory, test_pki, cert)
    try:
        async with anyio.create_task_group() as tg:
            for server in servers:
                tg.start_soon(server.start, cert, test_pki.ca)
        fleet.inventory.write_text(inventory_text([(s.name, s.addr, s.labels) for s in servers]))
        yield fleet
    finally:
        with anyio.CancelScope(shield=True):
            async with anyio.create_task_group() as tg:
                for server in servers:
                    tg.start_soon(server.stop)

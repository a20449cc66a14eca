"""Discovery from a real etcd: servers that register with --register are found,
joins and leaves are seen during `jobs hosts --watch` and a long `run`, and an
entry is trusted only as far as its server's certificate proves it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest
from anyio.streams.text import TextReceiveStream
from etcd_harness import EtcdServer, EtcdTls, etcd_server
from fleet_harness import Fleet, FleetServer, fleet_server_cert, jobs
from harness import JOBS
from pki_fixtures import Certificates

from jobs import fleet as fl

pytestmark = pytest.mark.slow


@pytest.fixture
async def etcd(tmp_path: Path) -> AsyncIterator[EtcdServer]:
    async with etcd_server(tmp_path / "etcd") as running:
        yield running


@pytest.fixture
def lone(test_pki: Certificates, tmp_path: Path) -> Fleet:
    """A fleet with no servers of its own and an empty inventory: only discovery."""
    cert = fleet_server_cert(test_pki, tmp_path)
    fleet = Fleet([], tmp_path, test_pki, cert)
    fleet.inventory.write_text("")
    return fleet


def registered(fleet: Fleet, etcd: EtcdServer, name: str, address: str) -> FleetServer:
    return FleetServer(
        name,
        address,
        {"tier": "x"},
        fleet.directory / f"state-{name}",
        options=(f"--register={etcd.url}", "--register-ttl=3"),
    )


async def until_registered(etcd: EtcdServer, name: str) -> None:
    """Wait until ``name`` is listed: a server registers just after it listens."""
    async with fl.Discovery(etcd.url) as discovery:
        with anyio.fail_after(20):
            while name not in {host.name for host in discovery.hosts()}:
                await discovery.changed()


async def test_hosts_watch_sees_servers_join_and_leave(lone: Fleet, etcd: EtcdServer) -> None:
    first = registered(lone, etcd, "d1", "127.0.0.10")
    second = registered(lone, etcd, "d2", "127.0.0.11")
    await first.start(lone.cert, lone.pki.ca)
    command = [JOBS, "hosts", "--discover", etcd.url, "--on", "tier=x", "--watch", "--json"]
    events: list[dict[str, Any]] = []
    try:
        async with await anyio.open_process(command, env=lone.env()) as watcher:
            try:
                assert watcher.stdout is not None
                lines = TextReceiveStream(watcher.stdout)
                buffer = ""

                async def until(name: str, status: str) -> dict[str, Any]:
                    nonlocal buffer
                    with anyio.fail_after(30):
                        while True:
                            while "\n" in buffer:
                                line, buffer = buffer.split("\n", 1)
                                event: dict[str, Any] = json.loads(line)
                                events.append(event)
                                if event["name"] == name and event["status"] == status:
                                    return event
                            buffer += await lines.receive()

                seen = await until("d1", "ok")
                assert seen["labels"]["tier"] == "x"
                assert seen["labels"]["jobs.io/os"] == "linux"  # the server's own labels
                assert seen["reachable"] is True
                await second.start(lone.cert, lone.pki.ca)
                joined = await until("d2", "ok")
                assert joined["addr"] == f"127.0.0.11:{second.port}"
                await second.stop()  # a graceful stop deregisters it
                await until("d2", "left")
            finally:
                # --watch never ends by itself: end it, or leaving the block waits forever.
                watcher.kill()
    finally:
        await second.stop()
        await first.stop()


async def test_a_host_joining_during_a_long_run_runs_it_too(lone: Fleet, etcd: EtcdServer) -> None:
    first = registered(lone, etcd, "d1", "127.0.0.12")
    second = registered(lone, etcd, "d2", "127.0.0.13")
    await first.start(lone.cert, lone.pki.ca)
    await until_registered(etcd, "d1")
    try:
        async with anyio.create_task_group() as tg:
            results = []

            async def run() -> None:
                results.append(
                    await jobs(
                        lone,
                        "run",
                        "--discover",
                        etcd.url,
                        "--on",
                        "tier=x",
                        "-f",
                        "--",
                        "sh",
                        "-c",
                        "sleep 6; echo done",
                    )
                )

            tg.start_soon(run)
            await anyio.sleep(1)
            await second.start(lone.cert, lone.pki.ca)
        result = results[0]
        assert result.status == 0, result.stderr
        assert sorted(result.stdout.decode().splitlines()) == ["[d1] done", "[d2] done"]
    finally:
        await second.stop()
        await first.stop()


async def test_a_forged_entry_is_not_trusted(
    lone: Fleet, etcd: EtcdServer, test_pki: Certificates
) -> None:
    real = registered(lone, etcd, "d1", "127.0.0.10")
    await real.start(lone.cert, lone.pki.ca)
    try:
        await until_registered(etcd, "d1")
        forged = {"Addr": real.addr, "Metadata": {"name": "evil", "tls_name": "evil.example"}}
        async with etcd.client() as client:
            await client.put("jobs/evil", json.dumps(forged).encode())
        found = await fl.discover(etcd.url)
        assert sorted(h.name for h in found) == ["d1", "evil"]
        result = await jobs(lone, "hosts", "--discover", etcd.url, "--json", "--timeout", "10s")
        rows = {row["name"]: row for row in json.loads(result.stdout)["hosts"]}
        assert rows["d1"]["reachable"] is True
        assert rows["evil"]["reachable"] is False
        assert "certificate is not trusted" in rows["evil"]["status"]
        assert result.status == 255
    finally:
        await real.stop()


async def test_discovery_of_an_unreachable_etcd_is_one_line(lone: Fleet) -> None:
    result = await jobs(lone, "hosts", "--discover", "etcd://127.0.0.1:1")
    assert result.status == 1
    assert len(result.err_lines) == 1
    assert result.err_lines[0].startswith("jobs: discovery from etcd://127.0.0.1:1: ")
    result = await jobs(lone, "hosts", "--discover", "http://x")
    assert result.err_lines == [
        "jobs: discovery from http://x: 'http://x' is not an etcd://HOST:PORT[/PREFIX] address"
    ]


async def test_discovery_over_etcd_tls(lone: Fleet, tmp_path: Path) -> None:
    tls = EtcdTls.make(tmp_path / "etcd-pki", "client")
    async with etcd_server(tmp_path / "etcd-tls", tls) as etcd:
        secure = FleetServer(
            "s1",
            "127.0.0.10",
            {"tier": "x"},
            lone.directory / "state-s1",
            options=(
                f"--register={etcd.url}",
                f"--register-ca={tls.ca}",
                f"--register-cert={tls.client_cert}",
                f"--register-key={tls.client_key}",
            ),
        )
        await secure.start(lone.cert, lone.pki.ca)
        try:
            flags = (
                f"--discover-ca={tls.ca}",
                f"--discover-cert={tls.client_cert}",
                f"--discover-key={tls.client_key}",
            )
            with anyio.fail_after(20):
                while True:
                    found = await jobs(lone, "hosts", "--discover", etcd.url, *flags, "--json")
                    assert found.status in (0, 255), found.stderr
                    names = [row["name"] for row in json.loads(found.stdout)["hosts"]]
                    if names == ["s1"]:
                        break
                    await anyio.sleep(0.2)
            ran = await jobs(
                lone,
                "run",
                "--on",
                "tier=x",
                "--discover",
                etcd.url,
                *flags,
                "-f",
                "--",
                "echo",
                "hi",
            )
            assert (ran.status, ran.stdout) == (0, b"[s1] hi\n"), ran.stderr
            # Plaintext to a TLS-only etcd, or half a client identity: one line each.
            plain = await jobs(lone, "hosts", "--discover", etcd.url, "--timeout", "3s")
            assert plain.status == 1
            assert len(plain.err_lines) == 1
            assert plain.err_lines[0].startswith(f"jobs: discovery from {etcd.url}: ")
            half = await jobs(lone, "hosts", "--discover", etcd.url, flags[1])
            assert half.status == 2
            assert "give --discover-cert and --discover-key together" in half.stderr.decode()
            alone = await jobs(lone, "hosts", flags[0])
            assert alone.status == 2
            assert "--discover-ca need --discover" in alone.stderr.decode()
            # Exported without JOBS_DISCOVER (a missing file, even): not used, no error.
            exported = await jobs(lone, "hosts", env={"JOBS_DISCOVER_CA": "/nonexistent/ca.crt"})
            assert exported.err_lines == [  # the empty inventory's answer, as without it
                "jobs: no hosts are known: write $JOBS_HOME/hosts.toml (or JOBS_INVENTORY), "
                "or pass --discover etcd://HOST:PORT"
            ]
        finally:
            await secure.stop()

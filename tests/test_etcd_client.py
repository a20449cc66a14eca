"""jobs._etcd against a real etcd: keys by prefix, leases, watches, TLS and failures."""

from __future__ import annotations

import signal
from pathlib import Path

import anyio
import pytest
from etcd_harness import EtcdServer, EtcdTls, etcd_server, free_port

from jobs._etcd import (
    Etcd,
    EtcdError,
    EventKind,
    LeaseLost,
    parse_url,
    prefix_end,
    tls_context,
)


def test_parse_url() -> None:
    url = parse_url("etcd://10.0.0.1:2379")
    assert (url.host, url.port, url.prefix) == ("10.0.0.1", 2379, "jobs/")
    assert parse_url("etcd://h:1/fleet/a").prefix == "fleet/a/"
    assert parse_url("etcd://h:1/").prefix == "jobs/"
    assert str(parse_url("etcd://h:1/x")) == "etcd://h:1/x/"
    for bad in ("http://h:1", "etcd://h", "etcd://:1", "etcd://h:x", "etcd://h:1?a=b", "h:1"):
        with pytest.raises(ValueError, match="etcd"):
            parse_url(bad)


def test_prefix_end() -> None:
    assert prefix_end(b"jobs/") == b"jobs0"
    assert prefix_end(b"a\xff") == b"b"
    assert prefix_end(b"\xff\xff") == b"\0"


async def test_keys_by_prefix(etcd: EtcdServer) -> None:
    async with etcd.client() as client:
        await client.put("jobs/a", b"1")
        await client.put("jobs/b", b"2")
        await client.put("jobsx", b"not under jobs/")
        await client.put("jobs0", b"the first key past jobs/")
        revision = await client.put("other/c", b"3")
        found, at = await client.range("jobs/")
        assert [(kv.key, kv.value) for kv in found] == [("jobs/a", b"1"), ("jobs/b", b"2")]
        assert at >= revision
        got = await client.get("jobs/a")
        assert got is not None
        assert got.value == b"1"
        assert await client.get("jobs/none") is None
        assert await client.delete("jobs/a") == 1
        assert await client.delete("jobs/", prefix=True) == 1
        assert (await client.range("jobs/"))[0] == []
        assert await client.get("jobsx") is not None
        assert await client.get("jobs0") is not None


async def test_a_key_goes_with_its_lease(etcd: EtcdServer) -> None:
    async with etcd.client() as client:
        lease = await client.grant(10)
        assert lease.ttl == 10
        await client.put("jobs/a", b"x", lease=lease.id)
        got = await client.get("jobs/a")
        assert got is not None
        assert got.lease == lease.id
        await client.revoke(lease.id)
        assert await client.get("jobs/a") is None
        with pytest.raises(LeaseLost):
            await client.revoke(lease.id)
        with pytest.raises(LeaseLost):
            await client.put("jobs/b", b"x", lease=lease.id)


async def test_keep_alive_outlives_the_ttl_and_reports_a_lost_lease(etcd: EtcdServer) -> None:
    async with etcd.client() as client:
        lease = await client.grant(2)
        await client.put("jobs/a", b"x", lease=lease.id)
        with anyio.move_on_after(4):
            await client.keep_alive(lease)
        assert await client.get("jobs/a") is not None, "the lease expired while kept alive"
        async with anyio.create_task_group() as tg:
            tg.start_soon(client.revoke, lease.id)
            with pytest.raises(LeaseLost), anyio.fail_after(10):
                await client.keep_alive(lease, interval=0.1)
        # Without keep-alives a lease expires by itself.
        other = await client.grant(1)
        await client.put("jobs/b", b"x", lease=other.id)
        with anyio.fail_after(10):
            while await client.get("jobs/b") is not None:  # noqa: ASYNC110 -- etcd, not us
                await anyio.sleep(0.2)


async def test_watch_sees_puts_deletes_and_expiries_in_order(etcd: EtcdServer) -> None:
    async with etcd.client() as client:
        await client.put("jobs/before", b"0")
        _, revision = await client.range("jobs/")
        seen = []
        async with client.watch("jobs/", start_revision=revision + 1) as events:
            lease = await client.grant(1)
            await client.put("jobs/a", b"1", lease=lease.id)
            await client.put("elsewhere", b"ignored")
            await client.put("jobs/a", b"2", lease=lease.id)
            await client.delete("jobs/before")
            with anyio.fail_after(15):
                async for event in events:
                    seen.append((event.kind, event.key, event.value))
                    if len(seen) == 4:
                        break
        assert seen == [
            (EventKind.PUT, "jobs/a", b"1"),
            (EventKind.PUT, "jobs/a", b"2"),
            (EventKind.DELETE, "jobs/before", b""),
            (EventKind.DELETE, "jobs/a", b""),  # the lease expired
        ]
        # The client is still usable after leaving the watch's block.
        assert await client.get("jobs/a") is None


async def test_watch_from_a_past_revision_replays(etcd: EtcdServer) -> None:
    async with etcd.client() as client:
        first = await client.put("jobs/a", b"1")
        await client.put("jobs/a", b"2")
        values = []
        async with client.watch("jobs/", start_revision=first) as events:
            with anyio.fail_after(10):
                async for event in events:
                    values.append(event.value)
                    if len(values) == 2:
                        break
        assert values == [b"1", b"2"]


async def test_unreachable_etcd_is_one_error() -> None:
    async with Etcd("127.0.0.1", free_port(), call_timeout=2.0) as client:
        with pytest.raises(EtcdError, match=r"cannot connect to etcd at 127\.0\.0\.1"):
            await client.get("x")
        with pytest.raises(EtcdError, match="cannot connect"):
            async with client.watch("jobs/"):
                pass


async def test_a_killed_etcd_ends_a_watch_and_a_restarted_one_answers_again(
    etcd: EtcdServer,
) -> None:
    async with etcd.client() as client:
        lease = await client.grant(30)
        await client.put("jobs/a", b"1", lease=lease.id)
        with pytest.raises(EtcdError):  # noqa: PT012 -- the watch must be running when etcd dies
            async with client.watch("jobs/") as events:
                await etcd.stop(signal.SIGKILL)
                with anyio.fail_after(10):
                    async for _ in events:
                        pass
        with pytest.raises(EtcdError), anyio.fail_after(10):
            await client.keep_alive(lease)
        await etcd.start()
        # The same client reconnects; the lease survived the restart (etcd keeps
        # leases in its data directory and extends them on restart).
        with anyio.fail_after(10):
            got = await client.get("jobs/a")
        assert got is not None
        assert got.value == b"1"


@pytest.fixture(scope="module")
def etcd_tls(tmp_path_factory: pytest.TempPathFactory) -> EtcdTls:
    return EtcdTls.make(tmp_path_factory.mktemp("etcd-pki"), "registrar")


async def test_tls_with_a_client_certificate(etcd_tls: EtcdTls, tmp_path: Path) -> None:
    async with etcd_server(tmp_path / "etcd", etcd_tls) as etcd:
        async with etcd.client(cert=etcd_tls.client_cert, key=etcd_tls.client_key) as client:
            await client.put("jobs/a", b"1")
            assert (await client.range("jobs/"))[0][0].value == b"1"
        # No client certificate: etcd refuses the connection.
        async with etcd.client() as client:
            with pytest.raises(EtcdError):
                await client.get("jobs/a")
        # A plaintext client against etcd's TLS port.
        async with Etcd(etcd.host, etcd.port, call_timeout=2.0) as client:
            with pytest.raises(EtcdError):
                await client.get("jobs/a")


def test_unreadable_tls_files_are_one_error(tmp_path: Path) -> None:
    with pytest.raises(EtcdError, match="cannot load etcd's TLS files"):
        tls_context(tmp_path / "missing.crt")

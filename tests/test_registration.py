"""`jobs serve --register etcd://...`: real servers, a real etcd, crashes of both."""

from __future__ import annotations

import json
import shutil
import signal
import time
from pathlib import Path

import anyio
import pytest
from etcd_harness import EtcdServer, EtcdTls, etcd_server
from harness import JOBS, ServerProcess
from pki_fixtures import Certificates

from gen.jobs import v1 as pb
from gen.jobs.v1 import InfoRequest
from jobs._etcd import Etcd, KeyValue
from jobs.server._serve import _advertised

pytestmark = pytest.mark.slow


async def wait_for_key(
    client: Etcd, key: str, *, present: bool = True, timeout: float = 20, not_lease: int = 0
) -> KeyValue | None:
    """Poll etcd until ``key`` exists (with a lease other than ``not_lease``) or is gone."""
    with anyio.fail_after(timeout):
        while True:
            found = await client.get(key)
            if present and found is not None and found.lease != not_lease:
                return found
            if not present and found is None:
                return None
            await anyio.sleep(0.05)


def server(
    test_pki: Certificates, tmp_path: Path, etcd: EtcdServer, *options: str
) -> ServerProcess:
    return ServerProcess(
        test_pki,
        tmp_path / "state",
        f"--register={etcd.url}",
        "--grace=1s",
        *options,
    )


async def test_registers_as_etcd_naming_says_and_deregisters_on_stop(
    test_pki: Certificates, tmp_path: Path, etcd: EtcdServer
) -> None:
    web = server(test_pki, tmp_path, etcd, "--name=web-1", "--label=tier=web", "--label=zone=a")
    web.options = (f"--register={etcd.url}/fleet/eu", *web.options[1:])
    async with etcd.client() as client, web:
        found = await wait_for_key(client, "fleet/eu/web-1")
        assert found is not None
        assert found.lease != 0
        entry = json.loads(found.value)
        assert entry["Addr"] == f"127.0.0.1:{web.port}"
        metadata = entry["Metadata"]
        assert metadata["name"] == "web-1"
        assert metadata["labels"]["tier"] == "web"
        assert metadata["labels"]["zone"] == "a"
        assert metadata["labels"]["jobs.io/os"] == "linux"
        assert metadata["version"] == metadata["labels"]["jobs.io/version"]
        # The test certificate names localhost, not web-1: clients verify that name.
        assert metadata["tls_name"] == "localhost"
        assert await web.stop() == 0
        # Revoked on the way out: gone at once, not after the lease's TTL.
        assert await client.get("fleet/eu/web-1") is None
    assert b"deregistered fleet/eu/web-1" in web.log


async def test_a_key_deleted_under_a_live_lease_is_put_back(
    test_pki: Certificates, tmp_path: Path, etcd: EtcdServer
) -> None:
    web = server(test_pki, tmp_path, etcd, "--name=h1")
    neighbour = server(test_pki, tmp_path / "n", etcd, "--name=h10")  # h1 is its prefix
    async with etcd.client() as client, web, neighbour:
        first = await wait_for_key(client, "jobs/h1")
        assert first is not None
        assert await wait_for_key(client, "jobs/h10") is not None
        for _ in range(2):  # every time, not once
            assert await client.delete("jobs/h1") == 1
            back = await wait_for_key(client, "jobs/h1", timeout=5)
            assert back is not None
            assert (back.value, back.lease) == (first.value, first.lease)  # same lease
        # The neighbour's deletion is the neighbour's to mend, not ours.
        await client.delete("jobs/h10")
        assert await wait_for_key(client, "jobs/h10", timeout=5) is not None
        assert (await client.get("jobs/h1")) is not None
    assert web.log.count(b"jobs/h1 was deleted under a live lease") == 2


async def test_delisted_before_its_jobs_are_stopped(
    test_pki: Certificates, tmp_path: Path, etcd: EtcdServer
) -> None:
    stopping = server(test_pki, tmp_path, etcd, "--name=stopping", "--grace=4s")
    async with etcd.client() as client, stopping:
        await wait_for_key(client, "jobs/stopping")
        async with stopping.stub() as stub:
            # Ignores SIGTERM: the server's shutdown lasts the whole grace.
            await stub.run(pb.RunRequest(command=["sh", "-c", "trap '' TERM; sleep 60"]))
        assert stopping.process is not None
        stopping.process.send_signal(signal.SIGTERM)
        await wait_for_key(client, "jobs/stopping", present=False, timeout=3)
        assert stopping.process.returncode is None, "delisted only once the server had exited"
        assert await stopping.stop() == 0


def test_advertised_address() -> None:
    assert _advertised("127.0.0.2", 50051, "web-1") == "127.0.0.2:50051"
    assert _advertised("0.0.0.0", 50051, "web-1") == "web-1:50051"
    assert _advertised("::", 7, "web-1") == "web-1:7"
    assert _advertised("::1", 7, "web-1") == "[::1]:7"


async def test_advertise_is_what_is_registered(
    test_pki: Certificates, tmp_path: Path, etcd: EtcdServer
) -> None:
    public = server(test_pki, tmp_path, etcd, "--name=public", "--advertise=jobs.example.com:443")
    async with etcd.client() as client, public:
        found = await wait_for_key(client, "jobs/public")
        assert found is not None
        assert json.loads(found.value)["Addr"] == "jobs.example.com:443"


async def test_a_crashed_server_disappears_when_its_lease_expires(
    test_pki: Certificates, tmp_path: Path, etcd: EtcdServer
) -> None:
    crashing = server(test_pki, tmp_path, etcd, "--name=crashing", "--register-ttl=3")
    async with etcd.client() as client, crashing:
        await wait_for_key(client, "jobs/crashing")
        await crashing.stop(signal.SIGKILL)
        killed = time.monotonic()
        assert await client.get("jobs/crashing") is not None  # nobody deregistered it
        await wait_for_key(client, "jobs/crashing", present=False, timeout=15)
        # etcd expires a lease between TTL and TTL + its check period (500 ms).
        assert time.monotonic() - killed < 3 + 5


async def test_etcd_restarts_and_losses_never_stop_the_server(
    test_pki: Certificates, tmp_path: Path, etcd: EtcdServer
) -> None:
    survivor = server(test_pki, tmp_path, etcd, "--name=survivor")
    async with etcd.client() as client, survivor:
        first = await wait_for_key(client, "jobs/survivor")
        assert first is not None

        # etcd crashes: the server keeps serving, and says it is retrying.
        await etcd.stop(signal.SIGKILL)
        await survivor.wait_log(b"registration in etcd: ")
        async with survivor.stub("alice-ro") as stub:
            assert (await stub.info(InfoRequest())).name == "survivor"

        # etcd comes back with its data: registered again, on a new lease.
        await etcd.start()
        again = await wait_for_key(client, "jobs/survivor", not_lease=first.lease, timeout=30)
        assert again is not None
        assert again.value == first.value

        # etcd comes back empty (a new cluster): registered again.
        await etcd.stop(signal.SIGKILL)
        shutil.rmtree(etcd.directory / "data")
        await etcd.start()
        assert await wait_for_key(client, "jobs/survivor", timeout=30) is not None

        # Someone revokes the lease (the key goes with it): registered again.
        current = await client.get("jobs/survivor")
        assert current is not None
        await client.revoke(current.lease)
        assert await wait_for_key(client, "jobs/survivor", not_lease=current.lease) is not None
        assert b"registering again" in survivor.log


async def test_etcd_down_at_start_does_not_stop_the_server(
    test_pki: Certificates, tmp_path: Path
) -> None:
    (tmp_path / "etcd").mkdir()
    etcd = EtcdServer(tmp_path / "etcd")  # not started yet
    early = server(test_pki, tmp_path, etcd, "--name=early")
    async with early:
        async with early.stub("alice-ro") as stub:
            assert (await stub.info(InfoRequest())).name == "early"
        await early.wait_log(b"retrying in")
        try:
            await etcd.start()
            async with etcd.client() as client:
                assert await wait_for_key(client, "jobs/early", timeout=30) is not None
        finally:
            await etcd.stop()


@pytest.fixture(scope="module")
def etcd_tls(tmp_path_factory: pytest.TempPathFactory) -> EtcdTls:
    return EtcdTls.make(tmp_path_factory.mktemp("etcd-pki"), "jobs-server")


async def test_registers_over_etcd_tls(
    test_pki: Certificates, tmp_path: Path, etcd_tls: EtcdTls
) -> None:
    async with etcd_server(tmp_path / "etcd", etcd_tls) as etcd:
        secure = server(
            test_pki,
            tmp_path,
            etcd,
            "--name=secure",
            f"--register-ca={etcd_tls.ca}",
            f"--register-cert={etcd_tls.client_cert}",
            f"--register-key={etcd_tls.client_key}",
        )
        async with (
            etcd.client(cert=etcd_tls.client_cert, key=etcd_tls.client_key) as client,
            secure,
        ):
            assert await wait_for_key(client, "jobs/secure") is not None
            await secure.stop()
            assert await client.get("jobs/secure") is None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--register=http://127.0.0.1:2379"], "etcd://HOST:PORT"),
        (["--register=etcd://127.0.0.1"], "needs a host and a port"),
        (["--register-ca=/nonexistent"], "need --register"),
        (
            ["--register=etcd://127.0.0.1:2379", "--register-ca=/nonexistent/ca.crt"],
            "cannot load etcd's TLS files",
        ),
    ],
)
async def test_bad_registration_options_are_one_line(
    tmp_path: Path, options: list[str], message: str
) -> None:
    result = await anyio.run_process(
        [JOBS, "serve", f"--state-dir={tmp_path}", "--listen=127.0.0.1:0", *options],
        env={"JOBS_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    stderr = result.stderr.decode()
    assert result.returncode in (1, 2), stderr
    assert message in stderr
    assert stderr.count("\n") == 1, stderr
    assert "Traceback" not in stderr

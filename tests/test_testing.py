"""jobs.testing: the real `jobs serve` subprocess that the tests and the benchmark
suite share, with its throwaway PKI."""

from __future__ import annotations

import os
import signal
import sys
import types
from pathlib import Path

import anyio
import pytest
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from harness import process_gone

import jobs.testing
from gen.jobs import v1 as pb
from jobs.testing import JobsServer, ServerDidNotStart, write_pki

# A stand-in for `jobs serve` (the arguments after -c land in sys.argv): it says where
# it listens, then writes 2 MiB on stderr, far more than a pipe holds, and exits.
CHATTY = (
    "import sys\n"
    "print('listening on 127.0.0.1:4242', file=sys.stderr, flush=True)\n"
    "for _ in range(2048):\n"
    "    sys.stderr.write('x' * 1023 + '\\n')\n"
    "sys.stderr.flush()\n"
)


async def test_a_server_with_a_throwaway_pki_serves_its_clients(tmp_path: Path) -> None:
    pki = write_pki(tmp_path / "pki", clients={"ci": "full", "watcher": "readonly"})
    names = {"ca", "server", "ci", "watcher"}
    assert {p.name for p in (tmp_path / "pki").iterdir()} == {
        f"{name}.{kind}" for name in names for kind in ("crt", "key")
    }
    async with JobsServer(tmp_path / "state", pki, "--grace=1s") as server:
        assert server.port != 0
        assert repr(server).startswith(f"<JobsServer 127.0.0.1:{server.port} pid=")
        ci = server.channel(pki.clients["ci"])
        watcher = server.channel(pki.clients["watcher"])
        try:
            job = (await pb.JobServiceStub(ci).run(pb.RunRequest(command=["true"]))).job
            assert job.owner == "ci"
            with pytest.raises(GRPCError) as denied:
                await pb.JobServiceStub(watcher).run(pb.RunRequest(command=["true"]))
            assert denied.value.status is Status.PERMISSION_DENIED
            assert server.rss() > 0
            assert server.rss_peak() >= server.rss()
        finally:
            ci.close()
            watcher.close()
        pid = server.pid
    assert server.process is None
    assert process_gone(pid)
    assert f"listening on 127.0.0.1:{server.port}".encode() in server.log


async def test_it_starts_again_on_the_same_state(tmp_path: Path) -> None:
    pki = write_pki(tmp_path / "pki")
    server = JobsServer(tmp_path / "state", pki)
    await server.start()
    channel = server.channel(pki.clients["client"])
    try:
        job = (await pb.JobServiceStub(channel).run(pb.RunRequest(command=["true"]))).job
    finally:
        channel.close()
    assert await server.stop() == 0
    await server.start()
    channel = server.channel(pki.clients["client"])
    try:
        listed = (await pb.JobServiceStub(channel).list(pb.ListRequest())).jobs
    finally:
        channel.close()
    assert [j.id for j in listed] == [job.id]
    assert await server.stop() == 0
    assert server.log.count(b"listening on") == 2


async def test_another_loopback_address_and_environment(tmp_path: Path) -> None:
    pki = write_pki(tmp_path / "pki", server_names=["127.0.0.2"])
    env = {"JOBS_SERVER_NAME": "testing-7"}
    async with JobsServer(tmp_path / "state", pki, host="127.0.0.2", env=env) as server:
        assert server.address == f"127.0.0.2:{server.port}"
        channel = server.channel(pki.clients["client"])
        try:
            info = await pb.JobServiceStub(channel).info(pb.InfoRequest())
        finally:
            channel.close()
    assert info.name == "testing-7"


async def test_a_server_that_fails_to_start_says_why(tmp_path: Path) -> None:
    pki = write_pki(tmp_path / "pki")
    (tmp_path / "pki" / "server.key").unlink()
    server = JobsServer(tmp_path / "state", pki)
    with pytest.raises(ServerDidNotStart, match="ended early") as failed:
        await server.start()
    assert b"No such file or directory" in failed.value.log
    assert "No such file or directory" in str(failed.value)
    assert server.process is None


async def test_a_server_that_never_listens_is_killed(tmp_path: Path) -> None:
    pki = write_pki(tmp_path / "pki")
    silent = (
        sys.executable,
        "-c",
        "import os, time; print(os.getpid(), flush=True); time.sleep(3600)",
    )
    server = JobsServer(tmp_path / "state", pki, command=silent, start_timeout=0.5)
    rescued: list[int] = []

    async def rescue() -> None:
        # Were it not killed, start() would wait for it: kill it here, and fail.
        await anyio.sleep(15)
        rescued.append(int(server.log.split()[0]))
        os.kill(rescued[0], signal.SIGKILL)

    async with anyio.create_task_group() as tg:
        tg.start_soon(rescue)
        with pytest.raises(ServerDidNotStart, match=r"said nothing of a port in 0\.5s") as failed:
            await server.start()
        tg.cancel_scope.cancel()
    assert not rescued, "start() waited for a server that never listened instead of killing it"
    assert process_gone(int(failed.value.log.split()[0]))
    assert server.process is None


async def test_the_log_is_drained_to_its_end(tmp_path: Path) -> None:
    pki = write_pki(tmp_path / "pki")
    server = JobsServer(tmp_path / "state", pki, command=(sys.executable, "-c", CHATTY))
    await server.start()
    assert server.port == 4242
    assert server.process is not None
    try:
        with anyio.fail_after(20):
            await server.process.wait()  # it did not block on a full pipe
    finally:
        code = await server.stop()
    assert code == 0
    assert server.log.count(b"x" * 1023 + b"\n") == 2048


def test_the_public_surface_is_all() -> None:
    def defined_here(value: object) -> bool:
        if isinstance(value, type | types.FunctionType):
            return value.__module__ == "jobs.testing"
        return isinstance(value, str | int | float)  # its constants

    public = {
        name
        for name, value in vars(jobs.testing).items()
        if not name.startswith("_") and defined_here(value)
    }
    assert public == set(jobs.testing.__all__)

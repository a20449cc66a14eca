"""A server not running as root, as systemd's ``User=`` starts one: jobs run as the
server's own user and hold none of its capabilities; other users, namespaces and
limits are refused with one clear answer; stops and timeouts still end every
process of a job (its process group)."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from harness import JOBS, process_gone

from gen.jobs import v1 as pb
from jobs.client import open_channel
from jobs.testing import JobsServer

SETPRIV = shutil.which("setpriv")

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or SETPRIV is None,
    reason="needs root and setpriv (util-linux) to start a server as another user",
)

NOBODY = pwd.getpwnam("nobody")


@contextlib.contextmanager
def nobodys_directory() -> Iterator[Path]:
    """A directory the server (as nobody) owns, removed afterwards."""
    directory = Path(tempfile.mkdtemp(prefix="jobs-unprivileged-"))
    directory.chmod(0o755)
    os.chown(directory, NOBODY.pw_uid, NOBODY.pw_gid)
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


class UnprivilegedServer(JobsServer):
    """`jobs serve` as nobody, with its development PKI in a home of its own.

    setpriv gives it one ambient capability, CAP_DAC_READ_SEARCH, only so that
    it can reach this Python (under /root on these machines); a deployment gives
    one the same way (CAP_NET_BIND_SERVICE for a port below 1024), and its jobs
    must not inherit it.
    """

    def __init__(self, directory: Path) -> None:
        assert SETPRIV is not None
        command = (
            SETPRIV,
            f"--reuid={NOBODY.pw_uid}",
            f"--regid={NOBODY.pw_gid}",
            "--clear-groups",
            "--inh-caps=+dac_read_search",
            "--ambient-caps=+dac_read_search",
            JOBS,
        )
        home = directory / "home"
        super().__init__(directory / "state", None, command=command, env={"JOBS_HOME": str(home)})
        self.home = home

    @contextlib.asynccontextmanager
    async def stub(self) -> AsyncIterator[pb.JobServiceStub]:
        pki = self.home / "pki"
        channel = open_channel(
            "127.0.0.1",
            self.port,
            ca=pki / "ca.crt",
            cert=pki / "nobody.crt",  # the development identity is the serving user's
            key=pki / "nobody.key",
        )
        try:
            yield pb.JobServiceStub(channel)
        finally:
            channel.close()


@pytest.fixture
async def server() -> AsyncIterator[UnprivilegedServer]:
    with nobodys_directory() as directory:
        running = UnprivilegedServer(directory)
        await running.start()
        try:
            yield running
        finally:
            assert await running.stop() == 0


async def output_of(stub: pb.JobServiceStub, job_id: str) -> bytes:
    return b"".join(
        [item.data async for item in stub.logs(pb.LogsRequest(job_id=job_id, follow=True))]
    )


async def test_jobs_run_as_the_server_with_none_of_its_capabilities(
    server: UnprivilegedServer,
) -> None:
    assert b"no writable cgroups" in server.log  # contained by process group
    script = "id -u; id -g; grep -E '^Cap(Inh|Prm|Eff|Amb):' /proc/self/status"
    async with server.stub() as stub:
        job = (await stub.run(pb.RunRequest(command=["sh", "-c", script]))).job
        assert (job.user, job.uid) == ("nobody", NOBODY.pw_uid)
        out = (await output_of(stub, job.id)).decode().split("\n")
        final = (await stub.wait(pb.WaitRequest(job_id=job.id))).job
    assert final.exit_code == 0
    assert out[:2] == [str(NOBODY.pw_uid), str(NOBODY.pw_gid)]
    capabilities = dict(line.split(":") for line in out[2:] if line)
    assert {name: int(value, 16) for name, value in capabilities.items()} == {
        "CapInh": 0,
        "CapPrm": 0,
        "CapEff": 0,
        "CapAmb": 0,
    }
    for path in (server.state_dir, server.home / "pki"):
        assert (path.stat().st_uid, path.stat().st_mode & 0o777) == (NOBODY.pw_uid, 0o700)


@pytest.mark.parametrize(
    ("request_", "status", "message"),
    [
        (
            pb.RunRequest(command=["true"], user="root"),
            Status.PERMISSION_DENIED,
            "jobs may not run as user 'root' on this server",
        ),
        (
            pb.RunRequest(command=["true"], user="daemon"),
            Status.PERMISSION_DENIED,
            "jobs may not run as user 'daemon' on this server",
        ),
        (
            pb.RunRequest(command=["true"], isolation=[pb.Namespace["PID"]]),
            Status.FAILED_PRECONDITION,
            "namespaces need a server running as root",
        ),
        (
            pb.RunRequest(command=["true"], limits=pb.Limits(memory=64 << 20)),
            Status.FAILED_PRECONDITION,
            "this host offers no writable cgroups",
        ),
    ],
    ids=["root", "another-user", "namespaces", "limits"],
)
async def test_what_it_cannot_do_is_refused_in_one_answer(
    server: UnprivilegedServer, request_: pb.RunRequest, status: Status, message: str
) -> None:
    async with server.stub() as stub:
        with pytest.raises(GRPCError) as caught:
            await stub.run(request_)
        assert caught.value.status is status
        assert message in (caught.value.message or "")
        assert not (await stub.list(pb.ListRequest())).jobs


async def test_stop_and_timeout_end_every_process_of_the_job(server: UnprivilegedServer) -> None:
    script = "sleep 60 & echo $!; exec sleep 60"
    async with server.stub() as stub:
        stopped = (await stub.run(pb.RunRequest(command=["sh", "-c", script]))).job
        timed = (
            await stub.run(pb.RunRequest(command=["sh", "-c", script], timeout_seconds=0.5))
        ).job
        children = []
        for job in (stopped, timed):
            async for item in stub.logs(pb.LogsRequest(job_id=job.id, follow=True)):
                children.append(int(item.data))
                break
        final = (await stub.stop(pb.StopRequest(job_id=stopped.id, grace_seconds=1))).job
        assert final.state is pb.JobState.STOPPED
        assert final.signal == signal.SIGTERM
        ended = (await stub.wait(pb.WaitRequest(job_id=timed.id))).job
        assert ended.state is pb.JobState.TIMED_OUT
    with anyio.fail_after(5):
        while not all(process_gone(pid) for pid in children):  # noqa: ASYNC110 -- the kernel, not us
            await anyio.sleep(0.05)

"""Least privilege through a real `jobs serve`: who jobs run as, what they can reach,
and one server per state directory."""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from harness import JOBS, ServerProcess, needs_namespaces, needs_root, needs_v1
from pki_fixtures import Certificates

from gen.jobs import v1 as pb
from jobs._core.manager import cgroup_scope
from jobs.client import open_channel
from jobs.testing import JobsServer

pytestmark = needs_root

PYTHON = "/usr/bin/python3"
PROBE = """
import errno, os, sys
for path in sys.argv[1:]:
    try:
        if path.startswith(("pid:", "kill:")):
            os.kill(int(path.split(":")[1]), 0 if path.startswith("pid:") else 15)
        elif os.path.isdir(path):
            os.listdir(path)
        else:
            open(path, "rb").read(1)
        print(path, "OK")
    except OSError as exc:
        print(path, errno.errorcode[exc.errno])
"""
"""Prints each path with OK or the errno opening it (a directory: listing it;
``pid:N``: signal 0 to N; ``kill:N``: SIGTERM to N) failed with."""


@contextlib.contextmanager
def open_directory() -> Iterator[Path]:
    """A directory anyone may traverse (pytest's own are 0700 root), removed afterwards."""
    directory = Path(tempfile.mkdtemp(prefix="jobs-t13-"))
    directory.chmod(0o755)
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def system_user() -> Iterator[str]:
    """A user made for the test with useradd, removed with userdel afterwards."""
    name = f"jt13{uuid.uuid4().hex[:8]}"
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
        check=True,
        capture_output=True,
    )
    try:
        yield name
    finally:
        subprocess.run(["userdel", name], check=False, capture_output=True)


class DevServer(JobsServer):
    """`jobs serve` exactly as a new root user starts it: no TLS flags, a home of its own
    (the development PKI is made there on first start), the production user policy."""

    def __init__(self, home: Path, *options: str) -> None:
        super().__init__(home / "state", None, *options, env={"JOBS_HOME": str(home)})
        self.home = home

    @contextlib.asynccontextmanager
    async def stub(self) -> AsyncIterator[pb.JobServiceStub]:
        pki = self.home / "pki"
        channel = open_channel(
            "127.0.0.1", self.port, ca=pki / "ca.crt", cert=pki / "root.crt", key=pki / "root.key"
        )
        try:
            yield pb.JobServiceStub(channel)
        finally:
            channel.close()


async def run(stub: pb.JobServiceStub, *command: str, user: str = "") -> tuple[pb.Job, bytes]:
    """Run ``command`` to its end; its final status and its stdout."""
    job = (await stub.run(pb.RunRequest(command=list(command), user=user))).job
    out = b""
    async for item in stub.logs(pb.LogsRequest(job_id=job.id, follow=True)):
        if item.stream is pb.Stream.STDOUT:
            out += item.data
    return (await stub.wait(pb.WaitRequest(job_id=job.id))).job, out


@pytest.fixture
async def dev_server() -> AsyncIterator[DevServer]:
    with open_directory() as directory:
        server = DevServer(directory / "home")
        await server.start()
        try:
            yield server
        finally:
            assert await server.stop() == 0


async def test_a_default_job_runs_as_nobody(dev_server: DevServer) -> None:
    nobody = pwd.getpwnam("nobody")
    async with dev_server.stub() as stub:
        job, out = await run(stub, "sh", "-c", 'id -u; id -g; id -G; echo "$HOME"')
    assert out.decode().split() == [
        str(nobody.pw_uid),
        str(nobody.pw_gid),
        *map(str, os.getgrouplist("nobody", nobody.pw_gid)),
        nobody.pw_dir,
    ]
    assert (job.user, job.uid) == ("nobody", nobody.pw_uid)
    record = (dev_server.state_dir / "jobs" / job.id / "job.json").read_text()
    assert '"user": "nobody"' in record
    inspected = await anyio.run_process(
        [JOBS, "inspect", job.id],
        env={
            **os.environ,
            "JOBS_HOME": str(dev_server.home),
            "JOBS_ADDR": f"127.0.0.1:{dev_server.port}",
        },
    )
    assert json.loads(inspected.stdout)[0]["user"] == "nobody"


async def test_a_default_job_reaches_nothing_of_the_server(dev_server: DevServer) -> None:
    pki, state = dev_server.home / "pki", dev_server.state_dir
    for key in ("ca.key", "server.key", "root.key"):
        assert (pki / key).stat().st_mode & 0o777 == 0o600
    for directory in (pki, state, state / "jobs"):
        assert directory.stat().st_mode & 0o777 == 0o700
    async with dev_server.stub() as stub:
        other = (await stub.run(pb.RunRequest(command=["sh", "-c", "echo secret; sleep 30"]))).job
        output = next((state / "jobs" / other.id / "output").iterdir())
        targets = [
            pki / "ca.key",
            pki / "server.key",
            state,
            state / "jobs" / other.id,
            output,
            f"pid:{dev_server.process.pid if dev_server.process else 0}",
        ]
        _, out = await run(stub, PYTHON, "-c", PROBE, *map(str, targets))
        await stub.stop(pb.StopRequest(job_id=other.id, grace_seconds=0))
    verdicts = dict(line.rsplit(" ", 1) for line in out.decode().splitlines())
    assert verdicts == {
        str(pki / "ca.key"): "EACCES",
        str(pki / "server.key"): "EACCES",
        str(state): "EACCES",
        str(state / "jobs" / other.id): "EACCES",
        str(output): "EACCES",
        str(targets[-1]): "EPERM",  # the server
    }


async def test_a_job_cannot_signal_another_users_job() -> None:
    with open_directory() as directory, system_user() as user:
        server = DevServer(directory / "home", f"--allow-user={user}")
        await server.start()
        try:
            async with server.stub() as stub:
                theirs = (await stub.run(pb.RunRequest(command=["sleep", "30"], user=user))).job
                _, out = await run(stub, PYTHON, "-c", PROBE, f"kill:{theirs.pid}")
                assert out.decode().split() == [f"kill:{theirs.pid}", "EPERM"]
                status = (await stub.status(pb.StatusRequest(job_id=theirs.id))).job
                assert status.state is pb.JobState.RUNNING
                await stub.stop(pb.StopRequest(job_id=theirs.id, grace_seconds=0))
        finally:
            assert await server.stop() == 0


async def test_an_allowed_user_writes_files_owned_by_it() -> None:
    with open_directory() as directory, system_user() as user:
        shared = directory / "shared"
        shared.mkdir()
        shared.chmod(0o1777)
        server = DevServer(directory / "home", f"--allow-user={user}")
        await server.start()
        try:
            async with server.stub() as stub:
                job, _ = await run(stub, "touch", str(shared / "made"), user=user)
                assert job.exit_code == 0
                uid = pwd.getpwnam(user).pw_uid
                assert (job.user, job.uid) == (user, uid)
                assert (shared / "made").stat().st_uid == uid
                # By uid too.
                job, out = await run(stub, "id", "-un", user=str(uid))
                assert out == f"{user}\n".encode()
            cli = await anyio.run_process(
                [JOBS, "run", "-f", "--user", user, "--", "id", "-un"],
                env={
                    **os.environ,
                    "JOBS_HOME": str(server.home),
                    "JOBS_ADDR": f"127.0.0.1:{server.port}",
                },
            )
            assert cli.stdout == f"{user}\n".encode()
        finally:
            assert await server.stop() == 0


@needs_namespaces
async def test_a_job_in_a_pid_namespace_runs_as_its_user(dev_server: DevServer) -> None:
    async with dev_server.stub() as stub:
        job = (
            await stub.run(
                pb.RunRequest(
                    command=["sh", "-c", "id -u; sed -n 's/^Uid:[[:space:]]*//p' /proc/1/status"],
                    isolation=[pb.Namespace["PID"]],
                )
            )
        ).job
        out = b""
        async for item in stub.logs(pb.LogsRequest(job_id=job.id, follow=True)):
            out += item.data
        final = (await stub.wait(pb.WaitRequest(job_id=job.id))).job
    # The command and its init (PID 1 of the namespace, which mounted /proc as root
    # before it became the user) both run as the job's user: nothing of the job
    # keeps the server's privileges.
    uid = pwd.getpwnam("nobody").pw_uid
    assert out.split(b"\n")[0] == str(uid).encode(), out
    assert out.split(b"\n")[1].split() == [str(uid).encode()] * 4, out
    assert final.exit_code == 0


@pytest.mark.parametrize(
    "isolation",
    [
        [],
        pytest.param(["PID"], marks=needs_namespaces),
        pytest.param(["MOUNT", "NET"], marks=needs_namespaces),
    ],
)
async def test_the_working_directory_and_command_are_the_users_to_reach(
    dev_server: DevServer, isolation: list[str]
) -> None:
    with open_directory() as directory:
        private = directory / "private"
        private.mkdir(mode=0o700)  # root's: nobody may not enter it
        script = directory / "script"
        script.write_text("#!/bin/sh\necho ran\n")
        script.chmod(0o700)  # root's: nobody may not execute it
        namespaces = [pb.Namespace[name] for name in isolation]
        async with dev_server.stub() as stub:
            for request, message in (
                (
                    pb.RunRequest(command=["pwd"], cwd=str(private), isolation=namespaces),
                    f"working directory '{private}': permission denied",
                ),
                (
                    pb.RunRequest(command=[str(script)], isolation=namespaces),
                    f"command '{script}': permission denied (not executable?)",
                ),
            ):
                with pytest.raises(GRPCError) as caught:
                    await stub.run(request)
                assert caught.value.status is Status.FAILED_PRECONDITION
                assert caught.value.message == message
            assert not (await stub.list(pb.ListRequest())).jobs  # nothing started, nothing kept
            # What the user may reach still runs, in the isolation asked for.
            job = (
                await stub.run(
                    pb.RunRequest(command=["pwd"], cwd=str(directory), isolation=namespaces)
                )
            ).job
            final = (await stub.wait(pb.WaitRequest(job_id=job.id))).job
            assert final.exit_code == 0


async def test_a_job_as_nobody_can_open_its_own_output_by_name(dev_server: DevServer) -> None:
    script = "echo out > /dev/stdout; echo err > /dev/stderr; echo fd >> /proc/self/fd/1"
    async with dev_server.stub() as stub:
        job = (await stub.run(pb.RunRequest(command=["sh", "-c", script]))).job
        final = (await stub.wait(pb.WaitRequest(job_id=job.id))).job
        items = [item async for item in stub.logs(pb.LogsRequest(job_id=job.id))]
    streams = {
        stream: b"".join(i.data for i in items if i.stream is stream)
        for stream in (pb.Stream.STDOUT, pb.Stream.STDERR)
    }
    assert (final.exit_code, final.user) == (0, "nobody")
    assert streams == {pb.Stream.STDOUT: b"out\nfd\n", pb.Stream.STDERR: b"err\n"}


async def test_a_home_the_user_may_not_enter_means_slash(dev_server: DevServer) -> None:
    # The default working directory is the job's HOME, which the call may name; one
    # the user cannot enter is no error (as login would), unlike a --cwd.
    with open_directory() as directory:
        private = directory / "private"
        private.mkdir(mode=0o700)  # root's: nobody may not enter it
        request = pb.RunRequest(command=["pwd"], env=[pb.EnvVar("HOME", str(private))])
        async with dev_server.stub() as stub:
            job = (await stub.run(request)).job
            final = (await stub.wait(pb.WaitRequest(job_id=job.id))).job
            out = b"".join([item.data async for item in stub.logs(pb.LogsRequest(job_id=job.id))])
    assert (final.exit_code, out) == (0, b"/\n")


@pytest.mark.parametrize(
    ("user", "status"),
    [
        ("root", Status.PERMISSION_DENIED),  # never without --allow-user root
        ("0", Status.PERMISSION_DENIED),
        ("daemon", Status.PERMISSION_DENIED),  # exists, not allowed
        ("no-such-user-here", Status.FAILED_PRECONDITION),
        ("4000000000", Status.FAILED_PRECONDITION),
    ],
)
async def test_users_the_policy_refuses(dev_server: DevServer, user: str, status: Status) -> None:
    async with dev_server.stub() as stub:
        with pytest.raises(GRPCError) as caught:
            await stub.run(pb.RunRequest(command=["true"], user=user))
        assert caught.value.status is status
        assert user in (caught.value.message or "")
        assert not (await stub.list(pb.ListRequest())).jobs


async def test_root_when_named_explicitly() -> None:
    with open_directory() as directory:
        server = DevServer(directory / "home", "--allow-user=root")
        await server.start()
        try:
            async with server.stub() as stub:
                _, default = await run(stub, "id", "-u")
                job, out = await run(stub, "id", "-u", user="root")
            assert default == f"{pwd.getpwnam('nobody').pw_uid}\n".encode()
            assert (job.user, job.uid, out) == ("root", 0, b"0\n")
        finally:
            assert await server.stop() == 0


async def test_serve_refuses_an_unknown_user_before_anything() -> None:
    with open_directory() as directory:
        env = {**os.environ, "JOBS_HOME": str(directory / "home")}
        result = await anyio.run_process(
            [JOBS, "serve", "--listen=127.0.0.1:0", "--allow-user=no-such-user-here"],
            env=env,
            check=False,
        )
        assert result.returncode == 1
        assert result.stderr.decode() == "jobs: no user 'no-such-user-here' on this host\n"
        assert not (directory / "home").exists()


async def test_a_second_server_on_the_same_state_directory_changes_nothing(
    test_pki: Certificates, tmp_path: Path
) -> None:
    first = ServerProcess(test_pki, tmp_path / "state")
    await first.start()
    try:
        async with first.stub() as stub:
            job = (await stub.run(pb.RunRequest(command=["sleep", "30"]))).job
            before = sorted(p.name for p in (tmp_path / "state" / "jobs").iterdir())
            with anyio.fail_after(20):
                second = await anyio.run_process(
                    [
                        JOBS,
                        "serve",
                        "--listen=127.0.0.1:0",
                        f"--ca={test_pki.ca}",
                        f"--cert={test_pki.server.cert}",
                        f"--key={test_pki.server.key}",
                        f"--state-dir={tmp_path / 'state'}",
                    ],
                    check=False,
                )
            assert second.returncode == 1
            assert first.process is not None
            assert second.stderr.decode() == (
                f"jobs: the state directory {tmp_path / 'state'} is in use by process "
                f"{first.process.pid}\n"
            )
            status = (await stub.status(pb.StatusRequest(job_id=job.id))).job
            assert status.state is pb.JobState.RUNNING
            os.kill(status.pid, 0)  # still there, not swept
            assert sorted(p.name for p in (tmp_path / "state" / "jobs").iterdir()) == before
            # Its cgroup is still there too: later jobs keep working.
            _, out = await run(stub, "echo", "still serving")
            assert out == b"still serving\n"
            await stub.stop(pb.StopRequest(job_id=job.id, grace_seconds=0))
    finally:
        assert await first.stop() == 0


@needs_v1
async def test_a_base_cgroup_removed_under_a_running_server_is_recreated(
    test_pki: Certificates, tmp_path: Path
) -> None:
    server = ServerProcess(test_pki, tmp_path / "state")
    await server.start()
    try:
        assert server.process is not None
        scope = cgroup_scope(tmp_path / "state")
        bases = []
        own = Path(f"/proc/{server.process.pid}/cgroup").read_text()  # noqa: ASYNC240 (procfs)
        for line in own.splitlines():
            _, controllers, path = line.split(":", 2)
            mount = Path("/sys/fs/cgroup") / (controllers.split(",")[0] or "unified")
            base = mount / path.lstrip("/") / scope
            if base.is_dir():
                bases.append(base)
        assert bases, "the server made no base cgroup"
        async with server.stub() as stub:
            await run(stub, "true")
            for base in bases:
                base.rmdir()  # empty: its only job has ended
            job, out = await run(stub, "echo", "recreated")
            assert (job.exit_code, out) == (0, b"recreated\n")
            assert all(base.is_dir() for base in bases)
    finally:
        assert await server.stop() == 0

"""Several servers on one machine: 8 real `jobs serve` processes on 127.0.0.2-9, each
with its own certificate (`jobs pki issue-server`), state directory and cgroup
scope; stopping one and crashing another leaves the others' jobs alone."""

from __future__ import annotations

import contextlib
import signal
from dataclasses import replace
from pathlib import Path

import anyio
import pytest
from harness import JOBS, ServerProcess, process_gone
from pki_fixtures import Certificates, Files

from gen.jobs import v1 as pb

pytestmark = pytest.mark.slow

HOSTS = [f"127.0.0.{n}" for n in range(2, 10)]


async def issue_server_certificate(
    test_pki: Certificates, out: Path, name: str, san: str
) -> tuple[Path, Path]:
    directory = test_pki.ca.parent
    command = [JOBS, "pki", "issue-server", name, f"--san={san}", f"--dir={directory}"]
    await anyio.run_process([*command, f"--out={out}"])
    return out / f"{name}.crt", out / f"{name}.key"


async def test_eight_servers_on_one_machine_keep_their_jobs_apart(
    test_pki: Certificates, tmp_path: Path
) -> None:
    servers = []
    for n, host in enumerate(HOSTS):
        cert, key = await issue_server_certificate(test_pki, tmp_path / "pki", f"host{n}", host)
        servers.append(
            ServerProcess(
                replace(test_pki, server=Files(cert, key)),
                tmp_path / f"state{n}",
                f"--name=host{n}",
                "--grace=1s",
                host=host,
            )
        )
    # Leaving stops (gracefully) whichever still run, so that their jobs stop too.
    async with contextlib.AsyncExitStack() as running:
        async with anyio.create_task_group() as starting:  # all at once
            for server in servers:
                starting.start_soon(running.enter_async_context, server)
        jobs: dict[int, pb.Job] = {}
        for n, server in enumerate(servers):
            # The client verifies each server's certificate for its own address.
            async with server.stub() as stub:
                assert (await stub.info(pb.InfoRequest())).name == f"host{n}"
                jobs[n] = (await stub.run(pb.RunRequest(command=["sleep", "300"]))).job

        async def still_running(survivors: list[int]) -> None:
            for n in survivors:
                async with servers[n].stub() as stub:
                    status = (await stub.status(pb.StatusRequest(job_id=jobs[n].id))).job
                assert status.state == pb.JobState.RUNNING, f"host{n}"
                assert status.pid == jobs[n].pid
                assert not process_gone(jobs[n].pid), f"host{n}"

        # A graceful stop stops that server's job, and only that one.
        assert await servers[0].stop() == 0
        assert process_gone(jobs[0].pid)
        await still_running([1, 2, 3, 4, 5, 6, 7])

        # A crash leaves its job running until that server starts again and sweeps it.
        await servers[1].stop(signal.SIGKILL)
        assert not process_gone(jobs[1].pid)
        await still_running([2, 3, 4, 5, 6, 7])
        await servers[1].start()
        assert process_gone(jobs[1].pid)
        async with servers[1].stub() as stub:
            lost = (await stub.status(pb.StatusRequest(job_id=jobs[1].id))).job
        assert lost.state == pb.JobState.LOST
        await still_running([2, 3, 4, 5, 6, 7])

        # And a crash of another while one restarted: still nobody else's jobs.
        await servers[2].stop(signal.SIGKILL)
        await still_running([3, 4, 5, 6, 7])
        await servers[2].start()
        assert process_gone(jobs[2].pid)
        await still_running([3, 4, 5, 6, 7])


async def test_issue_server_refuses_to_overwrite_and_bad_names(
    test_pki: Certificates, tmp_path: Path
) -> None:
    directory = str(test_pki.ca.parent)
    first = await anyio.run_process(
        [JOBS, "pki", "issue-server", "web", f"--dir={directory}", f"--out={tmp_path}"]
    )
    assert b"web.crt" in first.stderr
    again = await anyio.run_process(
        [JOBS, "pki", "issue-server", "web", f"--dir={directory}", f"--out={tmp_path}"],
        check=False,
    )
    assert again.returncode == 1
    assert b"--force" in again.stderr
    bad = await anyio.run_process(
        [JOBS, "pki", "issue-server", "a/b", f"--dir={directory}", f"--out={tmp_path}"],
        check=False,
    )
    assert bad.returncode == 2
    assert b"invalid server name" in bad.stderr

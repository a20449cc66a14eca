"""The audit log and the limits on abuse, through a real `jobs serve`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from harness import JOBS, ServerProcess, serving
from pki_fixtures import Certificates

from gen.jobs import v1 as pb
from jobs.client import ConnectionFailed, connection_errors


async def more_log(server: ServerProcess) -> bytes:
    """The server's operational log so far (what it wrote for half a second more)."""
    await anyio.sleep(0.5)
    return server.log


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def expect(status: Status, call: Any) -> None:
    with pytest.raises(GRPCError) as caught:
        await call
    assert caught.value.status is status, caught.value


async def test_each_call_leaves_one_line(test_pki: Certificates, tmp_path: Path) -> None:
    audit = tmp_path / "audit.log"
    secret = "hunter2-never-logged"
    async with serving(test_pki, tmp_path / "state", f"--audit-log={audit}") as server:
        async with server.stub("alice") as alice, server.stub("alice-ro") as reader:
            # A successful Run, with an environment whose value is a secret.
            job = (
                await alice.run(
                    pb.RunRequest(
                        command=["echo", "marker-argv-1234"],
                        env=[pb.EnvVar("TOKEN", secret)],
                        cwd="/",
                        limits=pb.Limits(memory=64 << 20),
                    )
                )
            ).job
            await alice.wait(pb.WaitRequest(job_id=job.id))
            start = len(lines(audit))
            await expect(Status.PERMISSION_DENIED, reader.run(pb.RunRequest(command=["true"])))
            await expect(Status.PERMISSION_DENIED, reader.stop(pb.StopRequest(job_id=job.id)))
            await expect(Status.NOT_FOUND, reader.logs(pb.LogsRequest(job_id="nope")).__anext__())
            await expect(
                Status.PERMISSION_DENIED, alice.run(pb.RunRequest(command=["true"], user="daemon"))
            )
        log = lines(audit)
        text = audit.read_text()
        operational = await more_log(server)
    assert audit.stat().st_mode & 0o777 == 0o600
    assert secret not in text
    assert f"started <Job {job.id[:8]}".encode() in operational
    assert b"marker-argv-1234" not in operational  # the operational log shows no command

    run = [entry for entry in log if entry.get("job_id") == job.id and "argv" in entry]
    assert len(run) == 1, log
    assert run[0] | {"time": None, "peer": None, "duration_ms": None} == {
        "time": None,
        "event": "call",
        "peer": None,
        "account": "alice",
        "role": "full",
        "method": "/jobs.v1.JobService/Run",
        "job_id": job.id,
        "argv": ["echo", "marker-argv-1234"],
        "cwd": "/",
        "user": "root",  # the suite's servers run jobs as root (see harness.TEST_USERS)
        "limits": {"memory": str(64 << 20)},
        "isolation": [],
        "env_names": ["TOKEN"],
        "outcome": "OK",
        "duration_ms": None,
    }
    assert run[0]["peer"].startswith("127.0.0.1:")
    assert run[0]["duration_ms"] >= 0

    refused = [
        (e["method"].rsplit("/", 1)[1], e["account"], e["role"], e["outcome"]) for e in log[start:]
    ]
    assert refused == [
        ("Run", "alice", "readonly", "PERMISSION_DENIED"),
        ("Stop", "alice", "readonly", "PERMISSION_DENIED"),
        ("Logs", "alice", "readonly", "NOT_FOUND"),
        ("Run", "alice", "full", "PERMISSION_DENIED"),
    ]
    assert log[start + 1]["job_id"] == job.id
    assert log[start + 2]["job_id"] == "nope"
    assert log[start + 3]["user"] == "daemon"
    assert "may not run as user 'daemon'" in log[start + 3]["error"]


async def test_a_failed_handshake_is_logged(test_pki: Certificates, tmp_path: Path) -> None:
    async with serving(test_pki, tmp_path / "state") as server:
        async with server.stub("foreign") as stranger:
            with pytest.raises(ConnectionFailed), connection_errors(""):
                await stranger.list(pb.ListRequest())
        with anyio.fail_after(5):
            while not (log := lines(tmp_path / "state" / "audit.log")):  # noqa: ASYNC110
                await anyio.sleep(0.05)
    assert len(log) == 1
    entry = log[0]
    assert (entry["event"], entry["outcome"]) == ("handshake", "HANDSHAKE_FAILED")
    assert entry["peer"].startswith("127.0.0.1:")
    assert "certificate" in entry["reason"].lower()


async def test_the_audit_log_is_rotated_by_size(test_pki: Certificates, tmp_path: Path) -> None:
    audit = tmp_path / "audit.log"
    async with (
        serving(
            test_pki, tmp_path / "state", f"--audit-log={audit}", "--audit-log-size=2K"
        ) as server,
        server.stub("alice") as alice,
    ):
        for _ in range(60):
            await alice.list(pb.ListRequest())
    rotated = sorted(tmp_path.glob("audit.log.*"))  # noqa: ASYNC240
    assert [p.name for p in rotated] == [f"audit.log.{n}" for n in range(1, 6)]
    for path in (audit, *rotated):
        assert path.stat().st_mode & 0o777 == 0o600
        assert path.stat().st_size < 2048 + 512
    assert all(entry["outcome"] == "OK" for entry in lines(rotated[0]))


async def test_the_audit_log_can_go_to_stdout(test_pki: Certificates, tmp_path: Path) -> None:
    async with serving(test_pki, tmp_path / "state", "--audit-log=-") as server:
        async with server.stub("alice") as alice:
            await alice.list(pb.ListRequest())
        # The server's stdout (the audit lines) and stderr (its log) are one pipe here.
        with anyio.fail_after(5):
            while not (audit := [line for line in server.log.splitlines() if line[:1] == b"{"]):  # noqa: ASYNC110 (a thread drains the pipe)
                await anyio.sleep(0.05)
    entry = json.loads(audit[0])
    assert (entry["method"], entry["account"], entry["outcome"]) == (
        "/jobs.v1.JobService/List",
        "alice",
        "OK",
    )
    assert not (tmp_path / "state" / "audit.log").exists()


async def test_call_rate_per_account(test_pki: Certificates, tmp_path: Path) -> None:
    async with serving(test_pki, tmp_path / "state", "--call-rate=0.5", "--call-burst=5") as server:
        async with server.stub("alice") as alice, server.stub("bob") as bob:
            for _ in range(5):
                await alice.list(pb.ListRequest())
            for _ in range(20):
                await expect(Status.RESOURCE_EXHAUSTED, alice.list(pb.ListRequest()))
            await bob.list(pb.ListRequest())  # each account has its own bucket
        log = await more_log(server)
    assert log.count(b"over its call rate: account alice") == 1, log.decode()


async def test_connections_per_address(test_pki: Certificates, tmp_path: Path) -> None:
    async with serving(test_pki, tmp_path / "state", "--max-connections=2") as server:
        async with server.stub("alice") as one, server.stub("alice") as two:
            await one.list(pb.ListRequest())
            await two.list(pb.ListRequest())
            for _ in range(3):
                async with server.stub("alice") as third:
                    with (
                        pytest.raises((ConnectionFailed, ConnectionError, GRPCError)),
                        connection_errors(""),
                    ):
                        await third.list(pb.ListRequest())
            await one.list(pb.ListRequest())  # the first two live on
        # Once they are closed, a new connection is welcome again.
        with anyio.fail_after(5):
            while True:
                try:
                    async with server.stub("alice") as again:
                        await again.list(pb.ListRequest())
                    break
                except (ConnectionFailed, ConnectionError):
                    await anyio.sleep(0.05)
        log = await more_log(server)
    assert log.count(b"too many connections: address 127.0.0.1") == 1, log.decode()


async def test_an_audit_log_that_cannot_be_opened_is_one_line(
    test_pki: Certificates, tmp_path: Path
) -> None:
    result = await anyio.run_process(
        [
            JOBS,
            "serve",
            "--listen=127.0.0.1:0",
            f"--ca={test_pki.ca}",
            f"--cert={test_pki.server.cert}",
            f"--key={test_pki.server.key}",
            f"--state-dir={tmp_path / 'state'}",
            f"--audit-log={tmp_path / 'no' / 'such' / 'audit.log'}",
        ],
        check=False,
    )
    assert result.returncode == 1
    last = result.stderr.decode().splitlines()[-1]
    assert last == (
        f"jobs: cannot open the audit log {tmp_path / 'no' / 'such' / 'audit.log'}: "
        "No such file or directory"
    )

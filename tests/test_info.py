"""Who a server is: --name, --label, the built-in labels, the Info RPC and `jobs info`."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from harness import CGROUP_V1, JOBS, NAMESPACES, RunningServer, running_server, serving
from pki_fixtures import Certificates

from gen.jobs import v1 as pb
from jobs import InvalidArgument
from jobs._core.containment import ProcessGroup
from jobs.selectors import check_labels
from jobs.server import ServerIdentity
from jobs.server._identity import block_devices, builtin_labels, certificate_names


@pytest.fixture
async def named(test_pki: Certificates, tmp_path: Path) -> AsyncIterator[RunningServer]:
    async with running_server(
        test_pki, tmp_path / "state", name="web-1", labels={"tier": "web", "example.com/zone": "a"}
    ) as running:
        yield running


async def test_info_names_labels_version_capabilities_and_certificate(
    named: RunningServer,
) -> None:
    async with named.stub("alice-ro") as stub:  # readonly may ask
        info = await stub.info(pb.InfoRequest())
    assert info.name == "web-1"
    version = importlib.metadata.version("jobs")
    assert info.version == version
    uname = platform.uname()
    assert info.labels["tier"] == "web"
    assert info.labels["example.com/zone"] == "a"
    assert info.labels["jobs.io/os"] == "linux"
    assert info.labels["jobs.io/arch"] == uname.machine
    assert info.labels["jobs.io/version"] == version
    assert info.labels["jobs.io/cgroup"] == info.capabilities.cgroup
    check_labels(dict(info.labels))
    assert set(info.certificate_names) == {"localhost", "127.0.0.1", "::1"}

    capabilities = info.capabilities
    containment = named.manager.containment
    assert containment is not None
    assert capabilities.cgroup == containment.kind
    if CGROUP_V1:  # these machines: cgroup v1 with every controller
        assert capabilities.cgroup == "v1"
        assert set(capabilities.controllers) == {"cpu", "memory", "blkio", "pids"}
    expected = {pb.Namespace.PID, pb.Namespace.MOUNT, pb.Namespace.NET} if NAMESPACES else set()
    assert set(capabilities.namespaces) == expected
    devices = [
        (Path("/sys/block") / name / "dev").read_text().strip()
        for name in sorted(os.listdir("/sys/block"))
    ]
    assert list(capabilities.block_devices) == devices


async def test_info_load_counts_running_jobs_of_all_and_of_the_caller(
    named: RunningServer,
) -> None:
    async with named.stub("alice") as alice, named.stub("bob") as bob:
        for stub in (alice, alice, bob):
            await stub.run(pb.RunRequest(command=["sleep", "30"]))
        load = (await alice.info(pb.InfoRequest())).load
        assert (load.running_jobs, load.caller_running_jobs) == (3, 2)
        load = (await bob.info(pb.InfoRequest())).load
        assert (load.running_jobs, load.caller_running_jobs) == (3, 1)
        settings = named.manager.settings
        assert load.max_running_per_account == settings.max_running
        assert load.max_streams_per_account == settings.max_streams
        for job in (await alice.list(pb.ListRequest())).jobs:
            await alice.stop(pb.StopRequest(job_id=job.id, grace_seconds=0))
        load = (await alice.info(pb.InfoRequest())).load
        assert (load.running_jobs, load.caller_running_jobs) == (1, 0)


async def test_info_needs_a_role(named: RunningServer) -> None:
    async with named.stub("norole") as stub:
        with pytest.raises(GRPCError) as raised:
            await stub.info(pb.InfoRequest())
    assert raised.value.status is Status.PERMISSION_DENIED


async def test_jobs_info_prints_it_for_people_and_for_scripts(named: RunningServer) -> None:
    files = named.pki.clients["alice-ro"]
    env = {
        **os.environ,
        "JOBS_ADDR": f"{named.host}:{named.port}",
        "JOBS_CA": str(named.pki.ca),
        "JOBS_CERT": str(files.cert),
        "JOBS_KEY": str(files.key),
    }
    text = await anyio.run_process([JOBS, "info"], env=env)
    lines = text.stdout.decode().splitlines()
    assert lines[0].split() == ["Name:", "web-1"]
    assert any(line.split()[-1] == "tier=web" for line in lines)
    assert any(line.startswith("Certificate:") and "localhost" in line for line in lines)
    document = json.loads((await anyio.run_process([JOBS, "info", "--json"], env=env)).stdout)
    assert document["name"] == "web-1"
    assert document["labels"]["tier"] == "web"
    assert document["capabilities"]["cgroup"] == named.manager.containment.kind  # type: ignore[union-attr]
    assert document["load"]["running_jobs"] == 0
    assert set(document) == {
        "name",
        "version",
        "labels",
        "capabilities",
        "load",
        "certificate_names",
    }


def test_builtin_labels_are_valid_labels() -> None:
    for kind in ("v1", "v2", "none"):
        labels = builtin_labels(kind)
        check_labels(labels)
        assert labels["jobs.io/cgroup"] == kind
        assert set(labels) == {
            "jobs.io/os",
            "jobs.io/arch",
            "jobs.io/kernel",
            "jobs.io/cgroup",
            "jobs.io/version",
        }


def test_identity_refuses_bad_names_and_reserved_labels(test_pki: Certificates) -> None:
    def build(name: str, labels: dict[str, str]) -> ServerIdentity:
        return ServerIdentity.build(name, labels, test_pki.server.cert, ProcessGroup())

    assert build("host-1.example.com", {}).labels["jobs.io/cgroup"] == "none"
    for name in ("", "a/b", "-x", "x y", "x" * 254):
        with pytest.raises(InvalidArgument, match="invalid server name"):
            build(name, {})
    with pytest.raises(InvalidArgument, match=r"jobs\.io/ prefix"):
        build("h", {"jobs.io/os": "windows"})
    with pytest.raises(InvalidArgument):
        build("h", {"bad key!": "x"})


def test_certificate_names_and_block_devices(test_pki: Certificates, tmp_path: Path) -> None:
    assert certificate_names(test_pki.server.cert) == ("localhost", "127.0.0.1", "::1")
    (tmp_path / "sda").mkdir()
    (tmp_path / "sda" / "dev").write_text("8:0\n")
    (tmp_path / "loop0").mkdir()
    (tmp_path / "loop0" / "dev").write_text("7:0\n")
    assert block_devices(tmp_path) == ("7:0", "8:0")
    assert block_devices(tmp_path / "missing") == ()


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("--name=a/b", "invalid server name"),
        ("--label=tier", "is not K=V"),
        ("--label=jobs.io/os=plan9", "built in"),
        ("--label=bad key=x", "bad label key"),
    ],
)
async def test_bad_identity_options_are_one_line(tmp_path: Path, option: str, message: str) -> None:
    result = await anyio.run_process(
        [JOBS, "serve", f"--state-dir={tmp_path}", "--listen=127.0.0.1:0", option],
        env={"JOBS_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    stderr = result.stderr.decode()
    assert result.returncode == 2, stderr
    assert message in stderr
    assert stderr.count("\n") == 1, stderr


async def test_default_name_is_the_host_name_and_env_sets_labels(
    test_pki: Certificates, tmp_path: Path
) -> None:
    labels = {"JOBS_SERVER_LABELS": "tier=db zone=b"}
    async with (
        serving(test_pki, tmp_path / "state", env=labels) as plain,
        plain.stub("alice-ro") as stub,
    ):
        info = await stub.info(pb.InfoRequest())
    assert info.name == socket.gethostname()
    assert (info.labels["tier"], info.labels["zone"]) == ("db", "b")


async def test_serve_refuses_a_bad_identity_before_touching_anything(
    test_pki: Certificates, tmp_path: Path
) -> None:
    with pytest.raises(ExceptionGroup) as raised:
        async with running_server(test_pki, tmp_path / "state", labels={"jobs.io/os": "x"}):
            pass
    assert raised.group_contains(InvalidArgument, match=r"jobs\.io/ prefix")
    assert not (tmp_path / "state").exists()

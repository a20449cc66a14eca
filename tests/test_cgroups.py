"""Limits and whole-tree containment on real cgroups: v1 controllers, the hybrid host's
controller-less cgroup2, and the process-group fallback."""

from __future__ import annotations

import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from harness import (
    UNIFIED,
    needs_v1,
    needs_v2,
    process_gone,
    read_output,
)

from jobs import (
    IoRate,
    JobManager,
    JobSpec,
    JobState,
    Limits,
    LimitUnsupported,
    ManagerSettings,
)
from jobs._core.containment import CGROUP_ROOT, CgroupV1, CgroupV2, Containment, ProcessGroup
from jobs._core.manager import cgroup_scope


def make_driver(kind: str, state_dir: Path) -> Containment:
    """The containment ``kind`` for a manager of ``state_dir`` (the caller checked the host)."""
    scope = cgroup_scope(state_dir)
    if kind == "v1":
        return CgroupV1(scope)
    if kind == "v2":
        return CgroupV2(scope, UNIFIED)
    return ProcessGroup()


V1 = pytest.param("v1", marks=needs_v1)
V2 = pytest.param("v2", marks=needs_v2)


@pytest.fixture(params=[V1, V2, "pgroup"])
async def any_manager(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[JobManager]:
    state = tmp_path / "state"
    async with JobManager(
        state, ManagerSettings(grace=2), containment=make_driver(request.param, state)
    ) as manager:
        yield manager


@pytest.fixture(params=[V1, V2])
async def cgroup_manager(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[JobManager]:
    state = tmp_path / "state"
    async with JobManager(
        state, ManagerSettings(grace=2), containment=make_driver(request.param, state)
    ) as manager:
        yield manager


@pytest.fixture
async def v1_manager(tmp_path: Path) -> AsyncIterator[JobManager]:
    state = tmp_path / "state"
    async with JobManager(
        state, ManagerSettings(grace=2), containment=make_driver("v1", state)
    ) as manager:
        yield manager


async def run(manager: JobManager, argv: tuple[str, ...], **spec: object) -> tuple[JobState, bytes]:
    info = await manager.start(JobSpec(argv, **spec), "alice")  # type: ignore[arg-type]
    output = await read_output(manager, info.id)
    return (await manager.wait(info.id, "alice")).state, output


@needs_v1
async def test_first_instruction_runs_in_the_jobs_cgroup(v1_manager: JobManager) -> None:
    info = await v1_manager.start(JobSpec(("cat", "/proc/self/cgroup")), "alice")
    lines = (await read_output(v1_manager, info.id)).decode().splitlines()
    expected = f"/{cgroup_scope(v1_manager.state_dir)}/{info.id}"
    freezer = next(line for line in lines if ":freezer:" in line)
    assert freezer.endswith(expected)
    unified = next(line for line in lines if line.startswith("0::"))
    assert unified.endswith(expected)


@pytest.mark.parametrize("stop", [True, False], ids=["stopped", "main-exits"])
async def test_setsid_and_double_fork_escapees_are_killed(
    cgroup_manager: JobManager, stop: bool
) -> None:
    # (The process-group fallback cannot hold these: only a cgroup can.)
    any_manager = cgroup_manager
    script = (
        "setsid sleep 3600 < /dev/null > /dev/null 2>&1 & echo $!; "
        "(sleep 3600 < /dev/null > /dev/null 2>&1 & echo $!); "
        + ("sleep 3600" if stop else "sleep 0.2")
    )
    info = await any_manager.start(JobSpec(("sh", "-c", script)), "alice")
    await anyio.sleep(0.3)
    if stop:
        await any_manager.stop(info.id, "alice")
    final = await any_manager.wait(info.id, "alice")
    pids = [int(pid) for pid in (await read_output(any_manager, info.id)).split()]
    assert len(pids) == 2
    assert all(process_gone(pid) for pid in pids), final


async def test_background_child_in_the_group_is_killed(any_manager: JobManager) -> None:
    info = await any_manager.start(JobSpec(("sh", "-c", "sleep 3600 & echo $!")), "alice")
    final = await any_manager.wait(info.id, "alice")
    assert final.state is JobState.EXITED
    assert process_gone(int(await read_output(any_manager, info.id)))


async def test_stop_ignoring_sigterm_in_a_tree(any_manager: JobManager) -> None:
    script = "trap '' TERM; sh -c \"trap '' TERM; sleep 3600\" & echo ready; wait"
    info = await any_manager.start(JobSpec(("sh", "-c", script)), "alice")
    await anyio.sleep(0.3)
    started = time.monotonic()
    final = await any_manager.stop(info.id, "alice", grace=0.5)
    assert 0.5 <= time.monotonic() - started < 5
    assert final.state is JobState.STOPPED
    assert final.signal == 9


@needs_v1
async def test_cpu_limit_throttles(v1_manager: JobManager) -> None:
    script = (
        "timeout 1 sh -c 'while :; do :; done'; "
        "cat /sys/fs/cgroup/cpu$(grep -E '^[0-9]+:cpu:' /proc/self/cgroup | cut -d: -f3)/cpu.stat"
    )
    state, output = await run(v1_manager, ("sh", "-c", script), limits=Limits(cpu=0.2))
    stats = dict(line.split() for line in output.decode().splitlines())
    assert state is JobState.EXITED
    assert int(stats["nr_throttled"]) > 0
    assert int(stats["throttled_time"]) > 0


@needs_v1
async def test_memory_limit_is_reported_as_oom(v1_manager: JobManager) -> None:
    state, _ = await run(v1_manager, ("tail", "/dev/zero"), limits=Limits(memory=64 << 20))
    assert state is JobState.OOM_KILLED


@needs_v1
async def test_pids_limit_makes_forks_fail(v1_manager: JobManager) -> None:
    script = "for i in 1 2 3 4 5 6 7 8; do sleep 1 & done; wait"
    info = await v1_manager.start(JobSpec(("sh", "-c", script), limits=Limits(pids=4)), "alice")
    output = await read_output(v1_manager, info.id)
    assert b"Cannot fork" in output
    final = await v1_manager.wait(info.id, "alice")
    assert (final.state, final.exit_code) == (JobState.EXITED, 2)


@needs_v1
async def test_io_write_limit_throttles_the_root_device(
    v1_manager: JobManager, tmp_path: Path
) -> None:
    # Direct IO to a file on the device of the job's working directory (the default).
    script = "dd if=/dev/zero of=out bs=256K count=8 oflag=direct status=none"
    limits = Limits(io_write=(IoRate(1 << 20),))
    started = time.monotonic()
    state, output = await run(v1_manager, ("sh", "-c", script), cwd=str(tmp_path), limits=limits)
    assert (state, output) == (JobState.EXITED, b"")
    # 2 MiB at 1 MiB/s; unthrottled this takes milliseconds.
    assert time.monotonic() - started >= 1.0
    assert (tmp_path / "out").stat().st_size == 2 << 20


@needs_v1
@pytest.mark.parametrize(
    ("limits", "error"),
    [
        (Limits(io_read=(IoRate(1 << 20, "/no/such/device"),)), "No such file"),
        (Limits(io_read=(IoRate(1 << 20, "/etc/hostname"),)), "not a block device"),
        (Limits(io_write=(IoRate(1 << 20, "4095:4095"),)), "not a block device here"),
    ],
)
async def test_limits_that_cannot_be_enforced(
    v1_manager: JobManager, limits: Limits, error: str
) -> None:
    with pytest.raises(LimitUnsupported, match=error):
        await v1_manager.start(JobSpec(("true",), limits=limits), "alice")
    assert v1_manager.list("alice") == []


async def test_limits_without_cgroups_are_refused(tmp_path: Path) -> None:
    async with JobManager(tmp_path, containment=ProcessGroup()) as manager:
        with pytest.raises(LimitUnsupported, match="no writable cgroups"):
            await manager.start(JobSpec(("true",), limits=Limits(memory=64 << 20)), "alice")


@needs_v2
async def test_controller_less_cgroup2_refuses_limits(tmp_path: Path) -> None:
    state = tmp_path / "state"
    async with JobManager(state, containment=make_driver("v2", state)) as manager:
        with pytest.raises(LimitUnsupported, match="memory controller"):
            await manager.start(JobSpec(("true",), limits=Limits(memory=64 << 20)), "alice")


@needs_v1
async def test_no_cgroup_is_left_after_200_jobs(tmp_path: Path) -> None:
    state = tmp_path / "state"
    bases = _job_bases(state)
    assert {"freezer", "cpu", "memory", "pids"} <= bases.keys()  # what the limits below use
    async with JobManager(state, containment=make_driver("v1", state)) as manager:
        io = (IoRate(1 << 30),) if "blkio" in bases else ()
        limited = Limits(memory=256 << 20, pids=64, cpu=1, io_write=io)
        # While a limited job runs, it has a directory in every one of those places:
        # so an empty place afterwards means removed, not never made.
        info = await manager.start(
            JobSpec(("sleep", "3600"), cwd=str(tmp_path), limits=limited), "alice"
        )
        assert [place for place, base in bases.items() if not (base / info.id).is_dir()] == []
        await manager.stop(info.id, "alice", grace=0)
        for _ in range(10):
            infos = [
                await manager.start(
                    JobSpec(("true",), cwd=str(tmp_path), limits=limited if i % 2 else Limits()),
                    "alice",
                )
                for i in range(20)
            ]
            for info in infos:
                await manager.wait(info.id, "alice")
        assert len(manager.list("alice")) == 201
        left = {place: _subdirectories(base) for place, base in bases.items()}
        assert left == {place: [] for place in bases}
    assert [place for place, base in bases.items() if base.exists()] == []


def _job_bases(state: Path) -> dict[str, Path]:
    """Where the jobs of the manager of ``state`` get a cgroup: its scope, under this
    process's own cgroup, in each v1 controller it uses and in the unified hierarchy.

    Read from /proc/self/cgroup here rather than asked of the code under test.
    """
    own: dict[str, str] = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else ["unified"]:
            own[controller] = path.lstrip("/")
    scope = cgroup_scope(state)
    places = ("freezer", "cpu", "memory", "blkio", "pids", "unified")
    mounted = [p for p in places if p in own and (CGROUP_ROOT / p / "cgroup.procs").exists()]
    return {place: CGROUP_ROOT / place / own[place] / scope for place in mounted}


def _subdirectories(base: Path) -> list[str]:
    return sorted(child.name for child in base.iterdir() if child.is_dir())


@needs_v1
async def test_stale_job_cgroups_are_emptied_and_removed_at_start(tmp_path: Path) -> None:
    state = tmp_path / "state"
    scope = cgroup_scope(state)
    stale = CGROUP_ROOT / "freezer" / scope / "0b8d2f43-stale"
    stale.mkdir(parents=True)
    leftover = subprocess.Popen(["sleep", "3600"])  # noqa: ASYNC220 (instant, and a plain child)
    try:
        (stale / "cgroup.procs").write_text(str(leftover.pid))
        async with JobManager(state, containment=make_driver("v1", state)):
            assert leftover.wait(timeout=5) == -9
            assert not stale.exists()
    finally:
        leftover.kill()
        leftover.wait()

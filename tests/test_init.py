"""The init of PID-namespace jobs is light: one process and well under the budgets
a small job is given (the Python init it replaced was OOM-killed under 6 MiB and
took two of a job's pids)."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from harness import needs_namespaces, read_chunks

from jobs import CannotExecute, JobManager, JobSpec, JobState, Limits, Namespace

pytestmark = needs_namespaces
PID = frozenset({Namespace.PID})


async def _run(manager: JobManager, spec: JobSpec) -> tuple[JobState, int | None, bytes]:
    info = await manager.start(spec, "alice")
    chunks = await read_chunks(manager, info.id)
    final = await manager.wait(info.id, "alice")
    return final.state, final.exit_code, b"".join(c.data for c in chunks)


async def test_a_small_memory_limit_leaves_room_for_the_command(manager: JobManager) -> None:
    spec = JobSpec(("sh", "-c", "echo ok"), isolation=PID, limits=Limits(memory=6 << 20))
    assert await _run(manager, spec) == (JobState.EXITED, 0, b"ok\n")


async def test_the_init_takes_one_pid(manager: JobManager) -> None:
    """With pids=3: the init, the shell, and one child of the shell."""
    spec = JobSpec(("sh", "-c", "(echo forked); echo done"), isolation=PID, limits=Limits(pids=3))
    assert await _run(manager, spec) == (JobState.EXITED, 0, b"forked\ndone\n")


async def test_exit_codes_pass_through(manager: JobManager) -> None:
    spec = JobSpec(("sh", "-c", "exit 3"), isolation=PID)
    assert (await _run(manager, spec))[:2] == (JobState.EXITED, 3)


async def test_commands_that_cannot_run_are_errors_of_the_call(
    manager: JobManager, tmp_path: Path
) -> None:
    script = tmp_path / "no-shebang"
    script.write_text("echo hi\n")
    script.chmod(0o755)
    with pytest.raises(CannotExecute, match="exec format error"):
        await manager.start(JobSpec((str(script),), isolation=PID), "alice")
    missing = tmp_path / "missing-interpreter"
    missing.write_text("#!/no/such/interpreter\necho hi\n")
    missing.chmod(0o755)
    with pytest.raises(CannotExecute, match="bad interpreter"):
        await manager.start(JobSpec((str(missing),), isolation=PID), "alice")
    with pytest.raises(CannotExecute, match="is a directory"):
        await manager.start(JobSpec((str(tmp_path),), isolation=PID), "alice")
    assert manager.list("alice") == []


async def test_the_server_thread_returns_to_its_own_pid_namespace(manager: JobManager) -> None:
    """The worker thread that forked into a new PID namespace gives it back: jobs
    without one, started afterwards, see the host's processes."""
    for _ in range(3):
        await _run(manager, JobSpec(("true",), isolation=PID))
    state, _, out = await _run(manager, JobSpec(("sh", "-c", "echo $$; ls /proc/1/exe")))
    assert state is JobState.EXITED
    assert int(out.split()[0]) > 2


async def test_a_stop_right_after_run_reaches_the_command(manager: JobManager) -> None:
    """Run returns once the command has exec'd: a SIGTERM sent at once is not lost
    between the init's fork and the command's exec (which cost a full grace)."""
    for _ in range(10):
        info = await manager.start(JobSpec(("sleep", "3600"), isolation=PID), "alice")
        with anyio.fail_after(5):
            final = await manager.stop(info.id, "alice", grace=60)
        assert (final.state, final.signal) == (JobState.STOPPED, 15)

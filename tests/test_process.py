"""What a job's process sees, and the errors of a command that cannot start."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Any

import anyio
import pytest
from harness import by_stream, read_chunks

from jobs import CannotExecute, InvalidArgument, JobManager, JobSpec, JobState, LimitUnsupported
from jobs._core.process import spawn


async def run(manager: JobManager, *argv: str, **spec: Any) -> tuple[bytes, bytes, int | None]:
    """Run a job to its end; its stdout, stderr and exit code."""
    info = await manager.start(JobSpec(tuple(argv), **spec), "alice")
    out, err = by_stream(await read_chunks(manager, info.id))
    return out, err, (await manager.wait(info.id, "alice")).exit_code


async def test_exit_code_and_both_streams(manager: JobManager) -> None:
    out, err, code = await run(manager, "sh", "-c", "echo out; echo err >&2; exit 7")
    assert (out, err, code) == (b"out\n", b"err\n", 7)


async def test_stdin_is_dev_null(manager: JobManager) -> None:
    out, _, code = await run(manager, "sh", "-c", "readlink /proc/self/fd/0; cat; echo done")
    assert (out, code) == (b"/dev/null\ndone\n", 0)


async def test_stdout_and_stderr_are_real_pipes(manager: JobManager) -> None:
    # A socketpair would make these opens fail with ENXIO.
    out, err, code = await run(
        manager, "sh", "-c", "echo a > /dev/stdout; echo b > /dev/stderr; readlink /proc/$$/fd/1"
    )
    assert code == 0
    assert out.startswith(b"a\npipe:[")
    assert err == b"b\n"


async def test_only_fds_0_to_2_are_open(manager: JobManager) -> None:
    # ls opens the directory itself as fd 3.
    out, _, _ = await run(manager, "ls", "/proc/self/fd")
    assert out.split() == [b"0", b"1", b"2", b"3"]


async def test_environment_is_clean_plus_requested(
    manager: JobManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOBS_SERVER_SECRET", "leak")
    out, _, _ = await run(manager, "env", env=(("GREETING", "hi"), ("LANG", "C")))
    env = dict(line.split("=", 1) for line in out.decode().splitlines())
    assert "JOBS_SERVER_SECRET" not in env
    assert env["GREETING"] == "hi"
    assert env["LANG"] == "C"  # a request may override a default
    assert set(env) == {"PATH", "LANG", "HOME", "GREETING", "JOBS_JOB_ID"}


async def test_cwd(manager: JobManager, tmp_path: Path) -> None:
    out, _, _ = await run(manager, "pwd", cwd=str(tmp_path))
    assert out == f"{tmp_path}\n".encode()


async def test_argv_is_not_interpreted_by_a_shell(manager: JobManager) -> None:
    out, _, _ = await run(manager, "echo", "$HOME", "a;b", "*")
    assert out == b"$HOME a;b *\n"


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        (("no-such-command-here",), "not found in PATH"),
        (("/no/such/file",), "not found"),
        (("/etc",), "is a directory"),
    ],
)
async def test_command_that_cannot_run(
    manager: JobManager, argv: tuple[str, ...], reason: str
) -> None:
    with pytest.raises(CannotExecute, match=reason):
        await manager.start(JobSpec(argv), "alice")
    assert manager.list("alice") == []


async def test_not_executable(manager: JobManager, tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.write_text("echo hi\n")
    plain.chmod(0o644)  # even root needs an execute bit
    with pytest.raises(CannotExecute, match="permission denied"):
        await manager.start(JobSpec((str(plain),)), "alice")


async def test_bad_interpreter(manager: JobManager, tmp_path: Path) -> None:
    script = tmp_path / "script"
    script.write_text("#!/no/such/interpreter\necho hi\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    with pytest.raises(CannotExecute, match="bad interpreter '/no/such/interpreter'"):
        await manager.start(JobSpec((str(script),)), "alice")


async def test_exec_format_error(manager: JobManager, tmp_path: Path) -> None:
    blob = tmp_path / "blob"
    blob.write_bytes(b"\x00\x01not a program")
    blob.chmod(0o700)
    with pytest.raises(CannotExecute, match="exec format error"):
        await manager.start(JobSpec((str(blob),)), "alice")


async def test_missing_and_bad_cwd(manager: JobManager, tmp_path: Path) -> None:
    with pytest.raises(CannotExecute, match="no such directory"):
        await manager.start(JobSpec(("true",), cwd=str(tmp_path / "nope")), "alice")
    (tmp_path / "file").touch()
    with pytest.raises(CannotExecute, match="not a directory"):
        await manager.start(JobSpec(("true",), cwd=str(tmp_path / "file")), "alice")
    with pytest.raises(InvalidArgument, match="absolute"):
        await manager.start(JobSpec(("true",), cwd="relative"), "alice")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"argv": ()}, "empty"),
        ({"argv": ("",)}, "empty"),
        ({"argv": ("echo", "a\0b")}, "NUL"),
        ({"argv": ("true",), "env": (("A", "1"), ("A", "2"))}, "twice"),
        ({"argv": ("true",), "env": (("A=B", "1"),)}, "bad environment variable name"),
        ({"argv": ("true",), "env": (("", "1"),)}, "bad environment variable name"),
        ({"argv": ("true",), "env": (("A", "x\0y"),)}, "NUL"),
        ({"argv": ("true",), "timeout": 0}, "timeout"),
        ({"argv": ("echo", "x" * 200_000)}, "kernel's limit"),
        ({"argv": ("echo", *(["x" * 100_000] * 40))}, "kernel's limit"),
    ],
)
def test_invalid_spec(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        JobSpec(**spec)


async def test_failed_start_leaves_nothing_behind(manager: JobManager) -> None:
    before = set(os.listdir(manager.state_dir / "jobs"))
    with pytest.raises(CannotExecute):
        await manager.start(JobSpec(("no-such-command-here",)), "alice")
    assert set(os.listdir(manager.state_dir / "jobs")) == before
    info = await manager.start(JobSpec(("true",)), "alice")
    assert (await manager.wait(info.id, "alice")).state is JobState.EXITED


def _failing(error: BaseException) -> Any:
    def step() -> None:
        raise error

    return step


@pytest.mark.parametrize(
    ("error", "raised", "message"),
    [
        # Each step that fails in the child is named by what it said: subprocess
        # itself only passes on "Exception occurred in preexec_fn".
        (
            OSError(errno.EPERM, "mounting /proc"),
            LimitUnsupported,
            "mounting /proc: Operation not permitted",
        ),
        (
            PermissionError(errno.EACCES, os.strerror(errno.EACCES), "/sys/fs/cgroup/x/tasks"),
            LimitUnsupported,
            "Permission denied: '/sys/fs/cgroup/x/tasks'",
        ),
        (
            PermissionError(errno.EACCES, os.strerror(errno.EACCES), "/"),
            CannotExecute,
            "working directory '/': permission denied",
        ),
        (
            PermissionError(errno.EACCES, os.strerror(errno.EACCES), "true"),
            CannotExecute,
            "command 'true': permission denied (not executable?)",
        ),
        (ValueError("no errno"), LimitUnsupported, "Exception occurred in preexec_fn"),
        # Longer than a pipe holds: cut, never a child blocked on its report.
        (
            PermissionError(errno.EACCES, os.strerror(errno.EACCES), "/x" * 40_000),
            LimitUnsupported,
            "Permission denied: '/x/x/x",
        ),
    ],
)
async def test_a_failed_preexec_step_is_named(
    error: BaseException, raised: type[Exception], message: str
) -> None:
    with anyio.fail_after(10), pytest.raises(raised) as caught:
        await spawn(["true"], {"PATH": "/usr/bin:/bin"}, "/", preexec=_failing(error))
    assert message in str(caught.value)

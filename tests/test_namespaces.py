"""Isolation on real namespaces: a PID namespace with its own /proc and a minimal init,
a private mount namespace, a network namespace with only loopback."""

from __future__ import annotations

import secrets
import sys
import time
from pathlib import Path

import pytest
from harness import (
    by_stream,
    needs_limits,
    needs_namespaces,
    process_gone,
    read_chunks,
    read_output,
)

from jobs import CannotExecute, Chunk, JobManager, JobSpec, JobState, Limits, Namespace
from jobs._core import namespaces

pytestmark = needs_namespaces

PID = frozenset({Namespace.PID})
NET = frozenset({Namespace.NET})
MOUNT = frozenset({Namespace.MOUNT})
ALL = frozenset(Namespace)


async def run(
    manager: JobManager, script: str, isolation: frozenset[Namespace], **spec: object
) -> tuple[bytes, bytes, JobState, int | None]:
    info = await manager.start(JobSpec(("sh", "-c", script), isolation=isolation, **spec), "alice")  # type: ignore[arg-type]
    out, err = by_stream(await read_chunks(manager, info.id))
    final = await manager.wait(info.id, "alice")
    return out, err, final.state, final.exit_code


async def test_pid_namespace_sees_only_its_own_processes(manager: JobManager) -> None:
    out, err, state, _ = await run(
        manager, "echo $$; ls /proc | grep -E '^[0-9]+$' | sort -n | tr '\\n' ' '", PID
    )
    assert state is JobState.EXITED, err
    shell, pids = out.decode().splitlines()
    assert shell == "2"  # the command is not PID 1: the init is
    seen = {int(p) for p in pids.split()}
    assert {1, 2} <= seen
    assert max(seen) < 10  # the pipeline's own few processes, nothing of the host
    assert (await run(manager, "cat /proc/1/cmdline", PID))[0].startswith(
        str(namespaces.init_path()).encode()
    )


async def test_pid_namespace_job_stops_on_sigterm_without_waiting_for_the_grace(
    manager: JobManager,
) -> None:
    info = await manager.start(JobSpec(("sleep", "3600"), isolation=PID), "alice")
    started = time.monotonic()
    final = await manager.stop(info.id, "alice", grace=30)
    assert time.monotonic() - started < 5
    assert (final.state, final.signal) == (JobState.STOPPED, 15)
    assert info.pid is not None
    assert process_gone(info.pid)


async def test_pid_namespace_passes_exit_codes_and_signals_through(manager: JobManager) -> None:
    assert (await run(manager, "exit 7", PID))[2:] == (JobState.EXITED, 7)
    info = await manager.start(JobSpec(("sh", "-c", "kill -KILL $$"), isolation=PID), "alice")
    final = await manager.wait(info.id, "alice")
    assert (final.state, final.signal) == (JobState.SIGNALED, 9)


async def test_pid_namespace_init_reaps_orphans(manager: JobManager) -> None:
    script = (
        "for i in 1 2 3 4 5; do (sleep 0.05 &); done; sleep 0.5; "
        "cat /proc/[0-9]*/stat | awk '{print $3}' | sort | uniq -c"
    )
    out, _, state, _ = await run(manager, script, PID)
    assert state is JobState.EXITED
    assert b" Z" not in out  # no zombie left behind


async def test_pid_namespace_command_that_cannot_run(manager: JobManager, tmp_path: Path) -> None:
    with pytest.raises(CannotExecute, match="not found in PATH"):
        await manager.start(JobSpec(("no-such-command",), isolation=PID), "alice")
    (tmp_path / "plain").write_text("echo hi\n")
    with pytest.raises(CannotExecute, match="permission denied"):
        await manager.start(JobSpec((str(tmp_path / "plain"),), isolation=PID), "alice")
    assert manager.list("alice") == []


async def test_pid_namespace_command_sees_only_fds_0_to_2(manager: JobManager) -> None:
    info = await manager.start(JobSpec(("ls", "/proc/self/fd"), isolation=PID), "alice")
    assert (await read_output(manager, info.id)).split() == [b"0", b"1", b"2", b"3"]


@needs_limits
async def test_pid_namespace_with_limits_and_escapees(manager: JobManager) -> None:
    # A duration no other process on the host uses: how the host finds the escapee,
    # whose pid inside the namespace means nothing out here.
    duration = f"3600.{secrets.randbelow(10**9)}"
    # "started" once the escapee runs as itself; then seconds for the host to see it.
    script = (
        f"setsid sleep {duration} < /dev/null > /dev/null 2>&1 & "
        f"until pgrep -fx 'sleep {duration}' > /dev/null; do sleep 0.01; done; "
        "echo started; sleep 3"
    )
    info = await manager.start(
        JobSpec(("sh", "-c", script), isolation=PID, limits=Limits(pids=16, memory=128 << 20)),
        "alice",
    )
    async with manager.reader(info.id, "alice", follow=True) as reader:
        async for chunk in reader:
            assert isinstance(chunk, Chunk)
            assert chunk.data == b"started\n"
            break
    assert len(_running("sleep", duration)) == 1  # the escapee runs while the job does
    final = await manager.wait(info.id, "alice")
    assert final.state is JobState.EXITED
    assert await read_output(manager, info.id) == b"started\n"
    assert _running("sleep", duration) == []


def _running(*argv: str) -> list[int]:
    """The pids of the host's live processes whose command line is exactly ``argv``."""
    wanted = b"\0".join(arg.encode() for arg in argv) + b"\0"
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if cmdline == wanted and not process_gone(int(entry.name)):
            found.append(int(entry.name))
    return found


async def test_network_namespace_has_only_loopback_and_it_works(manager: JobManager) -> None:
    talk = (
        "import socket; s = socket.create_server(('127.0.0.1', 0)); "
        "c = socket.create_connection(s.getsockname()); a, _ = s.accept(); "
        "c.sendall(b'ping'); print(a.recv(4).decode())"
    )
    script = (
        f'ls /sys/class/net; tail -n +3 /proc/net/dev | cut -d: -f1; {sys.executable} -c "{talk}"'
    )
    out, err, state, _ = await run(manager, script, NET)
    assert state is JobState.EXITED, err
    assert out.split() == [b"lo", b"lo", b"ping"]


async def test_mount_namespace_keeps_mounts_private(manager: JobManager, tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.mkdir()
    out, err, state, _ = await run(
        manager, f"mount -t tmpfs none {target} && touch {target}/inside && ls {target}", MOUNT
    )
    assert (out, state) == (b"inside\n", JobState.EXITED), err
    assert list(target.iterdir()) == []


async def test_all_namespaces_at_once(manager: JobManager) -> None:
    out, err, state, _ = await run(manager, "echo $$; ls /sys/class/net", ALL)
    assert (out, state) == (b"2\nlo\n", JobState.EXITED), err

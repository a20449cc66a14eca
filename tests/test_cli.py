"""The jobs CLI against a real server: asyncclick's runner in-process, and the installed
console script as a real process (exit codes, stderr lines, pipes, Ctrl-C)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import anyio
import asyncclick as click
import pytest
from asyncclick.testing import CliRunner
from harness import RunningServer, needs_limits, needs_namespaces

from cli._params import DURATION, IO_RATE, SIGNAL, SIZE
from cli.main import cli
from gen.jobs import v1 as pb
from jobs import IoRate

JOBS = str(Path(sys.executable).with_name("jobs"))


def client_env(server: RunningServer, client: str = "alice") -> dict[str, str]:
    files = server.pki.clients[client]
    return {
        "JOBS_ADDR": f"{server.host}:{server.port}",
        "JOBS_CA": str(server.pki.ca),
        "JOBS_CERT": str(files.cert),
        "JOBS_KEY": str(files.key),
    }


async def jobs(
    server: RunningServer | None, *args: str, client: str = "alice", **env: str
) -> subprocess.CompletedProcess[bytes]:
    """Run the installed ``jobs`` script to its end."""
    full_env = {**os.environ, **(client_env(server, client) if server else {}), **env}
    return await anyio.run_process([JOBS, *args], env=full_env, check=False)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


async def test_run_prints_the_job_id_alone(server: RunningServer, runner: CliRunner) -> None:
    result = await runner.invoke(
        cli, ["run", "true"], env=client_env(server), catch_exceptions=False
    )
    assert result.exit_code == 0
    job_id = result.stdout.strip()
    assert result.stdout == job_id + "\n"
    async with server.stub() as stub:
        assert (await stub.wait(pb.WaitRequest(job_id=job_id))).job.exit_code == 0


async def test_run_follow_keeps_streams_apart_and_bytes_untouched(server: RunningServer) -> None:
    script = "printf 'out\\000\\377'; printf 'err\\n' >&2; exit 7"
    result = await jobs(server, "run", "-f", "--", "sh", "-c", script)
    assert result.returncode == 7
    assert result.stdout == b"out\x00\xff"
    assert result.stderr == b"err\n"


async def test_run_follow_exit_code_of_a_killed_job(server: RunningServer) -> None:
    result = await jobs(server, "run", "-f", "--", "sh", "-c", "kill -TERM $$")
    assert result.returncode == 128 + signal.SIGTERM


async def test_run_options_reach_the_job(server: RunningServer, tmp_path: Path) -> None:
    result = await jobs(
        server,
        "run",
        "-f",
        "-e",
        "GREETING=hi",
        "-e",
        "FROM_HERE",
        "--cwd",
        str(tmp_path),
        "--timeout",
        "30s",
        "--",
        "sh",
        "-c",
        'echo "$GREETING $FROM_HERE $(pwd)"',
        FROM_HERE="passed",
    )
    assert result.stdout == f"hi passed {tmp_path}\n".encode()


async def test_logs_wait_ps_kill(server: RunningServer) -> None:
    job_id = (
        await jobs(server, "run", "sh", "-c", "echo one; sleep 0.2; echo two >&2; sleep 30")
    ).stdout
    job_id_text = job_id.decode().strip()
    async with server.stub() as stub:
        async for _ in stub.logs(pb.LogsRequest(job_id=job_id_text, follow=True)):
            break  # the job has started writing
    table = (await jobs(server, "ps")).stdout.decode().splitlines()
    assert table[0].split() == ["ID", "NAME", "STATE", "EXIT", "AGE", "COMMAND"]
    assert table[1].split()[:4] == [job_id_text[:8], "-", "running", "-"]
    killed = await jobs(server, "kill", "--signal", "INT", "--grace", "5s", job_id_text)
    assert (killed.returncode, killed.stdout) == (0, job_id)
    waited = await jobs(server, "wait", job_id_text)
    assert waited.returncode == 128 + signal.SIGINT
    logs = await jobs(server, "logs", job_id_text)
    assert (logs.stdout, logs.stderr) == (b"one\n", b"two\n")
    resumed = await jobs(server, "logs", "--offset", "2", job_id_text)
    assert (resumed.stdout, resumed.stderr) == (b"e\n", b"two\n")
    document = json.loads((await jobs(server, "ps", "--json", job_id_text)).stdout)
    (job,) = document["jobs"]
    assert job["id"] == job_id_text
    assert job["state"] == "stopped"
    assert job["signal"] == signal.SIGINT
    assert job["command"] == ["sh", "-c", "echo one; sleep 0.2; echo two >&2; sleep 30"]
    assert set(job) == {
        "id", "name", "labels", "owner", "user", "state", "command", "cwd", "pid", "exit_code",
        "signal", "started_at", "ended_at", "timeout_seconds", "limits", "isolation",
        "output_bytes", "dropped_bytes", "lost_bytes", "usage",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (["run"], 2, "jobs: Missing argument 'COMMAND...'. (see 'jobs run --help')"),
        (["run", "--memory", "lots", "true"], 2, "'lots' is not a size"),
        (["run", "--isolate", "user", "true"], 2, "'user' is not one of pid, mount, net"),
        (["kill", "--signal", "NOPE", "x"], 2, "'NOPE' is not a signal"),
        (["frobnicate"], 2, "No such command 'frobnicate'"),
        (["logs", "7f3c0000-0000-4000-8000-000000000000"], 1,
         "jobs: job 7f3c0000-0000-4000-8000-000000000000 not found"),
        (["wait", "nope"], 125, "jobs: job nope not found"),
        (["kill", "nope"], 1, "jobs: job nope not found"),
        (["run", "no-such-command"], 1, "jobs: command 'no-such-command': not found in PATH"),
        (["run", "--cwd", "/no/such", "true"], 1, "jobs: working directory '/no/such'"),
        (["logs", "--offset", "999", "{job}"], 1, "past the end of the output"),
    ],
)  # fmt: skip
async def test_errors_are_one_line(
    server: RunningServer, args: list[str], status: int, message: str
) -> None:
    if "{job}" in args:
        async with server.stub() as stub:
            job = (await stub.run(pb.RunRequest(command=["true"]))).job
            await stub.wait(pb.WaitRequest(job_id=job.id))
        args = [a.replace("{job}", job.id) for a in args]
    result = await jobs(server, *args)
    assert result.returncode == status
    assert result.stdout == b""
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("jobs: ")
    assert message in lines[0]


async def test_readonly_role_is_told_it_may_not(server: RunningServer) -> None:
    result = await jobs(server, "run", "true", client="alice-ro")
    assert (result.returncode, result.stderr) == (
        1,
        b"jobs: permission denied: role readonly may not make this call\n",
    )


async def test_refused_certificate_says_what_to_check(server: RunningServer) -> None:
    result = await jobs(server, "ps", client="foreign")
    assert result.returncode == 1
    assert result.stderr == (
        b"jobs: the server closed the connection during the TLS handshake: "
        b"check the certificate, key and CA\n"
    )


async def test_server_not_running(tmp_path: Path, server: RunningServer) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nobody listens there
    result = await jobs(server, "ps", JOBS_ADDR=f"127.0.0.1:{port}")
    assert result.returncode == 1
    assert (
        result.stderr
        == f"jobs: cannot connect to 127.0.0.1:{port}: is the server running?\n".encode()
    )


async def test_missing_identity_files(server: RunningServer, tmp_path: Path) -> None:
    result = await jobs(server, "ps", JOBS_CERT=str(tmp_path / "nope.crt"))
    assert result.returncode == 1
    assert result.stderr.decode() == (
        f"jobs: the client certificate {tmp_path / 'nope.crt'} does not exist: start `jobs serve` "
        "once to create the local identity, or pass --ca/--cert/--key (JOBS_CA, JOBS_CERT, "
        "JOBS_KEY)\n"
    )


async def test_broken_pipe_exits_quietly(server: RunningServer) -> None:
    env = {**os.environ, **client_env(server)}
    pipeline = f"{JOBS} run -f -- seq 1 1000000 | head -1; echo ${{PIPESTATUS[0]}} >&2"
    result = await anyio.run_process(["bash", "-c", pipeline], env=env)
    assert result.stdout == b"1\n"
    assert result.stderr == b"1\n"  # quietly: no message, no traceback


async def test_ctrl_c_stops_following_not_the_job(server: RunningServer) -> None:
    env = {**os.environ, **client_env(server)}
    command = [JOBS, "run", "-f", "--", "sh", "-c", "echo started; exec sleep 60"]
    async with await anyio.open_process(command, env=env) as process:
        assert process.stdout is not None
        assert process.stderr is not None
        with anyio.fail_after(10):
            assert await process.stdout.receive() == b"started\n"
            process.send_signal(signal.SIGINT)
            assert await process.wait() == 130
            stderr = (await process.stderr.receive()).decode()
    assert stderr.startswith("jobs: stopped following job ")
    job_id = stderr.split()[4].rstrip(";")
    async with server.stub() as stub:
        job = (await stub.status(pb.StatusRequest(job_id=job_id))).job
        assert job.state is pb.JobState.RUNNING
        await stub.stop(pb.StopRequest(job_id=job_id, grace_seconds=0))


async def test_pki_init_and_issue(tmp_path: Path) -> None:
    home = {"JOBS_HOME": str(tmp_path)}
    assert (await jobs(None, "pki", "init", "--name", "jobs.example", **home)).returncode == 0
    again = await jobs(None, "pki", "init", **home)
    assert again.returncode == 1
    assert b"already exists" in again.stderr
    issued = await jobs(
        None, "pki", "issue", "bob", "--role", "readonly", "--out", str(tmp_path / "bob"), **home
    )
    assert issued.returncode == 0
    assert oct((tmp_path / "bob" / "bob.key").stat().st_mode & 0o777) == "0o600"
    bad = await jobs(None, "pki", "issue", "eve", "--role", "root", **home)
    assert bad.returncode == 2


@pytest.fixture
def fresh_home(tmp_path: Path) -> dict[str, str]:
    """An environment with nothing in it: an empty HOME and jobs home, no JOBS_ variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBS_")}
    env.update(HOME=str(tmp_path / "home"), JOBS_HOME=str(tmp_path / "home" / "jobs"))
    (tmp_path / "home").mkdir()
    return env


async def test_out_of_the_box(fresh_home: dict[str, str]) -> None:
    # `jobs serve` with no flags, then `jobs run -f -- echo hello` with no flags.
    async with await anyio.open_process([JOBS, "serve"], env=fresh_home) as server:
        try:
            assert server.stderr is not None
            log = b""
            with anyio.fail_after(20):
                while b"listening on 127.0.0.1:50051" not in log:
                    try:
                        log += await server.stderr.receive()
                    except anyio.EndOfStream:
                        pytest.fail(f"jobs serve ended early:\n{log.decode()}")
            hello = await anyio.run_process(
                [JOBS, "run", "-f", "--", "echo", "hello"], env=fresh_home, check=False
            )
            assert (hello.returncode, hello.stdout, hello.stderr) == (0, b"hello\n", b"")
        finally:
            if server.returncode is None:  # not when it ended early: that is the failure
                server.send_signal(signal.SIGTERM)
                with anyio.fail_after(15):
                    assert await server.wait() == 0
    pki = Path(fresh_home["JOBS_HOME"]) / "pki"
    assert {p.name for p in pki.iterdir()} >= {"ca.crt", "ca.key", "server.crt", "server.key"}


def test_parameter_types() -> None:
    assert DURATION.convert("500ms", None, None) == 0.5
    assert DURATION.convert("2m", None, None) == 120
    assert DURATION.convert("10", None, None) == 10
    assert SIZE.convert("256M", None, None) == 256 << 20
    assert SIZE.convert("1G", None, None) == 1 << 30
    assert SIZE.convert("1.5KiB", None, None) == 1536
    assert IO_RATE.convert("/dev/sda=10M", None, None) == IoRate(10 << 20, "/dev/sda")
    assert IO_RATE.convert("8:0=1M", None, None) == IoRate(1 << 20, "8:0")
    assert IO_RATE.convert("5M", None, None) == IoRate(5 << 20, None)
    assert SIGNAL.convert("SIGINT", None, None) == signal.SIGINT
    assert SIGNAL.convert("hup", None, None) == signal.SIGHUP
    assert SIGNAL.convert("9", None, None) == 9
    for bad in ("-1s", "ten"):
        with pytest.raises(click.BadParameter):
            DURATION.convert(bad, None, None)


@needs_namespaces
@needs_limits
async def test_isolation_and_limits_from_the_command_line(server: RunningServer) -> None:
    isolated = await jobs(
        server, "run", "-f", "--isolate", "pid,net", "--", "sh", "-c", "echo $$; ls /sys/class/net"
    )
    assert (isolated.returncode, isolated.stdout) == (0, b"2\nlo\n")
    oom = await jobs(
        server, "run", "-f", "--memory", "64M", "--pids", "8", "--", "tail", "/dev/zero"
    )
    assert oom.returncode == 128 + signal.SIGKILL
    assert b"exceeding its memory limit of 64M" in oom.stderr
    document = json.loads((await jobs(server, "ps", "-a", "--json")).stdout)
    last = document["jobs"][-1]
    assert last["state"] == "oom_killed"
    assert last["limits"]["memory"] == 64 << 20
    assert last["limits"]["pids"] == 8

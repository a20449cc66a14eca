"""What operators expect of the CLI, through the installed scripts against a real
server: docker's exit codes, log selection, names and labels, ps, inspect, usage,
and the rough edges of issue 12."""

from __future__ import annotations

import datetime
import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from harness import RunningServer
from test_cli import client_env, jobs

from cli._params import DURATION

JOBSCTL = str(Path(sys.executable).with_name("jobsctl"))
_PS_MODULES = {
    "cli.main",
    "cli._errors",
    "cli._fleet_options",
    "cli.ps",
    "cli._client",
    "cli._complete",
    "cli._render",
    "cli._settings",
}


async def _run(server: RunningServer, *args: str) -> str:
    """Start a job; its id."""
    result = await jobs(server, "run", *args)
    assert result.returncode == 0, result.stderr
    return result.stdout.decode().strip()


# -- exit codes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "status", "stderr"),
    [
        (["sh", "-c", "exit 3"], 3, b""),
        (["sh", "-c", "kill -KILL $$"], 128 + signal.SIGKILL, b""),
        (["no-such-command"], 127, b"jobs: command 'no-such-command': not found in PATH\n"),
        (["/etc"], 126, b"jobs: command '/etc': is a directory\n"),
    ],
)
async def test_run_follow_exits_as_docker_run(
    server: RunningServer, command: list[str], status: int, stderr: bytes
) -> None:
    result = await jobs(server, "run", "-f", "--", *command)
    assert (result.returncode, result.stderr) == (status, stderr)


async def test_a_failed_call_exits_125(server: RunningServer) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nobody listens there once closed
    result = await jobs(server, "run", "-f", "true", JOBS_ADDR=f"127.0.0.1:{port}")
    assert result.returncode == 125
    assert result.stderr.startswith(b"jobs: cannot connect")
    result = await jobs(server, "wait", "nonexistent")
    assert (result.returncode, result.stderr) == (125, b"jobs: job nonexistent not found\n")
    result = await jobs(server, "run", "-f", "--label", "bad key=x", "true")
    assert result.returncode == 125


async def test_a_timed_out_job_never_exits_0_and_says_why(server: RunningServer) -> None:
    # It ignores SIGTERM's default and exits 0 when told to stop.
    script = "trap 'exit 0' TERM; sleep 30 & wait"
    result = await jobs(server, "run", "-f", "--timeout", "1s", "--", "sh", "-c", script)
    assert result.returncode == 124
    assert re.fullmatch(
        rb"jobs: job [0-9a-f]{8} timed out after 1s \(exited 0\)\n", result.stderr
    ), result.stderr


async def test_wait_says_a_job_was_stopped(server: RunningServer) -> None:
    job_id = await _run(server, "sleep", "30")
    async with anyio.create_task_group() as tg:
        waited: list[subprocess.CompletedProcess[bytes]] = []

        async def wait() -> None:
            waited.append(await jobs(server, "wait", job_id))

        tg.start_soon(wait)
        await anyio.sleep(0.5)
        assert (await jobs(server, "kill", "-g", "0", job_id)).returncode == 0
    (result,) = waited
    assert result.returncode == 128 + signal.SIGKILL
    assert result.stderr == f"jobs: job {job_id[:8]} was stopped (killed by SIGKILL)\n".encode()


# -- logs -------------------------------------------------------------------------------

LINES = "for i in 1 2 3 4 5; do echo out$i; echo err$i >&2; done"


async def test_logs_tail_streams_and_timestamps(server: RunningServer) -> None:
    job_id = await _run(server, "sh", "-c", LINES)
    assert (await jobs(server, "wait", job_id)).returncode == 0
    result = await jobs(server, "logs", "--tail", "2", "--stdout", job_id)
    assert (result.stdout, result.stderr) == (b"out4\nout5\n", b"")
    result = await jobs(server, "logs", "-n", "1", "--stderr", job_id)
    assert (result.stdout, result.stderr) == (b"", b"err5\n")
    result = await jobs(server, "logs", "--tail", "3", job_id)
    # Both streams count: the last three lines, split between our two outputs.
    assert len(result.stdout.splitlines()) + len(result.stderr.splitlines()) == 3
    result = await jobs(server, "logs", "-t", "--stdout", job_id)
    lines = result.stdout.decode().splitlines()
    assert len(lines) == 5
    for number, line in enumerate(lines, 1):
        assert re.fullmatch(rf"\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z out{number}", line), line


async def test_logs_timestamps_of_a_replay_are_each_lines_own(server: RunningServer) -> None:
    # Replayed, output read at different times is sent in pieces of one time each:
    # the lines keep the times they were read at (they all had the first one's).
    job_id = await _run(server, "sh", "-c", "for i in 1 2 3; do echo line$i; sleep 1; done")
    assert (await jobs(server, "wait", job_id)).returncode == 0
    for args in (["-t"], ["-t", "--tail", "2"]):
        result = await jobs(server, "logs", *args, job_id)
        stamps = [line.split()[0] for line in result.stdout.decode().splitlines()]
        times = [datetime.datetime.fromisoformat(stamp).timestamp() for stamp in stamps]
        assert len(times) == (3 if len(args) == 1 else 2), result.stdout
        assert all(b - a > 0.5 for a, b in itertools.pairwise(times)), stamps


async def test_logs_since_and_until(server: RunningServer) -> None:
    job_id = await _run(server, "sh", "-c", "echo early; sleep 2; echo late")
    assert (await jobs(server, "wait", job_id)).returncode == 0
    (document,) = json.loads((await jobs(server, "inspect", job_id)).stdout)
    started = datetime.datetime.fromisoformat(document["started_at"])
    middle = (started + datetime.timedelta(seconds=1)).isoformat()  # between the two lines
    since = await jobs(server, "logs", "--since", middle, job_id)
    assert since.stdout == b"late\n"
    until = await jobs(server, "logs", "--until", middle, job_id)
    assert until.stdout == b"early\n"
    ago = await jobs(server, "logs", "--since", "1h", job_id)
    assert ago.stdout == b"early\nlate\n"
    old = await jobs(server, "logs", "--until", "2000-01-01T00:00:00Z", job_id)
    assert (old.returncode, old.stdout) == (0, b"")
    bad = await jobs(server, "logs", "--since", "yesterday", job_id)
    assert bad.returncode == 2
    assert b"neither a duration ago" in bad.stderr


async def test_logs_follow_with_tail(server: RunningServer) -> None:
    script = "for i in 1 2 3 4; do echo $i; done; sleep 4; echo 5"
    job_id = await _run(server, "sh", "-c", script)
    with anyio.fail_after(10):
        while (await jobs(server, "logs", job_id)).stdout != b"1\n2\n3\n4\n":  # noqa: ASYNC110 (polls another process)
            await anyio.sleep(0.1)
    # The follower starts while "5" is still seconds away (a loaded machine included).
    result = await jobs(server, "logs", "-f", "--tail", "2", job_id)
    assert result.stdout == b"3\n4\n5\n"


# -- names, labels, ids, ps, inspect ------------------------------------------------------


async def test_names_labels_and_ids(server: RunningServer) -> None:
    job_id = await _run(server, "--name", "web", "--label", "app=web", "--", "sleep", "30")
    clash = await jobs(server, "run", "--name", "web", "true")
    assert (clash.returncode, clash.stderr) == (
        1,
        f"jobs: a running job is already named 'web' ({job_id[:8]})\n".encode(),
    )
    other = await _run(server, "--label", "app=db", "true")
    await jobs(server, "wait", other)
    for ref in ("web", job_id[:6], job_id):
        (document,) = json.loads((await jobs(server, "inspect", ref)).stdout)
        assert document["id"] == job_id
    short = await jobs(server, "inspect", job_id[:5])
    assert short.returncode == 1
    assert short.stderr == f"jobs: job {job_id[:5]} not found\n".encode()

    ps = (await jobs(server, "ps")).stdout.decode().splitlines()
    assert len(ps) == 2  # running only, by default
    assert ps[1].split()[:3] == [job_id[:8], "web", "running"]
    every = (await jobs(server, "ps", "-a", "-q")).stdout.decode().split()
    assert every == [job_id, other]  # newest last
    assert (await jobs(server, "ps", "-a", "-q", "-l", "app=db")).stdout.decode().split() == [other]
    assert (await jobs(server, "ps", "-q", "--state", "exited")).stdout.decode().split() == [other]
    bad = await jobs(server, "ps", "-l", "app in (web")
    assert bad.returncode == 2  # a usage error, as --on gives
    assert bad.stderr.startswith(b"jobs: ")
    assert len(bad.stderr.splitlines()) == 1
    await jobs(server, "kill", "-g", "0", "web")
    # Ended, the name still refers to the job, and can be used again.
    await _run(server, "--name", "web", "true")


async def test_ps_escapes_control_characters(server: RunningServer) -> None:
    job_id = await _run(server, "sh", "-c", "sleep 30 # a\nb\x1b[31m")
    table = (await jobs(server, "ps")).stdout.decode()
    assert len(table.splitlines()) == 2
    assert "\x1b" not in table
    assert r"a\nb\x1b[31m" in table
    await jobs(server, "kill", "-g", "0", job_id)


async def test_inspect_shows_usage_and_never_env_values(server: RunningServer) -> None:
    job_id = await _run(
        server, "-e", "SECRET=hunter2", "--label", "team=ops", "--", "sh", "-c", "echo $SECRET"
    )
    await jobs(server, "wait", job_id)
    result = await jobs(server, "inspect", job_id)
    assert b"hunter2" not in result.stdout
    (document,) = json.loads(result.stdout)
    assert document["labels"] == {"team": "ops"}
    assert document["state"] == "exited"
    usage = document["usage"]
    assert set(usage) == {
        "cpu_user_seconds",
        "cpu_system_seconds",
        "memory_peak_bytes",
        "io_read_bytes",
        "io_write_bytes",
        "source",
    }
    assert usage["memory_peak_bytes"] > 0
    assert usage["source"] in ("cgroup v1", "cgroup v2", "rusage")
    output = await jobs(server, "logs", job_id)
    assert output.stdout == b"hunter2\n"  # the job itself has it, of course


async def test_the_job_knows_its_id_and_name(server: RunningServer) -> None:
    result = await jobs(
        server, "run", "-f", "--name", "self", "--", "sh", "-c", "echo $JOBS_JOB_ID $JOBS_JOB_NAME"
    )
    job_id, name = result.stdout.decode().split()
    assert name == "self"
    (document,) = json.loads((await jobs(server, "inspect", "self")).stdout)
    assert document["id"] == job_id


# -- rough edges --------------------------------------------------------------------------


async def test_bare_jobs_prints_the_help_and_exits_0() -> None:
    result = await jobs(None)
    assert result.returncode == 0
    assert result.stdout.startswith(b"Usage: jobs")
    assert result.stderr == b""


async def test_help_summaries_are_whole() -> None:
    result = await jobs(None, "--help")
    commands = result.stdout.decode().split("Commands:")[1]
    names = [line.split()[0] for line in commands.strip().splitlines()]
    assert {"run", "ps", "logs", "wait", "kill", "inspect", "completion"} <= set(names)
    for group in ([], ["pki"]):
        listing = (await jobs(None, *group, "--help")).stdout.decode().split("Commands:")[1]
        for line in listing.strip().splitlines():
            assert line.rstrip().endswith("."), line  # a whole sentence, not cut with "..."
            assert not line.rstrip().endswith("..."), line


async def test_the_alias_script(server: RunningServer) -> None:
    full_env = {**os.environ, **client_env(server)}
    result = await anyio.run_process(
        [JOBSCTL, "run", "-f", "--", "echo", "alias"], env=full_env, check=False
    )
    assert (result.returncode, result.stdout) == (0, b"alias\n")
    result = await anyio.run_process(
        ["/bin/sh", "-c", "jobsctl ps -a -q"],
        env={**full_env, "PATH": f"{Path(JOBSCTL).parent}:/usr/bin:/bin"},
        check=False,
    )
    assert result.returncode == 0


def test_compound_durations() -> None:
    assert DURATION.convert("1m30s", None, None) == 90
    assert DURATION.convert("1h30m", None, None) == 5400
    assert DURATION.convert("1h2m3s500ms", None, None) == 3723.5
    assert DURATION.convert("90", None, None) == 90
    for bad in ("1m30", "m", "1x", "", "1s1"):
        with pytest.raises(Exception, match="is not a duration"):
            DURATION.convert(bad, None, None)


async def test_pki_issue_does_not_overwrite_an_identity(tmp_path: Path) -> None:
    home = {"JOBS_HOME": str(tmp_path)}
    assert (await jobs(None, "pki", "init", **home)).returncode == 0
    first = await jobs(None, "pki", "issue", "me", "--role", "full", **home)
    assert first.returncode == 0
    cert = (tmp_path / "pki" / "me.crt").read_bytes()
    again = await jobs(None, "pki", "issue", "me", "--role", "readonly", **home)
    assert again.returncode == 1
    assert b"already exists: pass --out DIR" in again.stderr
    assert (tmp_path / "pki" / "me.crt").read_bytes() == cert
    forced = await jobs(None, "pki", "issue", "me", "--role", "readonly", "--force", **home)
    assert forced.returncode == 0
    assert (tmp_path / "pki" / "me.crt").read_bytes() != cert


@pytest.mark.parametrize(
    "args",
    [
        ["run", "-f", "--memory", "99999999999999999999G", "--", "true"],
        ["run", "-f", "--io-write", "99999999999999999999G", "--", "true"],
        ["run", "-f", "--pids", "99999999999999999999999", "--", "true"],
        ["run", "-f", "--pids", "5000000000", "--", "true"],  # over uint32
        ["logs", "--tail", "99999999999999999999999", "x"],
        ["logs", "--offset", "99999999999999999999", "x"],
        ["logs", "--since", "99999999999h", "x"],
        ["logs", "--since", "9999-12-31T23:59:59-05:00", "x"],  # past 9999 in UTC
        ["logs", "--until", "9999-12-31T23:59:59.9999999Z", "x"],
        ["logs", "--since", "0001-01-01T00:00:00+01:00", "x"],
    ],
    ids=[
        "memory",
        "io",
        "pids",
        "pids-uint32",
        "tail",
        "offset",
        "since",
        "rfc3339-late",
        "rfc3339-round",
        "rfc3339-early",
    ],
)
async def test_numbers_beyond_what_a_request_holds_are_usage_errors(args: list[str]) -> None:
    result = await jobs(None, *args)
    stderr = result.stderr.decode()
    assert result.returncode == 2, stderr
    assert stderr.startswith("jobs: Invalid value for "), stderr
    assert stderr.count("\n") == 1, stderr  # one line, no traceback


async def test_a_bad_identity_file_is_named(server: RunningServer, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    missing = tmp_path / "missing.crt"
    env = client_env(server)
    for override, named in (
        ({"JOBS_CERT": str(missing)}, f"jobs: the client certificate {missing} does not exist: "),
        ({"JOBS_CA": str(garbage)}, f"jobs: cannot load the CA certificate {garbage}: "),
        (
            {"JOBS_CERT": str(garbage)},
            f"jobs: cannot load the client certificate {garbage} with its key {env['JOBS_KEY']}: ",
        ),
    ):
        result = await jobs(server, "ps", **override)
        stderr = result.stderr.decode()
        assert result.returncode == 1, stderr
        assert stderr.startswith(named), stderr
        assert stderr.count("\n") == 1, stderr
    # On the --on path too: the host's line names the file.
    inventory = tmp_path / "hosts.toml"
    inventory.write_text(f'[[host]]\nname = "h"\naddr = "{server.host}:{server.port}"\n')
    result = await jobs(
        server, "ps", "--on", "h", JOBS_INVENTORY=str(inventory), JOBS_CERT=str(missing)
    )
    assert result.returncode == 255
    assert f"jobs: h: unreachable: the client certificate {missing} does not exist" in (
        result.stderr.decode()
    )


# -- a fast start ---------------------------------------------------------------------------


async def test_a_client_command_imports_only_what_it_uses(
    server: RunningServer, tmp_path: Path
) -> None:
    # Timing belongs to `nox -s bench`; this checks the cause: what `jobs ps` imports.
    listing = tmp_path / "modules"
    program = (
        "import atexit, sys\n"
        f"atexit.register(lambda: open({str(listing)!r}, 'w').write('\\n'.join(sys.modules)))\n"
        "sys.argv = ['jobs', 'ps']\n"
        "from cli.main import main\n"
        "main()\n"
    )
    full_env = {**os.environ, **client_env(server)}
    result = await anyio.run_process([sys.executable, "-c", program], env=full_env, check=False)
    assert result.returncode == 0, result.stderr
    imported = set(listing.read_text().split())
    assert "cli.ps" in imported
    heavy = {"jobs._core", "jobs.server", "pki", "cryptography", "betterproto", "gen.jobs.v1"}
    assert not heavy & imported, heavy & imported
    assert {m for m in imported if m.startswith("cli.")} == _PS_MODULES


async def test_serve_names_a_missing_or_bad_tls_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate\n")
    missing = tmp_path / "missing.crt"
    for cert, named in ((missing, str(missing)), (bad, "cannot load the server's TLS files")):
        result = await jobs(
            None,
            "serve",
            "--listen=127.0.0.1:0",
            f"--ca={bad}",
            f"--cert={cert}",
            f"--key={bad}",
            f"--state-dir={tmp_path / 'state'}",
        )
        stderr = result.stderr.decode()
        assert result.returncode == 1, stderr
        assert named in stderr, stderr
        assert "Traceback" not in stderr
        assert stderr.count("\n") == 1, stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["completion"], "jobs: name the shell: jobs completion bash|fish|zsh"),
        (["ps", "--addr", "nonsense"], "jobs: Invalid value for '--addr': 'nonsense' is not"),
        (["ps", "-l", "a in (b"], "jobs: Invalid value for '-l' / '--selector': bad label"),
        (["ps", "--on", "a in (b"], "jobs: Invalid value for '--on': bad label selector"),
        (["ps", "--on", "h", "--host-timeout", "0"], "must be more than 0s"),
    ],
    ids=["completion", "addr", "selector", "on", "host-timeout"],
)
async def test_usage_errors_are_one_line_naming_the_option(
    server: RunningServer, tmp_path: Path, args: list[str], message: str
) -> None:
    inventory = tmp_path / "hosts.toml"
    inventory.write_text(f'[[host]]\nname = "h"\naddr = "{server.host}:{server.port}"\n')
    result = await jobs(server, *args, JOBS_INVENTORY=str(inventory))
    stderr = result.stderr.decode()
    assert result.returncode == 2, stderr
    assert message in stderr, stderr
    assert stderr.count("\n") == 1, stderr

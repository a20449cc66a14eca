"""``jobs run``: start a job; with ``-f``, stream its output and exit as ``docker run``."""

from __future__ import annotations

from typing import Any

import anyio
import asyncclick as click

from gen import service_pb2 as wire
from jobs import IoRate, Namespace

from ._client import Api, Server, connection_options, stream_output
from ._errors import docker_exit_codes
from ._fleet_options import FleetOptions, fleet_options, run_fleet_options
from ._params import DURATION, ENV, IO_RATE, ISOLATION, LABEL, SIZE, UINT32_MAX, count
from ._render import end_note, exit_code

__all__ = ["follow_to_end", "run"]


@click.command(context_settings={"allow_interspersed_args": False})
@click.option("-f", "--follow", is_flag=True, help="Stream the output; exit with the job's code.")
@click.option(
    "-e", "--env", "env", type=ENV, multiple=True, help="Set NAME=VALUE (NAME alone: pass ours on)."
)
@click.option("--cwd", help="Working directory (an absolute path on the server; default: HOME).")
@click.option(
    "--name", help="A name for the job, unique among your running jobs; usable as its id."
)
@click.option("--user", help="Run as this user (name or uid), if the server allows it.")
@click.option("--label", "labels", type=LABEL, multiple=True, help="A label KEY=VALUE (repeat).")
@click.option("--cpu", type=float, help="CPU limit in cores, e.g. 0.5.")
@click.option("--memory", type=SIZE, help="Memory limit, e.g. 256M.")
@click.option(
    "--io-read", type=IO_RATE, multiple=True, help="Read bandwidth, [DEVICE=]RATE, e.g. 10M."
)
@click.option("--io-write", type=IO_RATE, multiple=True, help="Write bandwidth, [DEVICE=]RATE.")
@click.option("--pids", type=count(1, UINT32_MAX), help="Maximum number of processes.")
@click.option("--isolate", type=ISOLATION, help="Namespaces: pid,mount,net.")
@click.option("--timeout", type=DURATION, help="Stop the job after this long, e.g. 10m or 1h30m.")
@click.argument("command", nargs=-1, required=True)
@connection_options
@fleet_options
@run_fleet_options
async def run(
    follow: bool,
    env: tuple[tuple[str, str], ...],
    cwd: str | None,
    name: str | None,
    labels: tuple[tuple[str, str], ...],
    user: str | None,
    cpu: float | None,
    memory: int | None,
    io_read: tuple[IoRate, ...],
    io_write: tuple[IoRate, ...],
    pids: int | None,
    isolate: frozenset[Namespace] | None,
    timeout: float | None,
    command: tuple[str, ...],
    server: Server,
    fleet: FleetOptions,
    fleet_run: dict[str, Any],
) -> None:
    """Run COMMAND on the server (never through a shell) and print the job id.

    Put -- before a command that has options of its own: jobs run -- ls -la

    With -f, the exit status is docker run's: the job's code, 128+N when a signal
    N killed it, 125 when the call failed, 126 when the command cannot be
    executed, 127 when it is not found.

    With --on, on every matching host (ids print as HOST/ID); with -f, their
    output merged line by line, a summary line per host, and exit status 0 if
    all exited 0, else the largest exit code, 255 if a host was unreachable.
    """
    if follow:
        docker_exit_codes()
    seen: dict[str, str] = {}
    for key, value in labels:
        if key in seen:
            raise click.BadParameter(f"label {key} is given twice", param_hint="--label")
        seen[key] = value
    limits = wire.Limits(
        io_read=[
            wire.IoLimit(device=r.device or "", bytes_per_second=r.bytes_per_second)
            for r in io_read
        ],
        io_write=[
            wire.IoLimit(device=r.device or "", bytes_per_second=r.bytes_per_second)
            for r in io_write
        ],
    )
    if cpu is not None:
        limits.cpu = cpu
    if memory is not None:
        limits.memory = memory
    if pids is not None:
        limits.pids = pids
    request = wire.RunRequest(
        command=list(command),
        env=[wire.EnvVar(name=k, value=v) for k, v in env],
        cwd=cwd or "",
        limits=limits,
        isolation=[f"NAMESPACE_{n.name}" for n in sorted(isolate or (), key=lambda n: n.value)],
        name=name or "",
        labels=seen,
        user=user or "",
    )
    if timeout is not None:
        request.timeout_seconds = timeout
    if fleet.on is not None:
        from ._fleet import run_fleet  # only now: jobs.fleet is for --on alone

        raise click.exceptions.Exit(await run_fleet(request, follow, fleet, server, **fleet_run))
    async with server.connect() as api:
        job = await api.run(request)
        if not follow:
            click.echo(job.id)
            return
        final = await follow_to_end(api, job.id)
    raise click.exceptions.Exit(exit_code(final))


async def follow_to_end(api: Api, job_id: str, *, output: bool = True) -> wire.Job:
    """Stream the job's output (unless not ``output``) until it has ended; its final
    status, after one line on stderr if it ended other than on its own."""
    try:
        if output:
            await stream_output(api, wire.LogsRequest(job_id=job_id, follow=True))
        final = await api.wait(job_id)
    except anyio.get_cancelled_exc_class():
        click.echo(f"jobs: stopped following job {job_id}; it is still running", err=True)
        raise
    if (note := end_note(final)) is not None:
        click.echo(note, err=True)
    return final

"""``jobs run``: start a job; with ``-f``, stream its output and exit with its code."""

from __future__ import annotations

from typing import Any

import anyio
import asyncclick as click

from gen.jobs import v1 as pb
from jobs import IoRate, Namespace

from ._client import Server, connection_options, stream_output
from ._fleet import FleetOptions, fleet_options, run_fleet, run_fleet_options
from ._params import DURATION, ENV, IO_RATE, ISOLATION, SIZE
from ._render import exit_code

__all__ = ["run"]


@click.command(context_settings={"allow_interspersed_args": False})
@click.option("-f", "--follow", is_flag=True, help="Stream the output; exit with the job's code.")
@click.option(
    "-e", "--env", "env", type=ENV, multiple=True, help="Set NAME=VALUE (NAME alone: pass ours on)."
)
@click.option("--cwd", help="Working directory (an absolute path on the server).")
@click.option("--cpu", type=float, help="CPU limit in cores, e.g. 0.5.")
@click.option("--memory", type=SIZE, help="Memory limit, e.g. 256M.")
@click.option(
    "--io-read", type=IO_RATE, multiple=True, help="Read bandwidth, [DEVICE=]RATE, e.g. 10M."
)
@click.option("--io-write", type=IO_RATE, multiple=True, help="Write bandwidth, [DEVICE=]RATE.")
@click.option("--pids", type=click.IntRange(min=1), help="Maximum number of processes.")
@click.option("--isolate", type=ISOLATION, help="Namespaces: pid,mount,net.")
@click.option("--timeout", type=DURATION, help="Stop the job after this long, e.g. 10m.")
@click.argument("command", nargs=-1, required=True)
@connection_options
@fleet_options
@run_fleet_options
async def run(
    follow: bool,
    env: tuple[tuple[str, str], ...],
    cwd: str | None,
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

    With --on, on every matching host (ids print as HOST/ID); with -f, their
    output merged line by line, a summary line per host, and exit status 0 if
    all exited 0, else the largest exit code, 255 if a host was unreachable.
    """
    request = pb.RunRequest(
        command=list(command),
        env=[pb.EnvVar(name, value) for name, value in env],
        cwd=cwd or "",
        limits=pb.Limits(
            cpu=cpu,
            memory=memory,
            pids=pids,
            io_read=[pb.IoLimit(r.device or "", r.bytes_per_second) for r in io_read],
            io_write=[pb.IoLimit(r.device or "", r.bytes_per_second) for r in io_write],
        ),
        isolation=[pb.Namespace[n.name] for n in sorted(isolate or (), key=lambda n: n.value)],
        timeout_seconds=timeout,
    )
    if fleet.on is not None:
        status = await run_fleet(request, follow, fleet, server, **fleet_run)
        raise click.exceptions.Exit(status)
    async with server.connect() as stub:
        job = (await stub.run(request)).job
        if not follow:
            click.echo(job.id)
            return
        try:
            await stream_output(stub, job.id, follow=True)
        except anyio.get_cancelled_exc_class():
            click.echo(f"jobs: stopped following job {job.id}; it is still running", err=True)
            raise
        final = (await stub.wait(pb.WaitRequest(job_id=job.id))).job
    raise click.exceptions.Exit(exit_code(final))

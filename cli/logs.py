"""``jobs logs``: a job's output, binary-safe, stdout and stderr kept apart."""

from __future__ import annotations

import anyio
import asyncclick as click

from ._client import Server, connection_options, for_job, stream_output
from ._fleet import FleetOptions, fleet_options, logs_fleet, wants_fleet

__all__ = ["logs"]


@click.command()
@click.option("-f", "--follow", is_flag=True, help="Keep streaming until the job has ended.")
@click.option(
    "--offset",
    type=click.IntRange(min=0),
    default=0,
    help="Start at this byte of the output (to resume after a dropped connection).",
)
@click.argument("job_id", metavar="ID")
@connection_options
@fleet_options
async def logs(
    follow: bool,
    offset: int,
    job_id: str,
    server: Server,
    fleet: FleetOptions,
) -> None:
    """Print the output of job ID: its stdout to stdout, its stderr to stderr.

    With --on (or HOST/ID), from many hosts, merged line by line with [host] prefixes.
    """
    if wants_fleet(fleet, [job_id]):
        raise click.exceptions.Exit(await logs_fleet(fleet, server, job_id, follow))
    async with server.connect() as stub:
        with for_job(job_id):
            try:
                await stream_output(stub, job_id, follow=follow, offset=offset)
            except anyio.get_cancelled_exc_class():
                if follow:
                    click.echo(f"jobs: stopped following job {job_id}", err=True)
                raise

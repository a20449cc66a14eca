"""``jobs wait``: block until a job ends; exit as ``jobs run -f`` does."""

from __future__ import annotations

import asyncclick as click

from ._client import Server, connection_options, for_job
from ._complete import complete_job
from ._errors import docker_exit_codes
from ._fleet_options import FleetOptions, fleet_options, wants_fleet
from ._render import end_note, exit_code

__all__ = ["wait"]


@click.command()
@click.argument("job_id", metavar="ID", shell_complete=complete_job)
@connection_options
@fleet_options
async def wait(job_id: str, server: Server, fleet: FleetOptions) -> None:
    """Wait until job ID has ended, and exit as `jobs run -f` does: the job's code,
    128 + N when signal N killed it, 125 when the call failed.

    With --on (or HOST/ID), on many hosts: the largest code, 255 if one is unreachable."""
    if wants_fleet(fleet, [job_id]):
        from ._fleet import wait_fleet  # only now: jobs.fleet is for --on alone

        raise click.exceptions.Exit(await wait_fleet(fleet, server, job_id))
    docker_exit_codes()
    async with server.connect() as api:
        with for_job(job_id):
            job = await api.wait(job_id)
    if (note := end_note(job)) is not None:
        click.echo(note, err=True)
    raise click.exceptions.Exit(exit_code(job))

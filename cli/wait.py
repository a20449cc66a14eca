"""``jobs wait``: block until a job ends; exit with its code."""

from __future__ import annotations

import asyncclick as click

from gen.jobs import v1 as pb

from ._client import Server, connection_options, for_job
from ._fleet import FleetOptions, fleet_options, wait_fleet, wants_fleet
from ._render import exit_code

__all__ = ["wait"]


@click.command()
@click.argument("job_id", metavar="ID")
@connection_options
@fleet_options
async def wait(job_id: str, server: Server, fleet: FleetOptions) -> None:
    """Wait until job ID has ended, and exit with its code (128 + signal if killed).

    With --on (or HOST/ID), on many hosts: the largest code, 255 if one is unreachable.
    """
    if wants_fleet(fleet, [job_id]):
        raise click.exceptions.Exit(await wait_fleet(fleet, server, job_id))
    async with server.connect() as stub:
        with for_job(job_id):
            job = (await stub.wait(pb.WaitRequest(job_id=job_id))).job
    raise click.exceptions.Exit(exit_code(job))

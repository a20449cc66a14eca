"""``jobs ps``: the caller's jobs as a table, or as JSON for scripts."""

from __future__ import annotations

import json

import asyncclick as click

from gen.jobs import v1 as pb

from ._client import Server, connection_options, for_job
from ._fleet import FleetOptions, fleet_options, ps_fleet, wants_fleet
from ._render import job_document, table

__all__ = ["ps"]


@click.command()
@click.option("--json", "as_json", is_flag=True, help='Print {"jobs": [...]} as JSON.')
@click.argument("job_ids", metavar="[ID]...", nargs=-1)
@connection_options
@fleet_options
async def ps(
    as_json: bool,
    job_ids: tuple[str, ...],
    server: Server,
    fleet: FleetOptions,
) -> None:
    """List your jobs (or just the jobs ID...), oldest first; with --on, on many hosts."""
    if wants_fleet(fleet, job_ids):
        raise click.exceptions.Exit(await ps_fleet(fleet, server, job_ids, as_json))
    async with server.connect() as stub:
        if job_ids:
            jobs = []
            for job_id in job_ids:
                with for_job(job_id):
                    jobs.append((await stub.status(pb.StatusRequest(job_id=job_id))).job)
        else:
            jobs = (await stub.list(pb.ListRequest())).jobs
    if as_json:
        click.echo(json.dumps({"jobs": [job_document(job) for job in jobs]}, indent=2))
    else:
        click.echo(table(jobs))

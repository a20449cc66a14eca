"""``jobs inspect``: everything about jobs, as JSON."""

from __future__ import annotations

import json

import asyncclick as click

from ._client import Server, connection_options, for_job
from ._complete import complete_job
from ._render import job_document

__all__ = ["inspect"]


@click.command()
@click.argument("job_ids", metavar="ID...", nargs=-1, required=True, shell_complete=complete_job)
@connection_options
async def inspect(job_ids: tuple[str, ...], server: Server) -> None:
    """Print a JSON list with everything about jobs ID...: the command, name, labels,
    limits, state and exit, times and resource usage (never environment values)."""
    documents = []
    async with server.connect() as api:
        for job_id in job_ids:
            with for_job(job_id):
                documents.append(job_document(await api.status(job_id)))
    click.echo(json.dumps(documents, indent=2))

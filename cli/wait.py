"""``jobs wait``: block until a job ends; exit as ``jobs run -f`` does."""

from __future__ import annotations

import asyncclick as click

from ._client import Server, connection_options, for_job
from ._complete import complete_job
from ._errors import docker_exit_codes
from ._render import end_note, exit_code

__all__ = ["wait"]


@click.command()
@click.argument("job_id", metavar="ID", shell_complete=complete_job)
@connection_options
async def wait(job_id: str, server: Server) -> None:
    """Wait until job ID has ended, and exit as `jobs run -f` does: the job's code,
    128 + N when signal N killed it, 125 when the call failed."""
    docker_exit_codes()
    async with server.connect() as api:
        with for_job(job_id):
            job = await api.wait(job_id)
    if (note := end_note(job)) is not None:
        click.echo(note, err=True)
    raise click.exceptions.Exit(exit_code(job))

"""``jobs kill``: stop jobs — a signal, a grace period, then SIGKILL."""

from __future__ import annotations

import anyio
import asyncclick as click

from gen import service_pb2 as wire

from ._client import Server, connection_options, for_job
from ._complete import complete_job
from ._errors import CliError
from ._fleet_options import FleetOptions, fleet_options, wants_fleet
from ._params import DURATION, SIGNAL

__all__ = ["kill"]


@click.command()
@click.option("-s", "--signal", "sig", type=SIGNAL, help="First signal to send (default TERM).")
@click.option(
    "-g", "--grace", type=DURATION, help="Time before SIGKILL (server default 10s; 0: at once)."
)
@click.argument("job_ids", metavar="ID...", nargs=-1, required=True, shell_complete=complete_job)
@connection_options
@fleet_options
async def kill(
    sig: int | None,
    grace: float | None,
    job_ids: tuple[str, ...],
    server: Server,
    fleet: FleetOptions,
) -> None:
    """Stop jobs ID...: each gets the signal, then SIGKILL after the grace period.

    Returns once every process of every job is gone, and prints the ids stopped.
    With --on (or HOST/ID), on many hosts.
    """
    if wants_fleet(fleet, job_ids):
        from ._fleet import kill_fleet  # only now: jobs.fleet is for --on alone

        raise click.exceptions.Exit(await kill_fleet(fleet, server, job_ids, sig, grace))
    stopped: list[str] = []
    failures: list[CliError] = []
    async with server.connect() as api:

        async def stop(job_id: str) -> None:
            try:
                with for_job(job_id):
                    await api.stop(wire.StopRequest(job_id=job_id, grace_seconds=grace, signal=sig))
            except CliError as exc:
                failures.append(exc)
            else:
                stopped.append(job_id)

        # All at once: one after the other would add up their grace periods.
        async with anyio.create_task_group() as tg:
            for job_id in dict.fromkeys(job_ids):
                tg.start_soon(stop, job_id)
    for job_id in stopped:
        click.echo(job_id)
    if failures:
        raise failures[0]

"""``jobs ps``: your jobs as a table, ids only, or JSON for scripts."""

from __future__ import annotations

import json

import asyncclick as click

from gen import service_pb2 as wire

from ._client import Server, connection_options, for_job
from ._complete import complete_job
from ._fleet_options import FleetOptions, fleet_options, wants_fleet
from ._render import job_document, table

__all__ = ["ps"]

_STATES = [
    name.removeprefix("JOB_STATE_").lower()
    for name in wire.JobState.keys()  # noqa: SIM118 (an enum wrapper, not a dict)
    if name != "JOB_STATE_UNSPECIFIED"
]


@click.command()
@click.option("-a", "--all", "show_all", is_flag=True, help="Ended jobs too (newest last).")
@click.option("-q", "--quiet", is_flag=True, help="Print full ids only, one a line.")
@click.option(
    "-l",
    "--selector",
    callback=lambda ctx, param, value: _checked_selector(value),
    help="Only jobs whose labels match, e.g. 'app=web,tier in (a,b),!canary'.",
)
@click.option(
    "--state",
    "states",
    type=click.Choice(_STATES),
    multiple=True,
    help="Only jobs in this state (repeat for several; implies -a).",
)
@click.option("--json", "as_json", is_flag=True, help='Print {"jobs": [...]} as JSON.')
@click.argument("job_ids", metavar="[ID]...", nargs=-1, shell_complete=complete_job)
@connection_options
@fleet_options
async def ps(
    show_all: bool,
    quiet: bool,
    selector: str | None,
    states: tuple[str, ...],
    as_json: bool,
    job_ids: tuple[str, ...],
    server: Server,
    fleet: FleetOptions,
) -> None:
    """List your running jobs (-a: all of them), oldest first, or the jobs ID...

    Tables show 8 characters of each id; --json and -q the full id. With --on
    (or HOST/ID), on many hosts: ids read HOST/ID.
    """
    wanted = list(states) if states else ([] if show_all or job_ids else ["running"])
    request = wire.ListRequest(
        selector=selector or "",
        states=[f"JOB_STATE_{state.upper()}" for state in wanted],
    )
    if wants_fleet(fleet, job_ids):
        from ._fleet import ps_fleet  # only now: jobs.fleet is for --on alone

        status = await ps_fleet(fleet, server, job_ids, as_json, request, quiet=quiet)
        raise click.exceptions.Exit(status)
    async with server.connect() as api:
        if job_ids:
            jobs = []
            for job_id in job_ids:
                with for_job(job_id):
                    jobs.append(await api.status(job_id))
        else:
            jobs = await api.list(request)
    if quiet:
        for job in jobs:
            click.echo(job.id)
    elif as_json:
        click.echo(json.dumps({"jobs": [job_document(job) for job in jobs]}, indent=2))
    else:
        click.echo(table(jobs))


def _checked_selector(text: str | None) -> str | None:
    """``text`` when it parses as a label selector (the server parses it again); a
    usage error naming the position otherwise, as ``--on`` gives."""
    if text is None:
        return None
    from jobs.errors import InvalidSelector  # only now: jobs ps without -l needs neither
    from jobs.selectors import parse_selector

    try:
        parse_selector(text)
    except InvalidSelector as exc:
        raise click.BadParameter(str(exc), param_hint="'-l' / '--selector'") from None
    return text

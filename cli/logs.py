"""``jobs logs``: a job's output, binary-safe, stdout and stderr kept apart; the
server selects the part asked for (tail, time window, streams)."""

from __future__ import annotations

import anyio
import asyncclick as click
from google.protobuf.timestamp_pb2 import Timestamp

from gen import service_pb2 as wire

from ._client import Server, connection_options, for_job, stream_output
from ._complete import complete_job
from ._fleet_options import FleetOptions, fleet_options, wants_fleet
from ._params import TIME, count

__all__ = ["logs"]


def _timestamp(seconds: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp


@click.command()
@click.option("-f", "--follow", is_flag=True, help="Keep streaming until the job has ended.")
@click.option("-n", "--tail", type=count(0), help="Only the last N lines (of each selection).")
@click.option("--since", type=TIME, help="Only output from then on: 10m (ago) or an RFC 3339 time.")
@click.option("--until", type=TIME, help="Only output before then: 10m (ago) or an RFC 3339 time.")
@click.option(
    "-t", "--timestamps", is_flag=True, help="Prefix each line with the time it was read."
)
@click.option("--stdout", "only_stdout", is_flag=True, help="Only the job's stdout.")
@click.option("--stderr", "only_stderr", is_flag=True, help="Only the job's stderr.")
@click.option(
    "--offset",
    type=count(0),
    default=0,
    help="Start at this byte of the output (to resume after a dropped connection).",
)
@click.argument("job_id", metavar="ID", shell_complete=complete_job)
@connection_options
@fleet_options
async def logs(
    follow: bool,
    tail: int | None,
    since: float | None,
    until: float | None,
    timestamps: bool,
    only_stdout: bool,
    only_stderr: bool,
    offset: int,
    job_id: str,
    server: Server,
    fleet: FleetOptions,
) -> None:
    """Print the output of job ID: its stdout to stdout, its stderr to stderr.

    With --on (or HOST/ID), from many hosts, merged line by line with [host] prefixes.
    """
    request = wire.LogsRequest(job_id=job_id, follow=follow, offset=offset, timestamps=timestamps)
    if tail is not None:
        request.tail_lines = tail
    if since is not None:
        request.since.CopyFrom(_timestamp(since))
    if until is not None:
        request.until.CopyFrom(_timestamp(until))
    if only_stdout != only_stderr:  # both, or neither: everything
        request.streams.append(wire.STREAM_STDOUT if only_stdout else wire.STREAM_STDERR)
    if wants_fleet(fleet, [job_id]):
        from ._fleet import logs_fleet  # only now: jobs.fleet is for --on alone

        raise click.exceptions.Exit(await logs_fleet(fleet, server, request, timestamps=timestamps))
    async with server.connect() as api:
        with for_job(job_id):
            try:
                await stream_output(api, request, timestamps=timestamps)
            except anyio.get_cancelled_exc_class():
                if follow:
                    click.echo(f"jobs: stopped following job {job_id}", err=True)
                raise

"""How jobs and their output look on a terminal and to scripts."""

from __future__ import annotations

import datetime
import shlex
import signal
import sys
import time
from typing import Any

import asyncclick as click

from gen import service_pb2 as wire
from gen.jobs import v1 as pb

__all__ = ["exit_code", "job_document", "table", "write_output"]


def _ended(job: pb.Job) -> bool:
    return job.state not in (pb.JobState.RUNNING, pb.JobState.UNSPECIFIED)


def exit_code(job: pb.Job) -> int:
    """The job's exit code as a shell reports it: the code, or 128 + the signal."""
    if job.exit_code is not None:
        return int(job.exit_code)
    if job.signal is not None:
        return 128 + int(job.signal)
    return 1


def state_name(state: pb.JobState) -> str:
    return (pb.JobState(state).name or "unknown").lower()


def write_output(message: wire.LogsResponse) -> None:
    """Job stdout to our stdout and job stderr to our stderr, bytes untouched."""
    if message.dropped:
        click.echo(
            f"jobs: {message.dropped} bytes of output before offset {message.offset} "
            "were dropped (the job's retention cap)",
            err=True,
        )
        return
    target = sys.stderr.buffer if message.stream == pb.Stream.STDERR else sys.stdout.buffer
    target.write(message.data)
    target.flush()


def _exit_column(job: pb.Job) -> str:
    if not _ended(job):
        return "-"
    if job.exit_code is not None:
        return str(job.exit_code)
    if job.signal is not None:
        try:
            return signal.Signals(job.signal).name
        except ValueError:
            return f"signal {job.signal}"
    return "?"


def _age(started: datetime.datetime) -> str:
    seconds = max(0, int(time.time() - started.timestamp()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def table(jobs: list[pb.Job]) -> str:
    """The ``ps`` table: ID, STATE, EXIT, AGE, COMMAND."""
    rows = [("ID", "STATE", "EXIT", "AGE", "COMMAND")]
    for job in jobs:
        command = shlex.join(job.command)
        if len(command) > 60:
            command = command[:59] + "…"
        rows.append(
            (job.id, state_name(job.state), _exit_column(job), _age(job.started_at), command)
        )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True))
        + "  "
        + row[4]
        for row in rows
    )


def job_document(job: pb.Job) -> dict[str, Any]:
    """A job for ``--json``: a stable document whose keys never change meaning."""
    final = _ended(job)
    limits = job.limits
    return {
        "id": job.id,
        "owner": job.owner,
        "state": state_name(job.state),
        "command": list(job.command),
        "cwd": job.cwd or None,
        "pid": job.pid or None,
        "exit_code": job.exit_code,
        "signal": job.signal,
        "started_at": job.started_at.isoformat(),
        "ended_at": job.ended_at.isoformat() if final else None,
        "timeout_seconds": job.timeout_seconds,
        "limits": {
            "cpu": limits.cpu if limits else None,
            "memory": limits.memory if limits else None,
            "pids": limits.pids if limits else None,
            "io_read": [
                {"device": r.device or None, "bytes_per_second": r.bytes_per_second}
                for r in (limits.io_read if limits else [])
            ],
            "io_write": [
                {"device": r.device or None, "bytes_per_second": r.bytes_per_second}
                for r in (limits.io_write if limits else [])
            ],
        },
        "isolation": [(pb.Namespace(n).name or str(n)).lower() for n in job.isolation],
        "output_bytes": job.output_bytes,
        "dropped_bytes": job.dropped_bytes,
        "lost_bytes": job.lost_bytes,
    }

"""How jobs and their output look on a terminal and to scripts.

Jobs are protobuf's C messages (``gen/service_pb2``): unset optional fields are
asked with ``HasField``.
"""

from __future__ import annotations

import re
import shlex
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any

import asyncclick as click

from gen import service_pb2 as wire
from jobs.client import LineStamper, docker_exit_code, utc_time

__all__ = [
    "SHORT_ID",
    "OutputWriter",
    "end_note",
    "escape",
    "exit_code",
    "job_document",
    "short_id",
    "state_name",
    "table",
]

SHORT_ID = 8
"""Characters of an id in tables, as docker shows 12 of its 64."""


def short_id(job: wire.Job) -> str:
    """The id as tables show it."""
    return job.id[:SHORT_ID]


def state_name(state: int) -> str:
    """``running``, ``timed_out``...: the proto's name without its prefix, lowercase."""
    return wire.JobState.Name(state).removeprefix("JOB_STATE_").lower()


def _ended(job: wire.Job) -> bool:
    return job.state not in (wire.JOB_STATE_RUNNING, wire.JOB_STATE_UNSPECIFIED)


def exit_code(job: wire.Job) -> int:
    """The exit status of ``run -f`` and ``wait``, as ``docker run``'s: the job's code,
    or 128 + the signal that killed it; a timed-out job never exits 0."""
    return docker_exit_code(
        job.exit_code if job.HasField("exit_code") else None,
        job.signal if job.HasField("signal") else None,
        timed_out=job.state == wire.JOB_STATE_TIMED_OUT,
    )


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _how(job: wire.Job) -> str:
    if job.HasField("exit_code"):
        return f"exited {job.exit_code}"
    if job.HasField("signal"):
        return f"killed by {_signal_name(job.signal)}"
    return "no exit status"


def end_note(job: wire.Job) -> str | None:
    """One line saying why a job ended other than on its own; None when it did."""
    who = f"jobs: job {short_id(job)}"
    if job.state == wire.JOB_STATE_STOPPED:
        return f"{who} was stopped ({_how(job)})"
    if job.state == wire.JOB_STATE_TIMED_OUT:
        return f"{who} timed out after {_seconds(job.timeout_seconds)} ({_how(job)})"
    if job.state == wire.JOB_STATE_OOM_KILLED:
        limit = f" of {_bytes(job.limits.memory)}" if job.limits.HasField("memory") else ""
        return f"{who} was killed for exceeding its memory limit{limit} ({_how(job)})"
    if job.state == wire.JOB_STATE_SHUTDOWN:
        return f"{who} was stopped by the server shutting down ({_how(job)})"
    if job.state == wire.JOB_STATE_LOST:
        return f"{who} was lost: the server went down while it ran, its end is unknown"
    return None


def _seconds(value: float) -> str:
    whole = int(value)
    if whole != value or whole < 60:
        return f"{value:g}s"
    minutes, seconds = divmod(whole, 60)
    hours, minutes = divmod(minutes, 60)
    parts = [(hours, "h"), (minutes, "m"), (seconds, "s")]
    return "".join(f"{n}{unit}" for n, unit in parts if n)


def _bytes(value: int) -> str:
    for unit, size in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if value >= size and value % size == 0:
            return f"{value // size}{unit}"
    return f"{value} bytes"


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def escape(text: str) -> str:
    """``text`` with control characters as escapes (``\\n``, ``\\x1b``), so that a
    command can neither break a table's lines nor drive the terminal."""
    return _CONTROL.sub(lambda m: m[0].encode("unicode_escape").decode(), text)


def age(started: float) -> str:
    """How long ago ``started`` (seconds since the epoch) was: ``42s``, ``5m``, ``3h``, ``2d``."""
    seconds = max(0, int(time.time() - started))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _exit_column(job: wire.Job) -> str:
    if not _ended(job):
        return "-"
    if job.HasField("exit_code"):
        return str(job.exit_code)
    if job.HasField("signal"):
        return _signal_name(job.signal)
    return "?"


COMMAND_WIDTH = 60


def command_cell(argv: Sequence[str]) -> str:
    """A command for a table: quoted as a shell would, escaped, cut at ``COMMAND_WIDTH``."""
    command = escape(shlex.join(argv))
    if len(command) > COMMAND_WIDTH:
        command = command[: COMMAND_WIDTH - 1] + "…"
    return command


def columns(rows: Sequence[Sequence[str]]) -> str:
    """``rows`` (the header first) as columns two spaces apart; the last one, a command
    or a list, is left as long as it is."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True))
        + "  "
        + row[-1]
        for row in rows
    )


def table(jobs: Sequence[wire.Job], hosts: Sequence[str] | None = None) -> str:
    """The ``ps`` table: ID (8 characters), NAME, STATE, EXIT, AGE, COMMAND; with
    ``hosts`` (one per job, for ``ps --on``) the ids read ``HOST/ID``."""
    header = ("ID", "NAME", "STATE", "EXIT", "AGE", "COMMAND")
    where = [f"{host}/" for host in hosts] if hosts is not None else [""] * len(jobs)
    rows = [
        (
            prefix + short_id(job),
            job.name or "-",
            state_name(job.state),
            _exit_column(job),
            age(job.started_at.seconds),
            command_cell(job.command),
        )
        for prefix, job in zip(where, jobs, strict=True)
    ]
    return columns([header, *rows])


def job_document(job: wire.Job) -> dict[str, Any]:
    """A job for ``--json`` and ``inspect``: a stable document whose keys never change
    meaning. Environment values are never part of it (the server does not send them)."""
    limits = job.limits
    usage = job.usage if job.HasField("usage") else None
    return {
        "id": job.id,
        "name": job.name or None,
        "labels": dict(sorted(job.labels.items())),
        "owner": job.owner,
        "user": job.user or None,
        "state": state_name(job.state),
        "command": list(job.command),
        "cwd": job.cwd or None,
        "pid": job.pid or None,
        "exit_code": job.exit_code if job.HasField("exit_code") else None,
        "signal": job.signal if job.HasField("signal") else None,
        "started_at": utc_time(job.started_at),
        "ended_at": utc_time(job.ended_at) if job.HasField("ended_at") else None,
        "timeout_seconds": job.timeout_seconds if job.HasField("timeout_seconds") else None,
        "limits": {
            "cpu": limits.cpu if limits.HasField("cpu") else None,
            "memory": limits.memory if limits.HasField("memory") else None,
            "pids": limits.pids if limits.HasField("pids") else None,
            "io_read": [
                {"device": r.device or None, "bytes_per_second": r.bytes_per_second}
                for r in limits.io_read
            ],
            "io_write": [
                {"device": r.device or None, "bytes_per_second": r.bytes_per_second}
                for r in limits.io_write
            ],
        },
        "isolation": [
            wire.Namespace.Name(n).removeprefix("NAMESPACE_").lower() for n in job.isolation
        ],
        "output_bytes": job.output_bytes,
        "dropped_bytes": job.dropped_bytes,
        "lost_bytes": job.lost_bytes,
        "usage": None
        if usage is None
        else {
            "cpu_user_seconds": round(usage.cpu_user_seconds, 6),
            "cpu_system_seconds": round(usage.cpu_system_seconds, 6),
            "memory_peak_bytes": usage.memory_peak_bytes,
            "io_read_bytes": usage.io_read_bytes,
            "io_write_bytes": usage.io_write_bytes,
            "source": usage.source,
        },
    }


class OutputWriter:
    """Job stdout to our stdout and job stderr to our stderr, bytes untouched; with
    ``timestamps``, each line prefixed with the time of the chunk it starts in."""

    def __init__(self, *, timestamps: bool = False) -> None:
        self._stamper = LineStamper() if timestamps else None

    def write(self, message: Any) -> None:
        """Write one ``LogsResponse``: its data, or a notice of dropped output."""
        if message.dropped:
            click.echo(
                f"jobs: {message.dropped} bytes of output before offset {message.offset} "
                "were dropped (the job's retention cap)",
                err=True,
            )
            return
        stderr = message.stream == wire.STREAM_STDERR
        target = sys.stderr.buffer if stderr else sys.stdout.buffer
        data = self._stamper.stamp(message) if self._stamper else message.data
        target.write(data)
        target.flush()

    def flush(self) -> None:
        """Flush both outputs."""
        sys.stdout.flush()
        sys.stderr.flush()

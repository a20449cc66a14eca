"""The CLI's expected errors, and the one place where an error becomes a line and a status."""

from __future__ import annotations

import contextvars
import sys
from typing import IO, Any

import asyncclick as click
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from jobs.client import ConnectionFailed

__all__ = [
    "EXIT_CALL_FAILED",
    "EXIT_CANNOT_EXECUTE",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_FOUND",
    "EXIT_USAGE",
    "CliError",
    "describe",
    "docker_exit_codes",
    "report",
]

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
# docker run's codes, for `run -f` and `wait`, whose other codes are the job's own.
EXIT_CALL_FAILED = 125
EXIT_CANNOT_EXECUTE = 126
EXIT_NOT_FOUND = 127

_docker = contextvars.ContextVar("docker_exit_codes", default=False)


def docker_exit_codes() -> None:
    """Make the current command's failures exit as ``docker run``'s do (125, 126,
    127), since its other exit codes are a job's own (``run -f``, ``wait``)."""
    _docker.set(True)


def _docker_status(error: BaseException) -> int:
    if isinstance(error, GRPCError) and error.status is Status.FAILED_PRECONDITION:
        # The server names an unusable command "command 'x': <reason>".
        message = error.message or ""
        if message.startswith("command "):
            return (
                EXIT_NOT_FOUND
                if message.endswith("not found") or ("not found in PATH" in message)
                else EXIT_CANNOT_EXECUTE
            )
    return EXIT_CALL_FAILED


class CliError(click.ClickException):
    """An expected failure: ``jobs: <message>`` on stderr, exit status 1."""

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"jobs: {self.format_message()}", err=True)


_HINTS = {
    Status.PERMISSION_DENIED: "permission denied: {}",
    Status.UNAUTHENTICATED: "the server does not accept this certificate: {}",
    Status.UNAVAILABLE: "the server is unavailable: {}",
    Status.DEADLINE_EXCEEDED: "the server did not answer in time: {}",
}


def describe(error: GRPCError) -> str:
    """A one-line explanation of an error status from the server."""
    message = error.message or error.status.name.lower().replace("_", " ")
    return _HINTS.get(error.status, "{}").format(message)


def report(raised: BaseException) -> int:
    """Report an expected error on stderr and return the exit status; re-raise anything else.

    ``raised`` may be an exception group from a task group inside a command:
    commands raise one error at a time, so its first leaf is the one reported.
    """
    error = raised
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    if isinstance(error, click.exceptions.Exit):
        return error.exit_code
    failed = _docker_status(error) if _docker.get() else 1
    if isinstance(error, click.UsageError):
        hint = f" (see '{error.ctx.command_path} --help')" if error.ctx else ""
        click.echo(f"jobs: {error.format_message()}{hint}", err=True)
        return EXIT_USAGE
    if isinstance(error, click.ClickException):
        click.echo(f"jobs: {error.format_message()}", err=True)
        return failed if error.exit_code == 1 else error.exit_code
    # jobs.fleet is imported by --on commands only; unimported, none of its errors exist.
    fleet = sys.modules.get("jobs.fleet")
    if isinstance(error, ConnectionFailed) or (
        fleet is not None and isinstance(error, fleet.FleetError)
    ):
        click.echo(f"jobs: {error}", err=True)
        return failed
    if isinstance(error, GRPCError):
        click.echo(f"jobs: {describe(error)}", err=True)
        return failed
    if isinstance(error, click.Abort):
        return EXIT_INTERRUPTED
    raise raised

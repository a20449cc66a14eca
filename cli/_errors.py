"""The CLI's expected errors, and the one place where an error becomes a line and a status."""

from __future__ import annotations

from typing import IO, Any

import asyncclick as click
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from jobs.client import ConnectionFailed
from jobs.fleet import FleetError

__all__ = ["EXIT_INTERRUPTED", "EXIT_USAGE", "CliError", "describe", "report"]

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


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
    if isinstance(error, click.UsageError):
        hint = f" (see '{error.ctx.command_path} --help')" if error.ctx else ""
        click.echo(f"jobs: {error.format_message()}{hint}", err=True)
        return EXIT_USAGE
    if isinstance(error, click.ClickException):
        click.echo(f"jobs: {error.format_message()}", err=True)
        return error.exit_code
    if isinstance(error, ConnectionFailed | FleetError):
        click.echo(f"jobs: {error}", err=True)
        return 1
    if isinstance(error, GRPCError):
        click.echo(f"jobs: {describe(error)}", err=True)
        return 1
    if isinstance(error, click.Abort):
        return EXIT_INTERRUPTED
    raise raised

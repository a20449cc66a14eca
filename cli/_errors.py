"""The CLI's expected errors, and how each becomes one line on stderr and an exit code."""

from __future__ import annotations

from typing import IO, Any

import asyncclick as click
from grpclib.const import Status
from grpclib.exceptions import GRPCError

__all__ = ["CliError", "describe"]


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

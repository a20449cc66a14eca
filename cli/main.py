"""The ``jobs`` root command and the CLI's one error boundary."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import anyio
import asyncclick as click
from grpclib.exceptions import GRPCError

from jobs.client import ConnectionFailed

from ._errors import describe
from .kill import kill
from .logs import logs
from .pki import pki
from .ps import ps
from .run import run
from .serve import serve
from .wait import wait

__all__ = ["cli", "main", "run_async"]

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="jobs", prog_name="jobs")
async def cli() -> None:
    """Run, follow and stop jobs on a jobs server over mutual TLS.

    With no flags, the commands use the identity and address that `jobs serve`
    sets up on first start in $JOBS_HOME. Shell completion: see the README.
    """


for _command in (run, logs, ps, kill, wait, serve, pki):
    cli.add_command(_command)


async def run_async(args: Sequence[str]) -> int:
    """Run the CLI on ``args`` in the current event loop; the exit status.

    The one boundary: every expected error becomes ``jobs: <message>`` on
    stderr and a non-zero status; only a bug shows a traceback. (A broken stdout
    pipe, as in ``jobs logs ID | head``, click itself ends quietly with status 1.)
    """
    try:
        result = await cli.main(list(args), prog_name="jobs", standalone_mode=False)
    except BaseExceptionGroup as group:  # from a task group inside a command
        return _exit_status(_leaf(group), group)
    except Exception as exc:
        return _exit_status(exc, exc)
    return result if isinstance(result, int) else 0


def _exit_status(error: BaseException, raised: BaseException) -> int:
    """Report an expected error and return the exit status; re-raise anything else."""
    if isinstance(error, click.exceptions.Exit):
        return error.exit_code
    if isinstance(error, click.UsageError):
        hint = f" (see '{error.ctx.command_path} --help')" if error.ctx else ""
        click.echo(f"jobs: {error.format_message()}{hint}", err=True)
        return EXIT_USAGE
    if isinstance(error, click.ClickException):
        click.echo(f"jobs: {error.format_message()}", err=True)
        return error.exit_code
    if isinstance(error, ConnectionFailed):
        click.echo(f"jobs: {error}", err=True)
        return 1
    if isinstance(error, GRPCError):
        click.echo(f"jobs: {describe(error)}", err=True)
        return 1
    if isinstance(error, click.Abort):
        return EXIT_INTERRUPTED
    raise raised


def _leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first leaf of an exception group (commands raise one error at a time)."""
    leaf: BaseException = group
    while isinstance(leaf, BaseExceptionGroup):
        leaf = leaf.exceptions[0]
    return leaf


def main() -> None:
    """The ``jobs`` console script: the CLI on uvloop; Ctrl-C stops following, not jobs."""
    try:
        status = anyio.run(
            run_async, sys.argv[1:], backend="asyncio", backend_options={"use_uvloop": True}
        )
    except KeyboardInterrupt:
        status = EXIT_INTERRUPTED
    sys.exit(status)

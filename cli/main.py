"""The ``jobs`` root command and the CLI's one error boundary."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import anyio
import asyncclick as click

from ._errors import EXIT_INTERRUPTED, report
from .hosts import hosts
from .info import info
from .kill import kill
from .logs import logs
from .pki import pki
from .ps import ps
from .run import run
from .serve import serve
from .wait import wait

__all__ = ["cli", "main", "run_async"]


class _Root(click.Group):
    """The root group, whose ``main`` is the CLI's one error boundary.

    Every expected error becomes ``jobs: <message>`` on stderr and a non-zero
    status (see ``_errors.report``); only a bug shows a traceback. It is the
    same boundary for the console script and for asyncclick's ``CliRunner``,
    which both call ``main``. (A broken stdout pipe, as in ``jobs logs ID |
    head``, click itself ends quietly with status 1.)
    """

    async def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            result = await super().main(
                args, prog_name, complete_var, standalone_mode=False, **extra
            )
            status = result if isinstance(result, int) else 0
        except BaseExceptionGroup as group:
            status = report(group)
        except Exception as exc:
            status = report(exc)
        if standalone_mode:
            sys.exit(status)
        return status


@click.group(cls=_Root, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="jobs", prog_name="jobs")
async def cli() -> None:
    """Run, follow and stop jobs on a jobs server over mutual TLS.

    With no flags, the commands use the identity and address that `jobs serve`
    sets up on first start in $JOBS_HOME. Shell completion: see the README.
    """


for _command in (run, logs, ps, kill, wait, info, hosts, serve, pki):
    cli.add_command(_command)


async def run_async(args: Sequence[str]) -> int:
    """Run the CLI on ``args`` in the current event loop; the exit status."""
    status: int = await cli.main(list(args), prog_name="jobs", standalone_mode=False)
    return status


def main() -> None:
    """The ``jobs`` console script: the CLI on uvloop; Ctrl-C stops following, not jobs."""
    try:
        status = anyio.run(
            run_async, sys.argv[1:], backend="asyncio", backend_options={"use_uvloop": True}
        )
    except KeyboardInterrupt:
        status = EXIT_INTERRUPTED
    sys.exit(status)

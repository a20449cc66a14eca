"""The ``jobs`` root command: a lazy group, and the CLI's one error boundary.

Each command lives in a module of its own, imported only when that command runs:
a client command must not pay at start-up for the server, the job engine or the
PKI tooling (and its cryptography).
"""

from __future__ import annotations

import asyncio
import importlib
import sys
from collections.abc import Sequence
from typing import Any

import asyncclick as click
import uvloop

from ._errors import EXIT_INTERRUPTED, report

__all__ = ["cli", "main", "run_async"]

COMMANDS = {
    "run": "cli.run",
    "ps": "cli.ps",
    "logs": "cli.logs",
    "wait": "cli.wait",
    "kill": "cli.kill",
    "inspect": "cli.inspect",
    "info": "cli.info",
    "hosts": "cli.hosts",
    "serve": "cli.serve",
    "pki": "cli.pki",
    "completion": "cli.completion",
}
"""Each command and the module that defines it (as an attribute of the same name)."""

SUMMARIES = {
    "run": "Run a command as a job.",
    "ps": "List your jobs.",
    "logs": "Print a job's output.",
    "wait": "Wait for a job to end; exit with its code.",
    "kill": "Stop jobs: a signal, a grace, then SIGKILL.",
    "inspect": "Show jobs in full, as JSON.",
    "info": "Show who a server is, what it offers and its load.",
    "hosts": "List the fleet's hosts and their state.",
    "serve": "Run a jobs server.",
    "pki": "Make a CA and certificates.",
    "completion": "Print the shell set-up (bash, zsh, fish).",
}
"""What ``jobs --help`` and completion show for each command: defined here, so that
neither imports every command to ask it."""


class _Root(click.Group):
    """The root group: commands loaded on first use, and ``main`` as the CLI's one
    error boundary.

    Every expected error becomes ``jobs: <message>`` on stderr and a non-zero
    status (see ``_errors.report``); only a bug shows a traceback. It is the
    same boundary for the console script and for asyncclick's ``CliRunner``,
    which both call ``main``. (A broken stdout pipe, as in ``jobs logs ID |
    head``, click itself ends quietly with status 1.)
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMANDS.get(cmd_name)
        if module is None:
            return None
        command: click.Command = getattr(importlib.import_module(module), cmd_name)
        return command

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[Any]:
        from asyncclick.shell_completion import CompletionItem

        words = [
            CompletionItem(name, help=SUMMARIES[name])
            for name in COMMANDS
            if name.startswith(incomplete)
        ]
        # The root's options; not click.Group's, which imports every command.
        return words + click.Command.shell_complete(self, ctx, incomplete)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, SUMMARIES[name]) for name in COMMANDS])

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


@click.group(
    cls=_Root,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(package_name="jobs", prog_name="jobs")
@click.pass_context
async def cli(ctx: click.Context) -> None:
    """Run, follow and stop jobs on a jobs server over mutual TLS.

    With no flags, the commands use the identity and address that `jobs serve`
    sets up on first start in $JOBS_HOME. In a shell, `jobs` is also a builtin:
    run `eval "$(env jobs completion bash)"` once (see `jobs completion --help`),
    or call the `jobsctl` alias.
    """
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


async def run_async(args: Sequence[str]) -> int:
    """Run the CLI on ``args`` in the current event loop; the exit status."""
    status: int = await cli.main(list(args), prog_name="jobs", standalone_mode=False)
    return status


def main() -> None:
    """The ``jobs`` console script: the CLI on uvloop; Ctrl-C stops following, not jobs."""
    # A plain asyncio Runner, not anyio.run: anyio's asyncio backend costs a client
    # command ~30 ms of imports at start-up, and only the commands that use anyio
    # (which works in any asyncio loop) load it. The Runner turns Ctrl-C into the
    # main task's cancellation, then KeyboardInterrupt, as anyio.run does.
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            status = runner.run(run_async(sys.argv[1:]))
    except KeyboardInterrupt:
        status = EXIT_INTERRUPTED
    sys.exit(status)

"""The options of the ``--on`` path, cheap to import: every client command takes them,
and only a command given ``--on`` (or a ``HOST/ID``) imports ``cli._fleet`` and
``jobs.fleet``, so `jobs ps` alone starts as fast as before."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncclick as click
from asyncclick.core import ParameterSource

from ._settings import etcd_tls_options

__all__ = [
    "DEFAULT_HOST_TIMEOUT",
    "DEFAULT_PARALLEL",
    "FleetOptions",
    "fleet_options",
    "run_fleet_options",
    "wants_fleet",
]

F = TypeVar("F", bound=Callable[..., Any])

# jobs.fleet's own defaults, repeated so that parsing options imports nothing
# heavy (tests/test_fleet_lib.py checks that they agree).
DEFAULT_PARALLEL = 16
DEFAULT_HOST_TIMEOUT = 10.0


@dataclass(frozen=True)
class FleetOptions:
    """Which hosts, and how hard to push them: the options every ``--on`` command takes."""

    on: str | None
    parallel: int
    inventory: Path | None
    discover: str | None
    host_timeout_text: str
    discover_ca: Path | None = None
    discover_cert: Path | None = None
    discover_key: Path | None = None

    @property
    def host_timeout(self) -> float:
        """``--host-timeout`` in seconds (a usage error if it is no duration)."""
        # Parsed here, on use: cli._params imports the job model, which a plain
        # `jobs ps` must not pay for.
        from ._params import DURATION

        option = click.Option(["--host-timeout"])
        seconds = DURATION.convert(self.host_timeout_text, option, None)
        if seconds <= 0:
            raise click.BadParameter("must be more than 0s", param=option)
        return seconds


def fleet_options(command: F) -> F:
    """Add ``--on``, ``--parallel``, ``--inventory``, ``--discover`` and ``--host-timeout``,
    passed on as one ``fleet``."""

    @functools.wraps(command)
    async def with_fleet(
        *args: Any,
        on: str | None,
        parallel: int,
        inventory: Path | None,
        discover: str | None,
        discover_ca: Path | None,
        discover_cert: Path | None,
        discover_key: Path | None,
        host_timeout: str,
        **kwargs: Any,
    ) -> Any:
        tls = {"ca": discover_ca, "cert": discover_cert, "key": discover_key}
        if discover is None:
            # Given on the command line they are a mistake; exported (JOBS_DISCOVER_CA
            # next to a JOBS_DISCOVER not set this time) they are not used.
            source = click.get_current_context().get_parameter_source
            typed = [
                f"--discover-{k}"
                for k, v in tls.items()
                if v is not None and source(f"discover_{k}") is ParameterSource.COMMANDLINE
            ]
            if typed:
                raise click.UsageError(f"{'/'.join(typed)} need --discover")
            tls = dict.fromkeys(tls)
        options = FleetOptions(
            on,
            parallel,
            inventory,
            discover,
            host_timeout,
            discover_ca=tls["ca"],
            discover_cert=tls["cert"],
            discover_key=tls["key"],
        )
        return await command(*args, fleet=options, **kwargs)

    decorated: Any = with_fleet
    for option in reversed(
        [
            click.option(
                "--on",
                metavar="SELECTOR",
                help="Every host matching a label selector (role=web,zone in (a,b)) "
                "or named (web1,web2); see `jobs hosts`.",
            ),
            click.option(
                "--parallel",
                type=click.IntRange(min=1),
                default=DEFAULT_PARALLEL,
                show_default=True,
                help="With --on: hosts worked on at once.",
            ),
            click.option(
                "--inventory",
                envvar="JOBS_INVENTORY",
                type=click.Path(dir_okay=False, path_type=Path),
                help="Hosts file. [env: JOBS_INVENTORY; default: $JOBS_HOME/hosts.toml]",
            ),
            click.option(
                "--discover",
                envvar="JOBS_DISCOVER",
                metavar="etcd://HOST:PORT[/PREFIX]",
                help="Also the servers registered in etcd. [env: JOBS_DISCOVER]",
            ),
            etcd_tls_options("--discover", "JOBS_DISCOVER"),
            click.option(
                "--host-timeout",
                metavar="DURATION",
                default=f"{DEFAULT_HOST_TIMEOUT:g}s",
                show_default=True,
                help="With --on: a host that does not answer a call within this is unreachable.",
            ),
        ]
    ):
        decorated = option(decorated)
    return decorated  # type: ignore[no-any-return]


def run_fleet_options(command: F) -> F:
    """The options only ``run --on`` takes, passed on as one ``fleet_run`` dict."""

    @functools.wraps(command)
    async def with_run(
        *args: Any,
        one: bool,
        no_prefix: bool,
        group: bool,
        log_dir: Path | None,
        fail_fast: bool,
        max_failures: int | None,
        **kwargs: Any,
    ) -> Any:
        chosen = {
            "one": one,
            "no_prefix": no_prefix,
            "group": group,
            "log_dir": log_dir,
            "max_failures": 1 if fail_fast else max_failures,
        }
        return await command(*args, fleet_run=chosen, **kwargs)

    decorated: Any = with_run
    for option in reversed(
        [
            click.option(
                "--one", is_flag=True, help="With --on: one host, the least loaded that takes it."
            ),
            click.option("--no-prefix", is_flag=True, help="With --on: no [host] before lines."),
            click.option(
                "--group", is_flag=True, help="With --on: each host's output as one block."
            ),
            click.option(
                "--log-dir",
                type=click.Path(file_okay=False, path_type=Path),
                help="With --on: write HOST.out, HOST.err, HOST.json, hosts.succeeded, "
                "hosts.failed here.",
            ),
            click.option(
                "--fail-fast", is_flag=True, help="With --on: stop the others at the first failure."
            ),
            click.option(
                "--max-failures",
                type=click.IntRange(min=1),
                help="With --on: stop the others after N hosts failed.",
            ),
        ]
    ):
        decorated = option(decorated)
    return decorated  # type: ignore[no-any-return]


def wants_fleet(options: FleetOptions, job_ids: Sequence[str] = ()) -> bool:
    """Whether a command goes to many hosts: ``--on``, or an id that reads ``HOST/ID``."""
    return options.on is not None or any("/" in job_id for job_id in job_ids)

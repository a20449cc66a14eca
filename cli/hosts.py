"""``jobs hosts``: every known host, its labels, version and load, and whether it answers."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import anyio
import asyncclick as click

from jobs import fleet
from jobs.fleet import NoMatchingHost

from ._client import Server, connection_options
from ._fleet import Watch, hosts_of, identity_of, known_hosts
from ._fleet_options import FleetOptions, fleet_options
from ._params import DURATION
from ._render import columns

__all__ = ["hosts"]

# How often --watch asks every host again (discovery's joins and leaves come at once).
_POLL = 5.0


@click.command()
@click.option("--json", "as_json", is_flag=True, help='Print {"hosts": [...]} as JSON.')
@click.option(
    "-w",
    "--watch",
    is_flag=True,
    help="Keep watching: a line for each host that joins, leaves or changes (JSON lines "
    "with --json). Ctrl-C ends it.",
)
@click.option(
    "--timeout",
    type=DURATION,
    default=fleet.DEFAULT_INFO_TIMEOUT,
    show_default=True,
    help="A host that has not answered within this is unreachable.",
)
@connection_options
@fleet_options
async def hosts(
    as_json: bool, watch: bool, timeout: float, server: Server, fleet: FleetOptions
) -> None:
    """List the hosts of the inventory and discovery (--on: those selected).

    Every host is asked at once: NAME, ADDR, VERSION, JOBS (running), LABELS,
    and STATUS (ok, or why it does not answer). Exits 255 when a host is
    unreachable.
    """
    identity = identity_of(server)
    if not watch:
        chosen = await hosts_of(fleet, server) if fleet.on is not None else await known_hosts(fleet)
        if not chosen:
            raise NoMatchingHost("", 0)
        infos = await fleet_info(chosen, identity, fleet.parallel, timeout)
        rows = [_row(host, info) for host, info in zip(chosen, infos, strict=True)]
        click.echo(json.dumps({"hosts": rows}, indent=2) if as_json else _table(rows))
        status = 0 if all(row["reachable"] for row in rows) else 255
        raise click.exceptions.Exit(status)
    await _watch(fleet, identity, timeout, as_json)


async def fleet_info(
    chosen: Sequence[fleet.Host], identity: fleet.Identity, parallel: int, timeout: float
) -> list[fleet.HostInfo]:
    """``Info`` from every host, in their order."""
    return await fleet.query_info(chosen, identity, parallel=parallel, timeout=timeout)


async def _watch(
    options: FleetOptions, identity: fleet.Identity, timeout: float, as_json: bool
) -> None:
    """Print the hosts, then a line per change: a host joining or leaving (from
    discovery, at once) or answering differently (asked every few seconds)."""
    shown: dict[str, dict[str, Any]] = {}
    header = not as_json

    async with Watch(options) as watch:
        while True:
            chosen = watch.hosts()
            infos = await fleet_info(chosen, identity, options.parallel, timeout)
            rows = {host.name: _row(host, info) for host, info in zip(chosen, infos, strict=True)}
            changed = [row for name, row in rows.items() if shown.get(name) != row]
            gone = [
                {**row, "status": "left", "reachable": False}
                for name, row in shown.items()
                if name not in rows
            ]
            for row in [*changed, *gone]:
                if as_json:
                    click.echo(json.dumps(row))
                else:
                    text = _table([row])
                    click.echo(text if header else text.split("\n", 1)[1])
                    header = False
            shown = rows
            with anyio.move_on_after(_POLL):
                await watch.changed()


def _row(host: fleet.Host, item: fleet.HostInfo) -> dict[str, Any]:
    info = item.info
    labels: Mapping[str, str] = {**host.labels, **(info.labels if info else {})}
    return {
        "name": host.name,
        "addr": host.addr,
        "labels": dict(sorted(labels.items())),
        "version": info.version if info else None,
        "running_jobs": info.load.running_jobs if info and info.load else None,
        "reachable": item.reachable,
        "status": "ok" if item.failure is None else f"{item.failure.value}: {item.reason}",
        "cgroup": info.capabilities.cgroup if info and info.capabilities else None,
        "source": host.source,
    }


def _table(rows: Sequence[Mapping[str, Any]]) -> str:
    lines = [("NAME", "ADDR", "VERSION", "JOBS", "LABELS", "STATUS")]
    for row in rows:
        jobs = row["running_jobs"]
        lines.append(
            (
                row["name"],
                row["addr"],
                row["version"] or "-",
                "-" if jobs is None else str(jobs),
                ",".join(f"{k}={v}" for k, v in row["labels"].items()) or "-",
                row["status"],
            )
        )
    return columns(lines)

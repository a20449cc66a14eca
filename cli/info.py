"""``jobs info``: who a server is, what it offers jobs, and how loaded it is."""

from __future__ import annotations

import json
from typing import Any

import asyncclick as click

from gen import service_pb2 as wire

from ._client import Server, connection_options

__all__ = ["info"]


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print it as one JSON document.")
@connection_options
async def info(as_json: bool, server: Server) -> None:
    """Show the server's name, labels, version, capabilities, load and certificate names."""
    async with server.connect() as api:
        reply = await api.info()
    document = info_document(reply)
    if as_json:
        click.echo(json.dumps(document, indent=2))
    else:
        click.echo(_text(document))


def info_document(reply: wire.InfoResponse) -> dict[str, Any]:
    """An ``InfoResponse`` as plain JSON-ready data (the layout ``--json`` prints)."""
    capabilities = reply.capabilities
    load = reply.load
    return {
        "name": reply.name,
        "version": reply.version,
        "labels": dict(sorted(reply.labels.items())),
        "capabilities": {
            "cgroup": capabilities.cgroup,
            "controllers": list(capabilities.controllers),
            "namespaces": [
                wire.Namespace.Name(ns).removeprefix("NAMESPACE_").lower()
                for ns in capabilities.namespaces
            ],
            "block_devices": list(capabilities.block_devices),
        },
        "load": {
            "running_jobs": load.running_jobs,
            "caller_running_jobs": load.caller_running_jobs,
            "max_running_per_account": load.max_running_per_account,
            "max_streams_per_account": load.max_streams_per_account,
        },
        "certificate_names": list(reply.certificate_names),
    }


def _text(document: dict[str, Any]) -> str:
    capabilities = document["capabilities"]
    load = document["load"]
    controllers = ", ".join(capabilities["controllers"]) or "none"
    rows = [
        ("Name", document["name"]),
        ("Version", document["version"]),
        ("Labels", "\n".join(f"{k}={v}" for k, v in document["labels"].items()) or "none"),
        ("Cgroups", f"{capabilities['cgroup']} (controllers: {controllers})"),
        ("Namespaces", ", ".join(capabilities["namespaces"]) or "none (needs root)"),
        ("Block devices", ", ".join(capabilities["block_devices"]) or "none"),
        (
            "Running jobs",
            f"{load['running_jobs']} (yours: {load['caller_running_jobs']}; per account at "
            f"most {load['max_running_per_account']} running, "
            f"{load['max_streams_per_account']} log streams)",
        ),
        ("Certificate", ", ".join(document["certificate_names"]) or "no names"),
    ]
    width = max(len(title) for title, _ in rows) + 2
    lines = []
    for title, value in rows:
        first, *rest = str(value).split("\n")
        lines.append(f"{title + ':':<{width}}{first}")
        lines.extend(" " * width + line for line in rest)
    return "\n".join(lines)

"""Completion of job ids and names, asked of the server: quickly, and quietly
giving nothing when it cannot answer."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import Any

import asyncclick as click
from asyncclick.shell_completion import CompletionItem

from gen import service_pb2 as wire

from ._client import Server
from ._render import escape, state_name
from ._settings import DEFAULT_ADDR

__all__ = ["COMPLETION_TIMEOUT", "complete_job"]

COMPLETION_TIMEOUT = 1.0
"""Seconds a completion may wait for the server: a shell must not hang on Tab."""


def complete_job(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    """Ids and names of the caller's jobs (running ones first) that start with ``incomplete``."""
    server = _server(ctx)
    jobs: list[wire.Job] = []
    # Completion runs inside the CLI's event loop but is a plain function: the
    # call gets a loop of its own, in a thread, bounded by the timeout.
    thread = threading.Thread(target=lambda: jobs.extend(_list(server)), daemon=True)
    thread.start()
    thread.join(COMPLETION_TIMEOUT + 0.5)
    jobs.sort(key=lambda job: job.state != wire.JOB_STATE_RUNNING)
    return [
        CompletionItem(word, help=f"{state_name(job.state)}: {escape(' '.join(job.command))[:50]}")
        for job in jobs
        for word in (job.name, job.id)
        if word and word.startswith(incomplete)
    ]


def _server(ctx: click.Context) -> Server:
    params = ctx.params

    def path(name: str, variable: str) -> Path | None:
        value = params.get(name) or os.environ.get(variable)
        return Path(value) if value else None

    return Server(
        addr=params.get("addr") or os.environ.get("JOBS_ADDR") or DEFAULT_ADDR,
        ca=path("ca", "JOBS_CA"),
        cert=path("cert", "JOBS_CERT"),
        key=path("key", "JOBS_KEY"),
    )


def _list(server: Server) -> list[wire.Job]:
    async def ask() -> list[wire.Job]:
        async with asyncio.timeout(COMPLETION_TIMEOUT):
            async with server.connect() as api:
                return await api.list(wire.ListRequest())

    try:
        return asyncio.run(ask())
    except Exception:
        return []

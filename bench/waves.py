"""Memory given back after bursts of new TLS clients (``jobs.server._trim``)."""

from __future__ import annotations

import anyio

from gen.jobs import v1 as pb

from ._harness import Bench, MiB, Row
from .memory import _one_status

SETTLE = 4.0
"""Seconds after the last wave before the RSS is read: the server reclaims memory a
second after connections close, at most every 2 s (``jobs.server._trim``)."""


WARM_UP = 50
"""Clients of a first small wave, so that "idle" is a server that has served
connections before (one-time costs: lazy imports, caches, TLS and h2 tables)."""


async def rss_after_waves(b: Bench) -> None:
    """RSS when idle, at the end of ``--waves`` bursts of ``--wave-clients`` new TLS
    clients (one status call each), and ``SETTLE`` seconds later."""
    async with b.stub() as stub:
        job = (await stub.run(pb.RunRequest(command=["/bin/true"]))).job
        await stub.wait(pb.WaitRequest(job_id=job.id))
    failures: list[str] = []
    await _wave(b, WARM_UP, job.id, failures)
    await anyio.sleep(SETTLE)
    idle = b.server_rss()
    for _ in range(b.args.waves):
        await _wave(b, b.args.wave_clients, job.id, failures)
        await anyio.sleep(0.5)
    waves = f"{b.args.waves} waves of {b.args.wave_clients} new clients"
    b.add(Row(f"server RSS right after {waves}", b.server_rss() / MiB, "MiB", idle / MiB, "idle"))
    await anyio.sleep(SETTLE)
    b.add(
        Row(
            f"server RSS {SETTLE:.0f} s after {waves}",
            b.server_rss() / MiB,
            "MiB",
            idle / MiB,
            "idle",
        )
    )
    if failures:
        b.add(Row("client calls failed in the waves", len(failures), "calls"))


async def _wave(b: Bench, clients: int, job_id: str, failures: list[str]) -> None:
    channels = [b.channel() for _ in range(clients)]
    async with anyio.create_task_group() as tg:
        for channel in channels:
            tg.start_soon(_one_status, channel, job_id, failures)
    for channel in channels:
        channel.close()

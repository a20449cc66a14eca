"""The server's memory: with many finished jobs, many idle followers, after many
status calls, and over waves of clients connecting and leaving."""

from __future__ import annotations

import asyncio

import anyio
from grpclib.client import Channel

from gen.jobs import v1 as pb
from jobs.client import logs

from ._harness import Bench, MiB, Row
from .control import grpclib_statuses


async def memory(b: Bench) -> None:
    """RSS before and after each load (``--finished``, ``--idle-followers``,
    ``--drift-calls``, ``--waves`` of ``--wave-clients``)."""
    start_rss = b.server_rss()
    async with b.stub() as stub:
        for _ in range(b.args.finished):
            job = (await stub.run(pb.RunRequest(command=["/bin/true"]))).job
            await stub.wait(pb.WaitRequest(job_id=job.id))
        b.add(
            Row(
                f"server RSS with {b.args.finished} more finished jobs",
                b.server_rss() / MiB,
                "MiB",
                start_rss / MiB,
                "before them",
            )
        )
        sleeper = (await stub.run(pb.RunRequest(command=["sleep", "3600"]))).job
        before = b.server_rss()
        async with anyio.create_task_group() as tg:
            channels = [b.channel() for _ in range(10)]
            for n in range(b.args.idle_followers):
                tg.start_soon(_drain_logs, channels[n % 10], sleeper.id)
            await anyio.sleep(3)
            b.add(
                Row(
                    f"server RSS with {b.args.idle_followers} idle followers",
                    b.server_rss() / MiB,
                    "MiB",
                    before / MiB,
                    "without them",
                )
            )
            tg.cancel_scope.cancel()
        for channel in channels:
            channel.close()
        await stub.stop(pb.StopRequest(job_id=sleeper.id, grace_seconds=0))
        await anyio.sleep(1)
        before = b.server_rss()
        await grpclib_statuses(stub, sleeper.id, b.args.drift_calls, 50, latencies=[])
        b.add(
            Row(
                f"server RSS after {b.args.drift_calls} status calls",
                b.server_rss() / MiB,
                "MiB",
                before / MiB,
                "before them",
            )
        )
    before = b.server_rss()
    failures: list[str] = []
    for _ in range(b.args.waves):
        channels = [b.channel() for _ in range(b.args.wave_clients)]
        async with anyio.create_task_group() as tg:
            for channel in channels:
                tg.start_soon(_one_status, channel, sleeper.id, failures)
        for channel in channels:
            channel.close()
        await anyio.sleep(0.5)
    total = b.args.waves * b.args.wave_clients
    b.add(Row(f"client calls failed in the waves (of {total})", len(failures), "calls"))
    for reason in sorted(set(failures)):
        print(f"  {failures.count(reason)} x {reason}")
    if failures:
        logged = b.problems()
        print(f"  the server logged {len(logged)} warnings or errors; the last ones:")
        for line in logged[-10:]:
            print(f"    {line}")
    b.add(
        Row(
            f"server RSS after {b.args.waves} waves of {b.args.wave_clients} clients",
            b.server_rss() / MiB,
            "MiB",
            before / MiB,
            "before them",
        )
    )


async def _drain_logs(channel: Channel, job_id: str) -> None:
    async with logs(channel, job_id, follow=True) as messages:
        async for _ in messages:
            pass


async def _one_status(channel: Channel, job_id: str, failures: list[str]) -> None:
    try:
        with anyio.fail_after(60):
            await pb.JobServiceStub(channel).status(pb.StatusRequest(job_id=job_id))
    except Exception as exc:  # counted and reported, not fatal to the run
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            task.uncancel()  # grpclib's stray cancel on a lost connection
        failures.append(f"{type(exc).__name__}: {exc}")

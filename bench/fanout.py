"""Many followers of one job: aggregate throughput, the server's peak memory, and how
late a line reaches them."""

from __future__ import annotations

import sys
import time

import anyio
from grpclib.client import Channel

from gen.jobs import v1 as pb
from jobs.client import logs

from ._harness import Bench, MiB, Row, percentile


async def fan_out(b: Bench) -> None:
    """For each ``--followers`` count, that many followers of a job writing ``--fanout-mib``."""
    size = b.args.fanout_mib * MiB
    for followers in b.args.followers:
        async with b.stub() as stub:
            job = (
                await stub.run(
                    pb.RunRequest(command=["sh", "-c", f"sleep 0.5; head -c {size} /dev/zero"])
                )
            ).job
        channels = [b.channel() for _ in range(max(1, followers // 50))]
        received = 0
        before = b.server_rss()
        b.reset_peak_rss()

        async def follow(channel: Channel, job_id: str = job.id) -> None:
            nonlocal received
            async with logs(channel, job_id, follow=True) as messages:
                async for message in messages:
                    received += len(message.data)

        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for n in range(followers):
                tg.start_soon(follow, channels[n % len(channels)])
        elapsed = time.perf_counter() - started - 0.5
        for channel in channels:
            channel.close()
        assert received == followers * size, (received, followers * size)
        b.add(Row(f"fan-out {followers} followers, aggregate", received / elapsed / 1e6, "MB/s"))
        b.add(
            Row(
                f"fan-out {followers} followers, server peak RSS",
                b.server_rss(peak=True) / MiB,
                "MiB",
                before / MiB,
                "RSS before",
            )
        )
        await line_latency(b, followers)


async def line_latency(b: Bench, followers: int) -> None:
    """p50 and p99 of the delay from a job printing a line to a follower receiving it."""
    script = (
        "import time\n"
        "for _ in range(100):\n"
        "    print(time.time_ns(), flush=True)\n"
        "    time.sleep(0.02)"
    )
    async with b.stub() as stub:
        job = (await stub.run(pb.RunRequest(command=[sys.executable, "-c", script]))).job
    channels = [b.channel() for _ in range(max(1, followers // 50))]
    latencies: list[float] = []

    async def follow(channel: Channel) -> None:
        async with logs(channel, job.id, follow=True) as messages:
            async for message in messages:
                now = time.time_ns()
                latencies.extend((now - int(line)) / 1e6 for line in message.data.split())

    async with anyio.create_task_group() as tg:
        for n in range(followers):
            tg.start_soon(follow, channels[n % len(channels)])
    for channel in channels:
        channel.close()
    # The first lines are replayed from disk to late joiners; count the live ones.
    live = latencies[len(latencies) // 10 :]
    b.add(Row(f"fan-out {followers} followers, line latency p50", percentile(live, 0.5), "ms"))
    b.add(Row(f"fan-out {followers} followers, line latency p99", percentile(live, 0.99), "ms"))

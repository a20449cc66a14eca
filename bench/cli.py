"""The CLI's figures: how fast a client command starts (`jobs ps` against the bench's
server, against `python -c pass`), and what a `logs --tail 10` of a big log moves."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

import anyio

from gen import service_pb2 as wire
from gen.jobs import v1 as pb
from jobs.client import log_stream

from ._harness import JOBS, Bench, MiB, Row

RUNS = 10


def _wall(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


async def cli_start(b: Bench) -> None:
    """Median wall time of 10 `jobs ps` runs, against 10 of `python -c pass` and 10
    of the same List call made by a bare grpclib program, taken in turn."""
    env = b.client_env()
    bare = [sys.executable, "-m", "bench.bare_client", str(b.port), *b.pem_args("bench")]
    ours, python, floor = [], [], []
    for _ in range(RUNS):
        ours.append(await anyio.to_thread.run_sync(_wall, [JOBS, "ps"], env))
        python.append(await anyio.to_thread.run_sync(_wall, [sys.executable, "-c", "pass"], env))
        floor.append(await anyio.to_thread.run_sync(_wall, bare, env))
    median = statistics.median(ours) * 1000
    b.add(
        Row(
            "CLI start: `jobs ps`, median of 10",
            median,
            "ms",
            statistics.median(python) * 1000,
            "python -c pass",
        )
    )
    b.add(
        Row(
            "CLI start: `jobs ps` vs a bare grpclib call",
            median,
            "ms",
            statistics.median(floor) * 1000,
            "bench.bare_client",
        )
    )


async def tail_of_a_big_log(b: Bench) -> None:
    """`logs --tail 10` of a job that wrote ``--stream-mib`` MiB of lines: the bytes of
    the messages received, and how long it took."""
    size = b.args.stream_mib * MiB
    line = "a line of output, 64 bytes long, as the lines of a build log..\n"
    command = ["sh", "-c", f"yes '{line[:-1]}' | head -c {size}"]
    async with b.stub() as stub:
        job = (await stub.run(pb.RunRequest(command=command))).job
        await stub.wait(pb.WaitRequest(job_id=job.id))
    channel = b.channel()
    try:
        received = 0
        started = time.perf_counter()
        request = wire.LogsRequest(job_id=job.id, tail_lines=10)
        async with log_stream(channel, request) as stream:
            async for message in stream:
                received += message.ByteSize()
        elapsed = time.perf_counter() - started
    finally:
        channel.close()
    scenario = f"logs --tail 10 of {b.args.stream_mib} MiB"
    b.add(Row(f"{scenario}: bytes received", received, "bytes", size, "the whole log"))
    b.add(Row(f"{scenario}: time", elapsed * 1000, "ms"))

"""The control plane: status calls per second and their latency, from our grpclib
client and from a grpcio client, against a grpcio server; and the server's CPU per call."""

from __future__ import annotations

import collections
import statistics
import time

import anyio

from gen.jobs import v1 as pb

from ._baselines import grpcio_server, grpcio_statuses, have_grpcio
from ._harness import Bench, Row, percentile

IN_FLIGHT = 50
GOAL = 2000.0  # status calls/s


async def control_plane(b: Bench) -> None:
    """``--calls`` status calls, 50 in flight, ``--repeat`` times (medians)."""
    calls, repeat = b.args.calls, b.args.repeat
    grpcio = have_grpcio()
    rates: dict[str, list[float]] = collections.defaultdict(list)
    latencies: dict[str, list[float]] = collections.defaultdict(list)
    cpu = 0.0
    async with b.stub() as stub:
        job = (await stub.run(pb.RunRequest(command=["true"]))).job
        await stub.wait(pb.WaitRequest(job_id=job.id))
        for _ in range(repeat):
            rate = await grpclib_statuses(stub, job.id, calls, IN_FLIGHT, latencies["grpclib"])
            rates["grpclib"].append(rate)
            # The client above is pure Python too and shares the 2 cores: a C-core
            # client shows what the server itself can do, next to a C-core server.
            if not grpcio:
                continue
            used = b.server_cpu()
            rate, times = await anyio.to_thread.run_sync(grpcio_statuses, b, b.port, job.id)
            cpu += b.server_cpu() - used
            rates["grpcio"].append(rate)
            latencies["grpcio"].extend(times)
            with grpcio_server(b, 0) as port:
                base, _ = await anyio.to_thread.run_sync(grpcio_statuses, b, port, job.id)
            rates["baseline"].append(base)
    median = {name: statistics.median(values) for name, values in rates.items()}
    for client in ("grpclib", "grpcio") if grpcio else ("grpclib",):
        goal = (GOAL, "the goal") if client == "grpclib" else (median["baseline"], "grpcio server")
        b.add(Row(f"status calls, 50 in flight, {client} client", median[client], "calls/s", *goal))
        for p in (0.5, 0.99):
            value = percentile(latencies[client], p) * 1000
            b.add(Row(f"status call latency p{p * 100:.0f}, {client} client", value, "ms"))
    if not grpcio:
        return
    per_call = cpu / (calls * repeat)
    b.add(Row("server CPU per status call", per_call * 1e6, "us"))
    scenario = "status calls per server core (1 / CPU per call)"
    b.add(Row(scenario, 1 / per_call, "calls/s", GOAL, "the goal"))


async def grpclib_statuses(
    stub: pb.JobServiceStub, job_id: str, calls: int, in_flight: int, latencies: list[float]
) -> float:
    """Calls/s of ``calls`` status calls through the stub, ``in_flight`` at a time
    (each call's latency is appended to ``latencies``)."""
    counter = iter(range(calls))

    async def worker() -> None:
        for _ in counter:
            started = time.perf_counter()
            await stub.status(pb.StatusRequest(job_id=job_id))
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(in_flight):
            tg.start_soon(worker)
    return calls / (time.perf_counter() - started)

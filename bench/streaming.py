"""Streaming one job's output to one follower: `jobs logs` live and replayed, against a
plain TLS copy and a grpcio server; and `jobs run -f` against the job alone."""

from __future__ import annotations

import collections
import statistics
import subprocess

import anyio

from jobs.testing import JOBS

from ._baselines import grpcio_logs, grpcio_server, have_grpcio, tls_copy
from ._harness import Bench, MiB, Row, timed


async def single_follower(b: Bench) -> None:
    """MB/s of one follower of a job writing ``--stream-mib``, live and replayed."""
    size = b.args.stream_mib * MiB
    env = b.client_env()
    grpcio = have_grpcio()
    seconds: dict[str, list[float]] = collections.defaultdict(list)
    # Ours and the baselines take turns, so that the machine's drift hits them alike.
    for _ in range(b.args.repeat):
        run = [JOBS, "run", "head", "-c", str(size), "/dev/zero"]
        job = subprocess.run(run, env=env, capture_output=True, check=True, text=True).stdout
        job = job.strip()
        seconds["live"].append(timed(f"{JOBS} logs -f {job} > /dev/null", env))
        seconds["replay"].append(timed(f"{JOBS} logs {job} > /dev/null", env))
        seconds["tls"].append(await anyio.to_thread.run_sync(tls_copy, b.workdir, size))
        if not grpcio:
            continue
        ours = await anyio.to_thread.run_sync(grpcio_logs, b, b.port, job, size)
        seconds["grpcio client"].append(ours)
        with grpcio_server(b, size) as port:
            cli = timed(
                f"{JOBS} logs -f {job} > /dev/null", {**env, "JOBS_ADDR": f"127.0.0.1:{port}"}
            )
            seconds["grpcio server"].append(cli)
            theirs = await anyio.to_thread.run_sync(grpcio_logs, b, port, job, size)
            seconds["grpcio both"].append(theirs)
    mbps = {name: size / statistics.median(values) / 1e6 for name, values in seconds.items()}
    tls = "TLS 1.3 socket copy"
    b.add(Row("single follower, live (jobs logs -f)", mbps["live"], "MB/s", mbps["tls"], tls))
    b.add(Row("single follower, replay (jobs logs)", mbps["replay"], "MB/s", mbps["tls"], tls))
    if not grpcio:
        return
    # grpcio streams from memory; replay (the job has ended) compares like with like.
    same = "grpcio server, same client"
    server = mbps["grpcio server"]
    b.add(Row("single follower, live (jobs logs -f)", mbps["live"], "MB/s", server, same))
    b.add(Row("single follower, replay (jobs logs)", mbps["replay"], "MB/s", server, same))
    # `jobs logs` is pure Python and the bottleneck of both figures above: a C-core
    # client shows what each server can send.
    both = mbps["grpcio both"]
    b.add(Row("single follower, replay, grpcio client", mbps["grpcio client"], "MB/s", both, same))


async def live_run(b: Bench) -> None:
    """Wall time of `jobs run -f` of a job writing ``--stream-mib``, against the job alone."""
    size = b.args.stream_mib * MiB
    env = b.client_env()
    alone = min(timed(f"head -c {size} /dev/zero > /dev/null") for _ in range(3))
    wall = timed(f"{JOBS} run -f -- head -c {size} /dev/zero > /dev/null", env)
    scenario = f"jobs run -f head -c {b.args.stream_mib}M, wall"
    b.add(Row(scenario, wall * 1000, "ms", alone * 1000, "the job alone"))

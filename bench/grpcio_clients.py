"""grpcio (C-core) clients, to show what a server can do when the client is not the
bottleneck. Each prints one JSON object on stdout.

- `python -m bench.grpcio_clients logs PORT CA CERT KEY JOB_ID`: follow a job's
  output to its end: {"seconds", "bytes"}.
- `python -m bench.grpcio_clients status PORT CA CERT KEY JOB_ID CALLS IN_FLIGHT`:
  CALLS status calls on one connection, IN_FLIGHT at a time (after one warm-up
  call): {"seconds", "latencies"}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

import grpc
import grpc.aio

from gen import service_pb2 as pb

from ._grpcio import channel_credentials, logs_method, status_method


def follow(port: int, credentials: grpc.ChannelCredentials, job_id: str) -> dict[str, float]:
    """Receive a job's whole output with a blocking grpcio channel."""
    with grpc.secure_channel(f"127.0.0.1:{port}", credentials) as channel:
        logs = logs_method(channel)
        started, received = time.perf_counter(), 0
        for message in logs(pb.LogsRequest(job_id=job_id, follow=True)):
            received += len(message.data)
        return {"seconds": time.perf_counter() - started, "bytes": received}


async def statuses(
    port: int, credentials: grpc.ChannelCredentials, job_id: str, calls: int, in_flight: int
) -> dict[str, float | list[float]]:
    """Make ``calls`` status calls, ``in_flight`` at a time, on one asyncio channel."""
    async with grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials) as channel:
        status = status_method(channel)
        request = pb.StatusRequest(job_id=job_id)
        await status(request)
        latencies: list[float] = []
        counter = iter(range(calls))

        async def worker() -> None:
            for _ in counter:
                started = time.perf_counter()
                await status(request)
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(in_flight)))
        return {"seconds": time.perf_counter() - started, "latencies": latencies}


def main() -> None:
    """Parse the command line, run one client, print its result."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.grpcio_clients",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("client", choices=["logs", "status"])
    parser.add_argument("port", type=int)
    for name in ("ca", "cert", "key"):
        parser.add_argument(name, type=Path)
    parser.add_argument("job_id")
    parser.add_argument("calls", type=int, nargs="?", default=0)
    parser.add_argument("in_flight", type=int, nargs="?", default=1)
    args = parser.parse_args()
    credentials = channel_credentials(args.ca, args.cert, args.key)
    if args.client == "logs":
        result: object = follow(args.port, credentials, args.job_id)
    else:
        result = asyncio.run(
            statuses(args.port, credentials, args.job_id, args.calls, args.in_flight)
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()

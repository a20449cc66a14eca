"""The floor under a client command's start: `python -m bench.bare_client PORT CA
CERT KEY` makes the call `jobs ps` makes (List, over mutual TLS) with nothing but
what any grpclib client of this service imports: asyncio, ssl, grpclib and the
protobuf messages. No CLI, no option parsing, no table; it prints the number of jobs.

`jobs ps` against this program, in the same run, is what the CLI itself adds.
"""

from __future__ import annotations

import asyncio
import ssl
import sys

from grpclib.client import Channel
from grpclib.const import Cardinality

from gen import service_pb2 as wire


async def list_jobs(port: int, ca: str, cert: str, key: str) -> int:
    """The number of the caller's jobs, asked in one List call."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # the same TLS as the CLI's
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.set_alpn_protocols(["h2"])
    context.load_verify_locations(cafile=ca)
    context.load_cert_chain(cert, key)
    channel = Channel("127.0.0.1", port, ssl=context)
    try:
        async with channel.request(
            "/jobs.v1.JobService/List",
            Cardinality.UNARY_UNARY,
            wire.ListRequest,
            wire.ListResponse,
        ) as stream:
            await stream.send_message(wire.ListRequest(), end=True)
            answer = await stream.recv_message()
            assert answer is not None
            return len(answer.jobs)
    finally:
        channel.close()


if __name__ == "__main__":
    port, ca, cert, key = sys.argv[1:5]
    print(asyncio.run(list_jobs(int(port), ca, cert, key)))

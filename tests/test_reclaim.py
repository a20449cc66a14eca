"""Memory of closed connections is given back once a burst of clients has left
(``jobs.server._trim``), not only when later clients connect."""

from __future__ import annotations

import contextlib
import gc

import anyio
from grpclib.protocol import Connection
from harness import RunningServer
from hostile import raw_peer, request_headers

from jobs.server._trim import RECLAIM_DELAY


def _server_connections() -> int:
    return sum(isinstance(o, Connection) for o in gc.get_objects())


async def test_a_burst_of_clients_is_forgotten(server: RunningServer) -> None:
    async with contextlib.AsyncExitStack() as stack:
        peers = [await stack.enter_async_context(raw_peer(server)) for _ in range(30)]
        for peer in peers:
            assert (await peer.outcome(await peer.request(request_headers()))).status == 0
        assert _server_connections() >= 30
    del peers, peer
    with anyio.fail_after(RECLAIM_DELAY + 10):
        while _server_connections():  # noqa: ASYNC110 (nothing to wait on: polled)
            await anyio.sleep(0.2)

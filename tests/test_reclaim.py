"""Memory of closed connections is given back once a burst of clients has left
(``jobs.server._trim``), not only when later clients connect."""

from __future__ import annotations

import contextlib
import gc
import weakref

import anyio
from grpclib.protocol import Connection
from harness import RunningServer
from hostile import raw_peer, request_headers

from jobs.server._trim import RECLAIM_DELAY


def _connections() -> list[Connection]:
    """grpclib's connections alive in this process (the raw peers use none)."""
    return [o for o in gc.get_objects() if isinstance(o, Connection)]


async def test_a_burst_of_clients_is_forgotten(server: RunningServer) -> None:
    before = {id(c) for c in _connections()}  # other tests' leftovers, not ours to judge
    async with contextlib.AsyncExitStack() as stack:
        peers = [await stack.enter_async_context(raw_peer(server)) for _ in range(30)]
        for peer in peers:
            assert (await peer.outcome(await peer.request(request_headers()))).status == 0
        burst = [weakref.ref(c) for c in _connections() if id(c) not in before]
        assert len(burst) >= 30
    del peers, peer
    with anyio.fail_after(RECLAIM_DELAY + 10):
        while any(ref() is not None for ref in burst):  # noqa: ASYNC110 (polled: no event)
            await anyio.sleep(0.2)

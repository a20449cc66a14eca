"""Fan-out: one coroutine per host, at most ``parallel`` at once, every result kept."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import anyio

from ._inventory import Host

__all__ = ["DEFAULT_PARALLEL", "fan_out"]

#: Hosts worked on at once by default (``--parallel``), as pdsh's fan-out of 32 halved
#: for a 2-core client that also decodes every host's output.
DEFAULT_PARALLEL = 16

T = TypeVar("T")


async def fan_out(
    hosts: Sequence[Host],
    call: Callable[[Host], Awaitable[T]],
    *,
    parallel: int = DEFAULT_PARALLEL,
) -> dict[str, T]:
    """``call(host)`` for every host, at most ``parallel`` running at once.

    The results by host name, in the hosts' order. ``call`` should turn a
    host's expected failures into its result: an exception it raises cancels
    the others and propagates, as in any task group.
    """
    if parallel < 1:
        raise ValueError("parallel must be at least 1")
    results: dict[str, T] = {}
    limiter = anyio.CapacityLimiter(parallel)

    async def one(host: Host) -> None:
        async with limiter:
            results[host.name] = await call(host)

    async with anyio.create_task_group() as tg:
        for host in hosts:
            tg.start_soon(one, host)
    return {host.name: results[host.name] for host in hosts}

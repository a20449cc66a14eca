"""Asking hosts who they are and how loaded they are (the ``Info`` call), all at once."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import anyio

from gen.jobs import v1 as pb

from ._connect import DEFAULT_HOST_TIMEOUT, Failure, HostFailed, Identity, host_errors, open_host
from ._fanout import DEFAULT_PARALLEL, fan_out
from ._inventory import Host

__all__ = ["DEFAULT_INFO_TIMEOUT", "HostInfo", "query_info"]

#: ``jobs hosts`` waits this long for each host: a listing must not hang on one.
DEFAULT_INFO_TIMEOUT = 3.0


@dataclass(frozen=True)
class HostInfo:
    """A host's answer to ``Info``, or why there is none."""

    host: str
    info: pb.InfoResponse | None
    failure: Failure | None = None
    reason: str = ""
    seconds: float = 0.0

    @property
    def reachable(self) -> bool:
        """Whether the host answered at all (a server without ``Info`` refuses it)."""
        return self.failure is None or self.failure is Failure.REFUSED


async def query_info(
    hosts: Sequence[Host],
    identity: Identity,
    *,
    parallel: int = DEFAULT_PARALLEL,
    timeout: float = DEFAULT_HOST_TIMEOUT,
) -> list[HostInfo]:
    """``Info`` from every host at once (``parallel`` at most), each within ``timeout``."""

    async def ask(host: Host) -> HostInfo:
        started = time.monotonic()
        try:
            async with open_host(host, identity) as stub:
                with host_errors(host, timeout), anyio.fail_after(timeout):
                    info = await stub.info(pb.InfoRequest())
        except HostFailed as exc:
            return HostInfo(host.name, None, exc.failure, exc.reason, time.monotonic() - started)
        return HostInfo(host.name, info, seconds=time.monotonic() - started)

    results = await fan_out(hosts, ask, parallel=parallel)
    return list(results.values())

"""Reaching one host: its channel (its identity, its TLS name), and its failures as facts."""

from __future__ import annotations

import contextlib
import enum
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

from grpclib.client import Channel
from grpclib.config import Configuration
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from gen.jobs import v1 as pb
from jobs.client import ConnectionFailed, client_tls, connection_errors

from ._inventory import Host

__all__ = [
    "DEFAULT_HOST_TIMEOUT",
    "Failure",
    "HostFailed",
    "Identity",
    "host_errors",
    "open_host",
]

#: How long a host has to answer a call (connect, TLS, the call) before it counts
#: as unreachable: a stopped or overloaded machine must not hold up the fleet.
DEFAULT_HOST_TIMEOUT = 10.0

# A follower of a quiet job must notice a host that vanished without a FIN.
_KEEPALIVE = Configuration(_keepalive_time=20.0, _keepalive_timeout=10.0)

# Statuses that say the host answered and refused us; any other means it is not
# usable right now (UNAVAILABLE while it shuts down, say).
_REFUSED = {
    Status.PERMISSION_DENIED: "denied",
    Status.UNAUTHENTICATED: "denied",
    Status.RESOURCE_EXHAUSTED: "refused",
    Status.INVALID_ARGUMENT: "refused",
    Status.FAILED_PRECONDITION: "refused",
    Status.UNIMPLEMENTED: "refused",
    Status.NOT_FOUND: "refused",
    Status.OUT_OF_RANGE: "refused",
}


@dataclass(frozen=True)
class Identity:
    """The client's own CA, certificate and key: used for hosts that name none of theirs."""

    ca: Path
    cert: Path
    key: Path


class Failure(enum.Enum):
    """Why a host did not do what was asked."""

    UNREACHABLE = "unreachable"  # no connection, no TLS, no answer in time, connection lost
    DENIED = "denied"  # the host refused our identity or role
    REFUSED = "refused"  # the host answered with an error: a bad request, a limit it lacks


class HostFailed(Exception):
    """One host failed a call; ``failure`` says how, ``reason`` in words."""

    def __init__(self, host: str, failure: Failure, reason: str, status: Status | None = None):
        self.host = host
        self.failure = failure
        self.reason = reason
        self.status = status
        super().__init__(f"{host}: {failure.value}: {reason}")


class _NoAnswer(Exception):
    """The caller's deadline passed (carried past ``connection_errors``)."""


@contextlib.asynccontextmanager
async def open_host(host: Host, identity: Identity) -> AsyncIterator[pb.JobServiceStub]:
    """A stub to ``host`` for the block: its own identity files where it names
    them, and its certificate checked for ``tls_name`` (an entry from etcd is
    trusted only if the server proves that name against our CA)."""
    try:
        context = client_tls(
            host.ca or identity.ca, host.cert or identity.cert, host.key or identity.key
        )
    except ConnectionFailed as exc:
        raise HostFailed(host.name, Failure.UNREACHABLE, str(exc)) from None
    config = Configuration(
        _keepalive_time=_KEEPALIVE._keepalive_time,
        _keepalive_timeout=_KEEPALIVE._keepalive_timeout,
        ssl_target_name_override=host.tls_name,
    )
    channel = Channel(host.host, host.port, ssl=context, config=config)
    try:
        yield pb.JobServiceStub(channel)
    finally:
        channel.close()


@contextlib.contextmanager
def host_errors(host: Host, timeout: float | None = None) -> Iterator[None]:
    """Turn what can go wrong talking to ``host`` in the block into ``HostFailed``.

    ``TimeoutError`` (from the caller's ``anyio.fail_after(timeout)``) becomes
    unreachable, naming ``timeout``.
    """
    try:
        with connection_errors(host.addr):
            try:
                yield
            except TimeoutError:
                # Before connection_errors sees it: TimeoutError is an OSError.
                raise _NoAnswer from None
    except ConnectionFailed as exc:
        raise HostFailed(host.name, Failure.UNREACHABLE, str(exc)) from None
    except _NoAnswer:
        after = f" within {timeout:g}s" if timeout else ""
        raise HostFailed(host.name, Failure.UNREACHABLE, f"no answer{after}") from None
    except GRPCError as exc:
        message = exc.message or exc.status.name.lower().replace("_", " ")
        kind = _REFUSED.get(exc.status)
        if kind == "denied":
            raise HostFailed(host.name, Failure.DENIED, message, exc.status) from None
        if kind == "refused":
            raise HostFailed(host.name, Failure.REFUSED, message, exc.status) from None
        raise HostFailed(host.name, Failure.UNREACHABLE, message, exc.status) from None

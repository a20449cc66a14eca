"""The request guard: every call's size cap, authentication, authorization and errors.

The guard wraps every handler of the servables it is given, once, when the server
is built (grpclib's ``RecvRequest`` event could do it per call, at a cost of a
few percent of each call). The wrapped stream checks the request's length
prefix before reading its body, and always reads (or drains) the request before
refusing a call, so the connection's flow-control window is always returned. The
core's errors become gRPC statuses in ``STATUS``, the one table; anything else
escaping a handler is a bug, logged and answered INTERNAL, never UNKNOWN.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from grpclib.const import Handler, Status
from grpclib.exceptions import GRPCError
from grpclib.protocol import Peer
from grpclib.server import Stream

from pki import Role

from ..errors import (
    CannotExecute,
    InvalidArgument,
    JobNotFound,
    JobsError,
    LimitUnsupported,
    NameInUse,
    OffsetOutOfRange,
    ShuttingDown,
    StateDiskFull,
    TooManyJobs,
    TooManyStreams,
)
from . import _grpclib
from ._auth import Principal, Unauthenticated, principal_from_der

__all__ = ["STATUS", "Guard", "Policy", "current_principal", "grpc_error"]

log = logging.getLogger(__name__)

STATUS: Mapping[type[JobsError], Status] = {
    InvalidArgument: Status.INVALID_ARGUMENT,
    CannotExecute: Status.FAILED_PRECONDITION,
    LimitUnsupported: Status.FAILED_PRECONDITION,
    JobNotFound: Status.NOT_FOUND,
    NameInUse: Status.ALREADY_EXISTS,
    OffsetOutOfRange: Status.OUT_OF_RANGE,
    TooManyJobs: Status.RESOURCE_EXHAUSTED,
    TooManyStreams: Status.RESOURCE_EXHAUSTED,
    StateDiskFull: Status.RESOURCE_EXHAUSTED,
    ShuttingDown: Status.UNAVAILABLE,
}

_principal: contextvars.ContextVar[Principal] = contextvars.ContextVar("principal")


def current_principal() -> Principal:
    """The caller of the current request, as admitted by the guard."""
    return _principal.get()


def grpc_error(exc: JobsError) -> GRPCError:
    """The gRPC error for one of the core's errors."""
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return GRPCError(STATUS[cls], str(exc))
    return GRPCError(Status.INTERNAL, str(exc))


@dataclass(frozen=True, slots=True)
class Policy:
    """What a method requires: a role (``None``: any client past the TLS handshake)
    and the largest request message it accepts."""

    role: Role | None
    max_request: int


HandlerFunc = Callable[[Any], Awaitable[None]]


class Guard:
    """Applies a ``Policy`` per method name to every call of the servables it guards."""

    def __init__(self, policies: Mapping[str, Policy], default: Policy, role_oid: str) -> None:
        self._policies = policies
        self._default = default
        self._role_oid = role_oid

    def guard(self, servable: Any) -> _Guarded:
        """A servable whose handlers are ``servable``'s, guarded."""
        return _Guarded(
            {method: self._wrap(method, h) for method, h in servable.__mapping__().items()}
        )

    def _wrap(self, method: str, handler: Handler) -> Handler:
        policy = self._policies.get(method, self._default)
        func: HandlerFunc = handler.func

        async def guarded(stream: Stream[Any, Any]) -> None:
            try:
                await func(_CheckedStream(stream, policy, self))
            except GRPCError:
                raise
            except JobsError as exc:
                raise grpc_error(exc) from None
            except Exception:
                log.exception("bug: %s raised", method)
                raise GRPCError(Status.INTERNAL, "internal error") from None

        return handler._replace(func=guarded)

    def _admit(self, peer: Peer, policy: Policy) -> None:
        if policy.role is None:
            return
        der = _grpclib.peer_certificate(peer)
        if der is None:
            raise GRPCError(Status.UNAUTHENTICATED, "no client certificate")
        try:
            principal = principal_from_der(der, self._role_oid)
        except Unauthenticated as exc:
            raise GRPCError(Status.UNAUTHENTICATED, str(exc)) from None
        if principal.role is None:
            raise GRPCError(Status.PERMISSION_DENIED, "the certificate grants no role")
        if not principal.role.allows(policy.role):
            raise GRPCError(
                Status.PERMISSION_DENIED, f"role {principal.role.value} may not make this call"
            )
        _principal.set(principal)


@dataclass(frozen=True, slots=True)
class _Guarded:
    handlers: dict[str, Handler]

    def __mapping__(self) -> dict[str, Handler]:
        return self.handlers


class _CheckedStream:
    """A grpclib server stream whose requests are capped, and admitted once read."""

    def __init__(self, stream: Stream[Any, Any], policy: Policy, guard: Guard) -> None:
        self._stream = stream
        self._cap = policy.max_request
        self._policy = policy
        self._guard: Guard | None = guard

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        message = await self.recv_message()
        if message is None:
            raise StopAsyncIteration
        return message

    async def recv_message(self) -> Any:
        try:
            length = await _grpclib.read_length_prefix(self._stream)
        except ValueError as exc:
            self._admitted()
            raise GRPCError(Status.INVALID_ARGUMENT, str(exc)) from None
        if length is None:
            self._admitted()
            return None
        if length > self._cap:
            await _grpclib.drain(self._stream, length)
            self._admitted()
            raise GRPCError(
                Status.RESOURCE_EXHAUSTED,
                f"the request is {length} bytes; this call accepts at most {self._cap}",
            )
        try:
            body = await _grpclib.read_body(self._stream, length)
        except ValueError as exc:
            self._admitted()
            raise GRPCError(Status.INVALID_ARGUMENT, str(exc)) from None
        self._admitted()
        try:
            return _grpclib.decode(self._stream, body)
        except Exception:
            raise GRPCError(Status.INVALID_ARGUMENT, "the request cannot be decoded") from None

    def _admitted(self) -> None:
        if self._guard is not None:
            guard, self._guard = self._guard, None
            guard._admit(self._stream.peer, self._policy)

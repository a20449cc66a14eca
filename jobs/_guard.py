"""The request guard: every call's size cap, authentication, authorization and errors.

grpclib's ``RecvRequest`` event runs in the handler's task before the handler; the
guard wraps the handler there. The wrapped stream checks the request's length
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

from grpclib.const import Status
from grpclib.events import RecvRequest
from grpclib.exceptions import GRPCError
from grpclib.protocol import Peer
from grpclib.server import Stream

from . import _grpclib
from ._auth import Principal, Role, Unauthenticated, principal_from_der
from .errors import (
    CannotExecute,
    InvalidArgument,
    JobNotFound,
    JobsError,
    LimitUnsupported,
    OffsetOutOfRange,
    ShuttingDown,
    TooManyJobs,
    TooManyStreams,
)

__all__ = ["STATUS", "Guard", "Policy", "current_principal", "grpc_error"]

log = logging.getLogger(__name__)

STATUS: Mapping[type[JobsError], Status] = {
    InvalidArgument: Status.INVALID_ARGUMENT,
    CannotExecute: Status.FAILED_PRECONDITION,
    LimitUnsupported: Status.FAILED_PRECONDITION,
    JobNotFound: Status.NOT_FOUND,
    OffsetOutOfRange: Status.OUT_OF_RANGE,
    TooManyJobs: Status.RESOURCE_EXHAUSTED,
    TooManyStreams: Status.RESOURCE_EXHAUSTED,
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


Handler = Callable[[Any], Awaitable[None]]


class Guard:
    """Applies a ``Policy`` per method name to every call of a grpclib server."""

    def __init__(self, policies: Mapping[str, Policy], default: Policy, role_oid: str) -> None:
        self._policies = policies
        self._default = default
        self._role_oid = role_oid

    async def on_request(self, event: RecvRequest) -> None:
        """The ``RecvRequest`` listener: wrap the handler of the call."""
        method = event.method_name
        policy = self._policies.get(method, self._default)
        handler: Handler = event.method_func
        peer = event.peer

        async def guarded(stream: Stream[Any, Any]) -> None:
            checked = _CheckedStream(stream, policy.max_request, lambda: self._admit(peer, policy))
            try:
                await handler(checked)
            except GRPCError:
                raise
            except JobsError as exc:
                raise grpc_error(exc) from None
            except Exception:
                log.exception("bug: %s raised", method)
                raise GRPCError(Status.INTERNAL, "internal error") from None

        event.method_func = guarded

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


class _CheckedStream:
    """A grpclib server stream whose requests are capped, and admitted once read."""

    def __init__(self, stream: Stream[Any, Any], cap: int, admit: Callable[[], None]) -> None:
        self._stream = stream
        self._cap = cap
        self._admit: Callable[[], None] | None = admit

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
        body = await _grpclib.read_body(self._stream, length)
        self._admitted()
        try:
            return _grpclib.decode(self._stream, body)
        except Exception:
            raise GRPCError(Status.INVALID_ARGUMENT, "the request cannot be decoded") from None

    def _admitted(self) -> None:
        if self._admit is not None:
            admit, self._admit = self._admit, None
            admit()

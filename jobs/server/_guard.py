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
import time
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
    UnknownUser,
    UserNotAllowed,
)
from . import _audit, _grpclib
from ._audit import AuditLog
from ._auth import Principal, Unauthenticated, principal_from_der
from ._limits import CallRate

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
    UserNotAllowed: Status.PERMISSION_DENIED,
    UnknownUser: Status.FAILED_PRECONDITION,
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
    """Applies a ``Policy`` per method name to every call of the servables it guards;
    each call is written to the ``audit`` log and counted against the ``rate``."""

    def __init__(
        self,
        policies: Mapping[str, Policy],
        default: Policy,
        role_oid: str,
        *,
        audit: AuditLog | None = None,
        rate: CallRate | None = None,
    ) -> None:
        self._policies = policies
        self._default = default
        self._role_oid = role_oid
        self._audit = audit
        self._rate = rate

    def guard(self, servable: Any) -> _Guarded:
        """A servable whose handlers are ``servable``'s, guarded."""
        return _Guarded(
            {method: self._wrap(method, h) for method, h in servable.__mapping__().items()}
        )

    def _wrap(self, method: str, handler: Handler) -> Handler:
        policy = self._policies.get(method, self._default)
        func: HandlerFunc = handler.func

        async def guarded(stream: Stream[Any, Any]) -> None:
            checked = _CheckedStream(stream, policy, self)
            started = time.monotonic()
            notes = _audit.begin_call()
            # What the audit line says; a call cancelled (the client went away) is CANCELLED.
            status: Status = Status.CANCELLED
            message: str | None = "the client went away"
            try:
                await func(checked)
                status, message = Status.OK, None
            except GRPCError as exc:
                status, message = exc.status, exc.message
                raise
            except JobsError as exc:
                error = grpc_error(exc)
                status, message = error.status, error.message
                raise error from None
            except Exception:
                log.exception("bug: %s raised", method)
                status, message = Status.INTERNAL, "internal error"
                raise GRPCError(Status.INTERNAL, "internal error") from None
            finally:
                if self._audit is not None:
                    try:
                        self._record(stream, method, checked, status, message, started, notes)
                    except Exception:
                        # A bug of ours, logged as one; the call's own answer stands.
                        log.exception("bug: the audit line of %s failed", method)

        return handler._replace(func=guarded)

    def _record(
        self,
        stream: Stream[Any, Any],
        method: str,
        checked: _CheckedStream,
        status: Status,
        message: str | None,
        started: float,
        notes: dict[str, Any],
    ) -> None:
        assert self._audit is not None
        principal = _principal.get(None)
        fields = _audit.request_fields(checked.request)
        fields.update(notes)
        self._audit.call(
            peer=_address(stream.peer.addr()),
            account=principal.account if principal else None,
            role=principal.role.value if principal and principal.role else None,
            method=method,
            status=status,
            message=message,
            duration=time.monotonic() - started,
            fields=fields,
        )

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
        _principal.set(principal)  # set before the checks: the audit names refused callers too
        if principal.role is None:
            raise GRPCError(Status.PERMISSION_DENIED, "the certificate grants no role")
        if not principal.role.allows(policy.role):
            raise GRPCError(
                Status.PERMISSION_DENIED, f"role {principal.role.value} may not make this call"
            )
        if self._rate is not None and not self._rate.take(principal.account):
            raise GRPCError(
                Status.RESOURCE_EXHAUSTED,
                f"account {principal.account!r} is over its call rate "
                f"({self._rate.rate:g} calls/s)",
            )


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
        self.request: Any = None
        """The request message, once read and decoded (for the audit)."""

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
        try:
            # Decoded before the caller is admitted, so that a refused call's audit
            # line names its job too; refusal still comes first.
            self.request = _grpclib.decode(self._stream, body)
        except Exception:
            self._admitted()
            raise GRPCError(Status.INVALID_ARGUMENT, "the request cannot be decoded") from None
        self._admitted()
        return self.request

    def _admitted(self) -> None:
        if self._guard is not None:
            guard, self._guard = self._guard, None
            guard._admit(self._stream.peer, self._policy)


def _address(addr: Any) -> str | None:
    """``host:port`` (``[v6]:port``) of a peer address tuple."""
    if not isinstance(addr, tuple) or len(addr) < 2:
        return None if addr is None else str(addr)
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

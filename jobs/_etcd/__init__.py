"""A small typed etcd v3 client on grpclib: leases, keys by prefix, watches.

It calls etcd's own gRPC API (the trimmed ``etcd.proto`` next to this file,
generated into ``gen/etcdserverpb``) on grpclib, the stack the rest of jobs
runs on, so no second gRPC runtime is loaded. Server registration uses it, and
so does fleet discovery. Every failure (etcd unreachable, TLS refused, a call
refused or timed out, a stream cut) is one ``EtcdError``; a lease that etcd no
longer knows is the subclass ``LeaseLost``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import anyio
from grpclib.client import Channel
from grpclib.const import Cardinality
from grpclib.exceptions import GRPCError, ProtocolError, StreamTerminatedError

from gen import etcdserverpb as pb

__all__ = [
    "CALL_TIMEOUT",
    "DEFAULT_PREFIX",
    "Etcd",
    "EtcdError",
    "EtcdUrl",
    "Event",
    "EventKind",
    "KeyValue",
    "Lease",
    "LeaseLost",
    "parse_url",
    "prefix_end",
    "tls_context",
]

DEFAULT_PREFIX = "jobs/"
CALL_TIMEOUT = 5.0
"""Seconds a unary call may take before it fails: etcd answers in milliseconds
when it is up, and a caller that retries wants to know soon when it is not."""

_Reply = TypeVar("_Reply")


class EtcdError(Exception):
    """etcd could not be reached, or refused or failed a call."""


class LeaseLost(EtcdError):
    """The lease expired or was revoked: etcd no longer knows it."""

    def __init__(self, lease_id: int) -> None:
        super().__init__(f"etcd lease {lease_id:x} expired or was revoked")
        self.lease_id = lease_id


@dataclass(frozen=True, slots=True)
class EtcdUrl:
    """Where etcd is, and the key prefix to use there (``etcd://HOST:PORT[/PREFIX]``)."""

    host: str
    port: int
    prefix: str = DEFAULT_PREFIX

    def __str__(self) -> str:
        return f"etcd://{self.host}:{self.port}/{self.prefix}"


def parse_url(url: str) -> EtcdUrl:
    """``etcd://HOST:PORT[/PREFIX]`` (PREFIX defaults to ``jobs/``; it always ends
    with ``/``); ``ValueError`` naming what is wrong otherwise."""
    parts = urlsplit(url)
    if parts.scheme != "etcd":
        raise ValueError(f"{url!r} is not an etcd://HOST:PORT[/PREFIX] address")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{url!r} has no valid port") from None
    if not parts.hostname or port is None:
        raise ValueError(f"{url!r} needs a host and a port (etcd://HOST:PORT[/PREFIX])")
    if parts.query or parts.fragment or parts.username:
        raise ValueError(f"{url!r}: only etcd://HOST:PORT[/PREFIX] is understood")
    prefix = parts.path.strip("/")
    return EtcdUrl(parts.hostname, port, prefix + "/" if prefix else DEFAULT_PREFIX)


def prefix_end(prefix: bytes) -> bytes:
    """The end of the key range holding every key that starts with ``prefix``
    (etcd's ``clientv3.GetPrefixRangeEnd``): the prefix with its last byte below
    0xff incremented, or ``\\0`` (every key) when there is none."""
    for i in range(len(prefix) - 1, -1, -1):
        if prefix[i] < 0xFF:
            return prefix[:i] + bytes([prefix[i] + 1])
    return b"\0"


def tls_context(
    ca: Path | None, cert: Path | None = None, key: Path | None = None
) -> ssl.SSLContext:
    """A client context for etcd's TLS: verify etcd against ``ca`` (the system's
    CAs when ``None``), and present ``cert``/``key`` when etcd asks for a client
    certificate. ``EtcdError`` when a file cannot be read."""
    try:
        context = ssl.create_default_context(cafile=str(ca) if ca is not None else None)
        if cert is not None:
            context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise EtcdError(f"cannot load etcd's TLS files: {exc}") from None
    context.set_alpn_protocols(["h2"])
    return context


@dataclass(frozen=True, slots=True)
class KeyValue:
    """A key, its value, and when it last changed."""

    key: str
    value: bytes
    mod_revision: int
    lease: int


class EventKind(Enum):
    """What happened to a watched key."""

    PUT = "put"
    """Created or changed."""
    DELETE = "delete"
    """Deleted, or expired with its lease (``value`` is empty)."""


@dataclass(frozen=True, slots=True)
class Event:
    """One change of a watched key."""

    kind: EventKind
    key: str
    value: bytes
    revision: int


@dataclass(frozen=True, slots=True)
class Lease:
    """A granted lease: its id and the time to live etcd chose, in seconds."""

    id: int
    ttl: int


class Etcd:
    """A connection to one etcd endpoint, for the block's duration::

        async with Etcd(url.host, url.port) as etcd:
            lease = await etcd.grant(10)
            await etcd.put("jobs/a", b"...", lease=lease.id)

    grpclib reconnects on the next call after the connection drops, so one
    ``Etcd`` outlives an etcd restart. Build it inside the running event loop.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        tls: ssl.SSLContext | None = None,
        call_timeout: float = CALL_TIMEOUT,
    ) -> None:
        self.address = f"{host}:{port}"
        self._channel = Channel(host, port, ssl=tls)
        self._kv = pb.KvStub(self._channel)
        self._leases = pb.LeaseStub(self._channel)
        self._timeout = call_timeout

    def __repr__(self) -> str:
        return f"<Etcd {self.address}>"

    async def __aenter__(self) -> Etcd:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection; calls in flight fail."""
        self._channel.close()

    # -- leases ------------------------------------------------------------------------

    async def grant(self, ttl: int) -> Lease:
        """A new lease of ``ttl`` seconds; keys put with it go when it expires."""
        reply = await self._call(self._leases.lease_grant(pb.LeaseGrantRequest(ttl=ttl)))
        if reply.error:
            raise EtcdError(f"etcd refused a lease: {reply.error}")
        return Lease(reply.id, reply.ttl)

    async def revoke(self, lease_id: int) -> None:
        """Revoke a lease now, deleting its keys; ``LeaseLost`` if it is already gone."""
        try:
            await self._call(self._leases.lease_revoke(pb.LeaseRevokeRequest(id=lease_id)))
        except _NotFound:
            raise LeaseLost(lease_id) from None

    async def keep_alive(self, lease: Lease, *, interval: float | None = None) -> None:
        """Keep ``lease`` alive until cancelled, refreshing it every ``interval``
        seconds (a third of its TTL by default, as etcd's own client does).

        Returns never; raises ``LeaseLost`` once etcd says the lease is gone, and
        ``EtcdError`` when the stream fails or a refresh goes unanswered.
        """
        every = interval if interval is not None else max(lease.ttl / 3, 0.5)
        with self._errors():
            async with self._channel.request(
                "/etcdserverpb.Lease/LeaseKeepAlive",
                Cardinality.STREAM_STREAM,
                pb.LeaseKeepAliveRequest,
                pb.LeaseKeepAliveResponse,
            ) as stream:
                await stream.send_request()
                while True:
                    await stream.send_message(pb.LeaseKeepAliveRequest(id=lease.id))
                    with anyio.move_on_after(self._timeout) as scope:
                        reply = await stream.recv_message()
                    if scope.cancelled_caught:
                        raise EtcdError(f"etcd at {self.address} stopped answering keep-alives")
                    if reply is None:
                        raise EtcdError(f"etcd at {self.address} ended the keep-alive stream")
                    if reply.ttl <= 0:
                        raise LeaseLost(lease.id)
                    await anyio.sleep(every)

    # -- keys --------------------------------------------------------------------------

    async def put(self, key: str, value: bytes, *, lease: int = 0) -> int:
        """Set ``key`` (bound to ``lease`` unless 0); the store's revision after it.
        ``LeaseLost`` when the lease no longer exists."""
        request = pb.PutRequest(key=key.encode(), value=value, lease=lease)
        try:
            reply = await self._call(self._kv.put(request))
        except _NotFound:
            raise LeaseLost(lease) from None
        return int(reply.header.revision)

    async def get(self, key: str) -> KeyValue | None:
        """The key's value, or ``None`` when it does not exist."""
        reply = await self._call(self._kv.range(pb.RangeRequest(key=key.encode())))
        return _key_value(reply.kvs[0]) if reply.kvs else None

    async def range(self, prefix: str) -> tuple[list[KeyValue], int]:
        """Every key under ``prefix``, sorted by key, and the store's revision they
        were read at (to watch from the next one without missing a change)."""
        start = prefix.encode()
        reply = await self._call(
            self._kv.range(pb.RangeRequest(key=start, range_end=prefix_end(start)))
        )
        return [_key_value(kv) for kv in reply.kvs], reply.header.revision

    async def delete(self, key: str, *, prefix: bool = False) -> int:
        """Delete ``key`` (every key under it when ``prefix``); how many were deleted."""
        start = key.encode()
        request = pb.DeleteRangeRequest(key=start, range_end=prefix_end(start) if prefix else b"")
        reply = await self._call(self._kv.delete_range(request))
        return int(reply.deleted)

    @contextlib.asynccontextmanager
    async def watch(
        self, prefix: str, *, start_revision: int = 0
    ) -> AsyncIterator[AsyncIterator[Event]]:
        """Changes to keys under ``prefix``, from ``start_revision`` (inclusive; 0:
        from now), as an async iterator for the block's duration::

            async with etcd.watch("jobs/", start_revision=revision + 1) as events:
                async for event in events:
                    ...

        The watch is established when the block is entered. Iterating raises
        ``EtcdError`` when the stream fails or etcd cancels the watch (e.g. the
        revision was compacted): read the range again and watch anew.
        """
        start = prefix.encode()
        create = pb.WatchCreateRequest(
            key=start, range_end=prefix_end(start), start_revision=start_revision
        )
        request = self._channel.request(
            "/etcdserverpb.Watch/Watch",
            Cardinality.STREAM_STREAM,
            pb.WatchRequest,
            pb.WatchResponse,
        )
        try:
            async with request as stream:
                with self._errors():
                    await stream.send_message(pb.WatchRequest(create_request=create))
                    with anyio.fail_after(self._timeout):
                        created = await stream.recv_message()
                if created is None or not created.created:
                    raise EtcdError(f"etcd at {self.address} did not create the watch")
                if created.canceled:
                    raise EtcdError(f"etcd cancelled the watch: {created.cancel_reason}")
                yield self._events(stream)
                # Left normally: grpclib would wait for etcd to end the stream,
                # which it never does; leaving by an exception resets it instead.
                raise _Leave  # noqa: TRY301
        except _Leave:
            pass

    async def _events(self, stream: Any) -> AsyncIterator[Event]:
        with self._errors():
            while True:
                reply: pb.WatchResponse | None = await stream.recv_message()
                if reply is None:
                    raise EtcdError(f"etcd at {self.address} ended the watch")
                if reply.canceled:
                    reason = reply.cancel_reason or f"compacted at {reply.compact_revision}"
                    raise EtcdError(f"etcd cancelled the watch: {reason}")
                for event in reply.events:
                    kind = (
                        EventKind.DELETE
                        if event.type == pb.EventEventType.DELETE
                        else EventKind.PUT
                    )
                    yield Event(
                        kind,
                        event.kv.key.decode(errors="replace"),
                        event.kv.value,
                        event.kv.mod_revision,
                    )

    # -- plumbing ----------------------------------------------------------------------

    async def _call(self, call: Any) -> Any:
        with self._errors():
            try:
                with anyio.fail_after(self._timeout):
                    return await call
            except GRPCError as exc:
                # etcd says "requested lease not found" with NOT_FOUND.
                if exc.status.name == "NOT_FOUND":
                    raise _NotFound from None
                raise

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except (_NotFound, EtcdError):
            raise
        except StreamTerminatedError:
            # grpclib cancels the calling task when the connection drops and
            # leaves it marked as cancelled: remove the mark, or the caller's
            # own cancel scopes stop working.
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                task.uncancel()
            raise EtcdError(f"the connection to etcd at {self.address} was lost") from None
        except TimeoutError:
            raise EtcdError(f"etcd at {self.address} did not answer in time") from None
        except GRPCError as exc:
            raise EtcdError(f"etcd refused the call: {exc.status.name}: {exc.message}") from None
        except ssl.SSLError as exc:
            raise EtcdError(
                f"TLS with etcd at {self.address} failed: {exc.reason or exc}"
            ) from None
        except ProtocolError as exc:
            raise EtcdError(f"etcd at {self.address}: {exc}") from None
        except OSError as exc:
            raise EtcdError(
                f"cannot connect to etcd at {self.address}: {exc.strerror or exc}"
            ) from None


class _Leave(Exception):
    """Leaves a stream's block so that grpclib resets the stream."""


class _NotFound(Exception):
    """etcd answered NOT_FOUND (an unknown lease); turned into ``LeaseLost`` by the caller."""


def _key_value(kv: pb.KeyValue) -> KeyValue:
    return KeyValue(kv.key.decode(errors="replace"), kv.value, kv.mod_revision, kv.lease)

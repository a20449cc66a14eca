"""Registration in etcd: ``PREFIX/NAME`` = where this server is and who it is, on a lease.

The value is the JSON of etcd's own gRPC naming (``go.etcd.io/etcd/client/v3/
naming/endpoints``): ``{"Addr": "host:port", "Metadata": {...}}``, so any
etcd-aware client can read it. The key lives on a lease of ``ttl`` seconds that
is kept alive: a server that crashes disappears once the lease expires, a server
that stops revokes it, which deletes the key at once. etcd being away never
stops the server: the registration logs, waits (with backoff) and registers
again, with a new lease, when etcd is back or has forgotten the old lease. A key
deleted under a live lease is put back at once.
"""

from __future__ import annotations

import json
import logging
import ssl
from dataclasses import dataclass

import anyio

from .._etcd import Etcd, EtcdError, EtcdUrl, EventKind, Lease, LeaseLost
from ._identity import ServerIdentity

__all__ = [
    "DEFAULT_TTL",
    "REVOKE_TIMEOUT",
    "Registration",
    "entry",
    "keep_registered",
]

log = logging.getLogger(__name__)

DEFAULT_TTL = 10
"""Seconds a crashed server stays registered, at most."""
RETRY_FIRST = 0.5
RETRY_MAX = 10.0
"""Backoff between attempts while etcd is away: doubling from the first to the max."""
REVOKE_TIMEOUT = 2.0
"""Seconds a stopping server spends deregistering; the lease expires anyway."""


@dataclass(frozen=True, slots=True)
class Registration:
    """Where to register: etcd's address and prefix, its TLS, and the lease's TTL."""

    url: EtcdUrl
    tls: ssl.SSLContext | None = None
    ttl: int = DEFAULT_TTL


def entry(identity: ServerIdentity, addr: str) -> bytes:
    """The value registered for a server reachable at ``addr`` (``host:port``)."""
    metadata = {
        "name": identity.name,
        "labels": dict(sorted(identity.labels.items())),
        "version": identity.version,
        "tls_name": identity.tls_name,
    }
    return json.dumps({"Addr": addr, "Metadata": metadata}, separators=(",", ":")).encode()


async def keep_registered(registration: Registration, identity: ServerIdentity, addr: str) -> None:
    """Keep ``PREFIX/NAME`` registered until cancelled, then deregister (bounded by
    ``REVOKE_TIMEOUT``). Never raises for etcd's failures: it logs and retries."""
    url = registration.url
    key = url.prefix + identity.name
    value = entry(identity, addr)
    delay = RETRY_FIRST
    lease: Lease | None = None
    async with Etcd(url.host, url.port, tls=registration.tls) as etcd:
        try:
            while True:
                try:
                    lease = await etcd.grant(registration.ttl)
                    revision = await etcd.put(key, value, lease=lease.id)
                    log.info("registered as %s in %s (lease %x)", key, etcd.address, lease.id)
                    delay = RETRY_FIRST
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(_restore_when_deleted, etcd, key, value, lease, revision)
                        await etcd.keep_alive(lease)
                except* LeaseLost:
                    # Revoked, or expired while etcd was unreachable: register anew now.
                    log.warning("etcd forgot lease of %s: registering again", key)
                    lease = None
                except* EtcdError as group:
                    exc = group.exceptions[0]
                    log.warning("registration in etcd: %s; retrying in %.1fs", exc, delay)
                    await anyio.sleep(delay)
                    delay = min(delay * 2, RETRY_MAX)
        finally:
            if lease is not None:
                with anyio.CancelScope(shield=True), anyio.move_on_after(REVOKE_TIMEOUT):
                    await _deregister(etcd, lease, key)


async def _restore_when_deleted(
    etcd: Etcd, key: str, value: bytes, lease: Lease, revision: int
) -> None:
    """Put ``key`` back on ``lease`` each time it is deleted while the lease lives
    (by hand, by a tool cleaning up): the server is still there. ``LeaseLost`` when
    the delete came with the lease's end.

    A watch that fails (compacted, cut by a proxy) is made again, after a look at
    the key, without touching the lease: only the keep-alive decides that etcd is
    gone.
    """
    while True:
        try:
            async with etcd.watch(key, start_revision=revision + 1) as events:
                async for event in events:
                    revision = event.revision
                    # The watch covers the keys that start with ours too (jobs/h1, jobs/h10).
                    if event.key == key and event.kind is EventKind.DELETE:
                        log.warning("%s was deleted under a live lease: putting it back", key)
                        revision = await etcd.put(key, value, lease=lease.id)
        except LeaseLost:
            raise
        except EtcdError as exc:
            log.info("watch of %s in etcd: %s; watching again", key, exc)
            await anyio.sleep(RETRY_FIRST)
            entries, revision = await etcd.range(key)
            if not any(entry.key == key for entry in entries):
                revision = await etcd.put(key, value, lease=lease.id)


async def _deregister(etcd: Etcd, lease: Lease, key: str) -> None:
    try:
        await etcd.revoke(lease.id)  # deletes the key with it
    except LeaseLost:
        pass  # already gone, and the key with it
    except EtcdError as exc:
        log.warning("could not deregister %s (it expires with its lease): %s", key, exc)
    else:
        log.info("deregistered %s", key)

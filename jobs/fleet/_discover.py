"""Discovery: the servers registered in etcd under a prefix, read once or kept current.

A server registered with ``jobs serve --register etcd://HOST:PORT[/PREFIX]``
puts ``PREFIX/NAME`` = ``{"Addr": "host:port", "Metadata": {...}}`` (the
layout of etcd's gRPC naming). An entry is never trusted by itself: the host
it gives is reached over mutual TLS, and its certificate must verify against
our CA for the registered TLS name (``Metadata.tls_name``, else the address's
host), so a forged entry can point nowhere we would accept.
"""

from __future__ import annotations

import contextlib
import json
import ssl

import anyio
import anyio.abc

from jobs._etcd import Etcd, EtcdError, EventKind, KeyValue, parse_url

from ._errors import DiscoveryFailed
from ._inventory import Host, check_host_name, parse_address

__all__ = ["Discovery", "discover", "host_from_entry"]

_RETRY_FIRST = 0.5
_RETRY_MAX = 5.0


def host_from_entry(key: str, value: bytes, prefix: str, source: str = "") -> Host | None:
    """The host an etcd entry describes, or ``None`` when the entry is not one."""
    try:
        document = json.loads(value)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(document, dict) or not isinstance(document.get("Addr"), str):
        return None
    metadata = document.get("Metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    name = metadata.get("name") or key[len(prefix) :]
    labels = metadata.get("labels") or {}
    tls_name = metadata.get("tls_name") or None
    try:
        check_host_name(name)
        parse_address(document["Addr"])
    except (ValueError, TypeError):
        return None
    if not isinstance(labels, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
    ):
        labels = {}
    return Host(
        name=name,
        addr=document["Addr"],
        labels=labels,
        tls_name=tls_name if isinstance(tls_name, str) else None,
        source=source,
    )


def _client(url: str, tls: ssl.SSLContext | None) -> tuple[Etcd, str]:
    try:
        where = parse_url(url)
    except ValueError as exc:
        raise DiscoveryFailed(url, str(exc)) from None
    return Etcd(where.host, where.port, tls=tls), where.prefix


def _hosts(entries: list[KeyValue], prefix: str, url: str) -> dict[str, Host]:
    found: dict[str, Host] = {}
    for entry in entries:
        host = host_from_entry(entry.key, entry.value, prefix, url)
        if host is not None:
            found[entry.key] = host
    return found


async def discover(url: str, *, tls: ssl.SSLContext | None = None) -> list[Host]:
    """The hosts registered under ``url``'s prefix now (``DiscoveryFailed`` if etcd
    cannot be read)."""
    etcd, prefix = _client(url, tls)
    try:
        async with etcd:
            entries, _ = await etcd.range(prefix)
    except EtcdError as exc:
        raise DiscoveryFailed(url, str(exc)) from None
    return sorted(_hosts(entries, prefix, url).values(), key=lambda host: host.name)


class Discovery:
    """The hosts registered in etcd, kept current for the block's duration::

        async with Discovery("etcd://127.0.0.1:2379") as discovery:
            discovery.hosts()           # now
            await discovery.changed()   # returns when a host joined, left or changed

    Entering reads the range (``DiscoveryFailed`` when etcd cannot be read);
    then a watch from the next revision applies every put and delete. A watch
    that fails is re-established (range again, then watch) with a back-off;
    the hosts stay as last known meanwhile.
    """

    def __init__(self, url: str, *, tls: ssl.SSLContext | None = None) -> None:
        self.url = url
        self._etcd, self._prefix = _client(url, tls)
        self._entries: dict[str, Host] = {}
        self._changed = anyio.Event()
        self._stack = contextlib.AsyncExitStack()

    def __repr__(self) -> str:
        return f"<Discovery {self.url} hosts={len(self._entries)}>"

    def hosts(self) -> list[Host]:
        """The hosts registered now, by name."""
        return sorted(self._entries.values(), key=lambda host: host.name)

    async def changed(self) -> None:
        """Return at the next change to the registered hosts."""
        await self._changed.wait()

    async def __aenter__(self) -> Discovery:
        await self._stack.enter_async_context(self._etcd)
        try:
            revision = await self._read()
        except EtcdError as exc:
            await self._stack.aclose()
            raise DiscoveryFailed(self.url, str(exc)) from None
        tg = await self._stack.enter_async_context(anyio.create_task_group())
        self._stack.callback(tg.cancel_scope.cancel)
        await tg.start(self._watch, revision)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._stack.aclose()

    async def _read(self) -> int:
        entries, revision = await self._etcd.range(self._prefix)
        self._replace(_hosts(entries, self._prefix, self.url))
        return revision

    def _replace(self, entries: dict[str, Host]) -> None:
        if entries != self._entries:
            self._entries = entries
            self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def _watch(
        self, revision: int, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        delay = _RETRY_FIRST
        started = False
        while True:
            try:
                if started:
                    revision = await self._read()
                async with self._etcd.watch(self._prefix, start_revision=revision + 1) as events:
                    if not started:
                        started = True
                        task_status.started()
                    delay = _RETRY_FIRST
                    async for event in events:
                        self._apply(event.kind, event.key, event.value)
            except EtcdError:
                if not started:
                    started = True
                    task_status.started()
                await anyio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX)

    def _apply(self, kind: EventKind, key: str, value: bytes) -> None:
        entries = dict(self._entries)
        host = (
            host_from_entry(key, value, self._prefix, self.url) if kind is EventKind.PUT else None
        )
        if host is None:
            entries.pop(key, None)
        else:
            entries[key] = host
        self._replace(entries)

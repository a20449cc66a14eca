"""Every use of grpclib's private internals, in one place.

grpclib has no public way to read the peer's DER certificate, to check a message's
length prefix before its body is read, or to set the TLS handshake timeout.
``tests/test_grpclib_internals.py`` fails if the internals used here change.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Awaitable, Callable
from typing import Protocol

from grpclib.protocol import Peer
from grpclib.server import Server, Stream

from ._coalesce import coalescing

__all__ = [
    "decode",
    "drain",
    "peer_certificate",
    "read_body",
    "read_length_prefix",
    "start_server",
    "stop_listening",
]

_DRAIN_PIECE = 64 << 10


def peer_certificate(peer: Peer) -> bytes | None:
    """The peer's leaf certificate, DER-encoded, or None without TLS or a certificate."""
    ssl_object = peer._transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    der: bytes | None = ssl_object.getpeercert(binary_form=True)
    return der


async def read_length_prefix(stream: Stream[object, object]) -> int | None:
    """Read a message's 5-byte prefix; its length, or None at the end of the stream."""
    meta = await stream._stream.recv_data(5)
    if not meta:
        return None
    compressed, length = struct.unpack(">?I", meta)
    if compressed:
        raise ValueError("compressed messages are not supported")
    return int(length)


async def read_body(stream: Stream[object, object], length: int) -> bytes:
    """Read a message body of ``length`` bytes (after its prefix)."""
    return bytes(await stream._stream.recv_data(length))


async def drain(stream: Stream[object, object], length: int) -> None:
    """Read and discard ``length`` bytes in small pieces, so the flow-control window
    is returned without holding the body in memory."""
    while length > 0:
        try:
            piece = await stream._stream.recv_data(min(length, _DRAIN_PIECE))
        except AssertionError:  # the client ended the stream early
            return
        if not piece:
            return
        length -= len(piece)


Factory = Callable[[], asyncio.Protocol]


class Accepting(Protocol):
    """What accepts a server's connections in grpclib's place (see ``start_server``)."""

    def close(self) -> None: ...

    async def wait_closed(self) -> None: ...


async def start_server(server: Server, start: Callable[[Factory], Awaitable[Accepting]]) -> None:
    """``Server.start`` with connections accepted by ``start``: it is given grpclib's
    protocol factory (its writes coalesced per loop iteration, see
    ``jobs._coalesce``) and returns what grpclib then closes as its server."""
    if server._server is not None:
        raise RuntimeError("Server is already started")
    loop = asyncio.get_running_loop()
    server._server = await start(coalescing(server._protocol_factory))  # type: ignore[assignment]
    server._server_closed_fut = loop.create_future()


def decode(stream: Stream[object, object], body: bytes) -> object:
    """Decode a request body with the stream's codec and request type."""
    return stream._codec.decode(body, stream._recv_type)


def stop_listening(server: Server) -> None:
    """Refuse new connections; the open ones keep being served."""
    if server._server is not None:
        server._server.close()

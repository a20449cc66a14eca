"""Every use of grpclib's private internals, in one place.

grpclib has no public way to read the peer's DER certificate, to check a message's
length prefix before its body is read, to set the TLS handshake timeout, or to look
at a request's headers (and refuse it) before it is routed.
``tests/test_grpclib_internals.py`` fails if the internals used here change.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
from collections.abc import Callable, Sequence
from typing import Any

from grpclib.protocol import AbstractHandler, H2Protocol, Peer
from grpclib.protocol import Stream as H2Stream
from grpclib.server import Server, Stream
from h2.errors import ErrorCodes

from ._coalesce import coalescing
from ._trim import Reclaimer

__all__ = [
    "RequestCheck",
    "Truncated",
    "check_requests",
    "decode",
    "drain",
    "goaway",
    "max_inbound_frame_size",
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


class Truncated(ValueError):
    """The client ended its stream inside a message (its prefix or its body)."""

    def __init__(self) -> None:
        super().__init__("the request message is cut short")


async def _recv(stream: Stream[object, object], size: int) -> bytes:
    try:
        return await stream._stream.recv_data(size)
    except AssertionError:
        # grpclib's Buffer.read asserts when the stream ends before ``size`` bytes.
        raise Truncated from None


async def read_length_prefix(stream: Stream[object, object]) -> int | None:
    """Read a message's 5-byte prefix; its length, or None at the end of the stream.

    Raises ``ValueError`` for a compressed or truncated message.
    """
    meta = await _recv(stream, 5)
    if not meta:
        return None
    compressed, length = struct.unpack(">?I", meta)
    if compressed:
        raise ValueError("compressed messages are not supported")
    return int(length)


async def read_body(stream: Stream[object, object], length: int) -> bytes:
    """Read a message body of ``length`` bytes (after its prefix); ``Truncated`` when
    the stream ends before."""
    body = await _recv(stream, length)
    if len(body) != length:  # grpclib returns b"" when the stream ended before the body
        raise Truncated
    return bytes(body)


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


async def start_server(
    server: Server,
    sock: socket.socket,
    context: ssl.SSLContext,
    handshake_timeout: float,
    backlog: int,
) -> None:
    """``Server.start(sock=..., ssl=...)`` with a TLS handshake timeout, a listen
    backlog, our HTTP/2 checks (``_http2``), writes coalesced per loop iteration
    (``_coalesce``), and the memory of closed connections reclaimed (``_trim``)."""
    if server._server is not None:
        raise RuntimeError("Server is already started")
    loop = asyncio.get_running_loop()
    from ._http2 import guarding  # it uses this module's other functions

    reclaimer = Reclaimer(server.__gc_collect__)
    server._server = await loop.create_server(
        coalescing(guarding(server._protocol_factory, reclaimer.connection_closed)),
        sock=sock,
        backlog=backlog,
        ssl=context,
        ssl_handshake_timeout=handshake_timeout,
    )
    server._server_closed_fut = loop.create_future()


def decode(stream: Stream[object, object], body: bytes) -> object:
    """Decode a request body with the stream's codec and request type."""
    return stream._codec.decode(body, stream._recv_type)


def stop_listening(server: Server) -> None:
    """Refuse new connections; the open ones keep being served."""
    if server._server is not None:
        server._server.close()


RequestCheck = Callable[[Sequence[tuple[str, str]]], "ErrorCodes | list[tuple[str, str]] | None"]
"""Given a request's headers: None to route it, an error code to reset its stream
with, or the headers of a trailers-only response to answer it with."""


def check_requests(protocol: asyncio.Protocol, check: RequestCheck) -> None:
    """Have ``check`` look at every request of a (not yet connected) grpclib
    protocol before it is routed."""
    assert isinstance(protocol, H2Protocol)
    protocol.handler = _CheckingHandler(protocol.handler, check)


class _CheckingHandler(AbstractHandler):
    def __init__(self, handler: AbstractHandler, check: RequestCheck) -> None:
        self._handler = handler
        self._check = check

    def accept(self, stream: H2Stream, headers: Any, release_stream: Callable[[], None]) -> None:
        verdict = self._check(headers)
        if verdict is None:
            self._handler.accept(stream, headers, release_stream)
            return
        # No handler runs: the answer is queued in h2 here, and grpclib's protocol
        # sends it right after this event; the stream is released (its unread data
        # acknowledged) as a finished call's would be.
        assert stream.id is not None
        h2 = stream._h2_connection
        try:
            if isinstance(verdict, ErrorCodes):
                h2.reset_stream(stream.id, error_code=verdict)
            else:
                h2.send_headers(stream.id, verdict, end_stream=True)
                if stream.closable:
                    h2.reset_stream(stream.id, error_code=ErrorCodes.NO_ERROR)
        finally:
            release_stream()

    def cancel(self, stream: H2Stream) -> None:
        self._handler.cancel(stream)

    def close(self) -> None:
        self._handler.close()


def max_inbound_frame_size(protocol: asyncio.Protocol) -> int:
    """The SETTINGS_MAX_FRAME_SIZE a connected grpclib protocol advertised."""
    assert isinstance(protocol, H2Protocol)
    return int(protocol.connection._connection.max_inbound_frame_size)


def goaway(protocol: asyncio.Protocol, code: ErrorCodes) -> None:
    """Send GOAWAY with ``code`` on a connected grpclib protocol (its transport stays open)."""
    assert isinstance(protocol, H2Protocol)
    connection = protocol.connection
    if not hasattr(connection, "_transport"):
        return  # grpclib already closed it
    connection._connection.close_connection(error_code=code)
    connection.flush()

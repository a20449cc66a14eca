"""A hostile HTTP/2 peer for the tests: real TLS, frames written by h2 (its own checks
off, so it sends what it is told) or by hand, and what the server answered."""

from __future__ import annotations

import contextlib
import struct
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import anyio
import anyio.abc
import anyio.streams.tls
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    ResponseReceived,
    StreamEnded,
    StreamReset,
    TrailersReceived,
)
from harness import RunningServer

from jobs._tls import client_context

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
HEALTH = "/grpc.health.v1.Health/Check"
EMPTY_MESSAGE = b"\0\0\0\0\0"


def frame(kind: int, payload: bytes = b"", *, flags: int = 0, stream: int = 0) -> bytes:
    """One HTTP/2 frame, by hand."""
    return (
        struct.pack(">I", len(payload))[1:]
        + bytes([kind, flags])
        + struct.pack(">I", stream)
        + payload
    )


def frame_header(length: int, kind: int, *, flags: int = 0, stream: int = 0) -> bytes:
    """A frame header alone (its payload is never sent)."""
    return struct.pack(">I", length)[1:] + bytes([kind, flags]) + struct.pack(">I", stream)


def request_headers(path: str = HEALTH, **extra: str) -> list[tuple[str, str]]:
    """The headers of a well-formed gRPC request."""
    headers = [
        (":method", "POST"),
        (":scheme", "https"),
        (":path", path),
        (":authority", "localhost"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ]
    headers += [(k.replace("_", "-"), v) for k, v in extra.items()]
    return headers


@dataclass
class Outcome:
    """What the server did with one stream (or the whole connection)."""

    status: int | None = None
    """grpc-status, from the trailers or a trailers-only response."""
    message: str = ""
    http_status: str | None = None
    reset: ErrorCodes | int | None = None
    goaway: ErrorCodes | int | None = None
    closed: bool = False
    """The connection ended (EOF or a TLS close)."""
    data: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)


class RawPeer:
    """One TLS connection to the server, spoken to in raw HTTP/2."""

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self.stream = stream
        self.h2 = H2Connection(
            H2Configuration(
                client_side=True,
                header_encoding="utf-8",
                validate_outbound_headers=False,
                normalize_outbound_headers=False,
                validate_inbound_headers=False,
            )
        )
        self.outcomes: dict[int, Outcome] = {}
        self.connection = Outcome()

    async def start(self) -> None:
        """Send the preface and our SETTINGS."""
        self.h2.initiate_connection()
        await self.flush()

    async def flush(self) -> None:
        data = self.h2.data_to_send()
        if data:
            await self.stream.send(data)

    async def send_raw(self, data: bytes) -> None:
        await self.stream.send(data)

    async def request(
        self, headers: Sequence[tuple[str, str]], body: bytes | None = EMPTY_MESSAGE
    ) -> int:
        """Open a stream with ``headers`` (and ``body``, ending the stream); its id."""
        stream_id = self.h2.get_next_available_stream_id()
        self.h2.send_headers(stream_id, list(headers), end_stream=body is None)
        if body is not None:
            self.h2.send_data(stream_id, body, end_stream=True)
        await self.flush()
        return stream_id

    async def outcome(self, stream_id: int, timeout: float = 10.0) -> Outcome:
        """Read until ``stream_id`` is answered, reset or the connection ends."""
        outcome = self.outcomes.setdefault(stream_id, Outcome())
        with anyio.fail_after(timeout):
            while not self._done(outcome):
                await self._read()
        return outcome

    async def closed(self, timeout: float = 5.0) -> Outcome:
        """Read until the connection ends; what was said on it."""
        with anyio.fail_after(timeout):
            while not self.connection.closed:
                await self._read()
        return self.connection

    def _done(self, outcome: Outcome) -> bool:
        return (
            outcome.status is not None
            or outcome.reset is not None
            or self.connection.goaway is not None
            or self.connection.closed
        )

    async def _read(self) -> None:
        try:
            data = await self.stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
            self.connection.closed = True
            return
        for event in self.h2.receive_data(data):
            if isinstance(event, ResponseReceived | TrailersReceived):
                outcome = self.outcomes.setdefault(event.stream_id, Outcome())
                headers = [(str(k), str(v)) for k, v in event.headers or []]
                outcome.headers += headers
                for name, value in headers:
                    if name == "grpc-status":
                        outcome.status = int(value)
                    elif name == "grpc-message":
                        outcome.message = value
                    elif name == ":status":
                        outcome.http_status = value
            elif isinstance(event, DataReceived):
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                self.outcomes.setdefault(event.stream_id, Outcome()).data += event.data
            elif isinstance(event, StreamReset):
                self.outcomes.setdefault(event.stream_id, Outcome()).reset = event.error_code
            elif isinstance(event, ConnectionTerminated):
                self.connection.goaway = event.error_code
            elif isinstance(event, StreamEnded):
                pass
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            await self.flush()


@contextlib.asynccontextmanager
async def raw_peer(
    server: RunningServer, client: str = "alice", *, start: bool = True
) -> AsyncIterator[RawPeer]:
    """A TLS connection to ``server`` as ``client``, the HTTP/2 preface sent (``start``)."""
    files = server.pki.clients[client]
    context = client_context(server.pki.ca, files.cert, files.key)
    stream = await anyio.connect_tcp(
        server.host, server.port, ssl_context=context, tls_hostname="localhost"
    )
    async with stream:
        peer = RawPeer(stream)
        if start:
            await peer.start()
        yield peer

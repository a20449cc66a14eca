"""Coalesced writes: one TLS record and one send per event-loop iteration.

grpclib writes each HTTP/2 frame batch to the transport as soon as h2 makes it: a
unary call's headers, message and trailers are three writes, and over TLS each
write is encrypted as its own record and sent with its own system call. That was
a fifth of the server's time per status call. ``coalescing`` wraps a protocol
factory so that the small writes of one loop iteration, across all the calls of
a connection, reach the real transport as one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

__all__ = ["FLUSH_AT", "coalescing"]

FLUSH_AT = 64 << 10
"""Bytes pending at which they are written at once, without waiting for the
iteration to end."""


def coalescing(factory: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
    """A protocol factory whose protocols see a transport that coalesces their writes."""

    def make() -> asyncio.Protocol:
        return _Protocol(factory())

    return make


class _Transport(asyncio.Transport):
    def __init__(self, transport: asyncio.Transport) -> None:
        super().__init__()
        self._transport = transport
        self._pending: list[bytes] = []
        self._size = 0
        self._loop = asyncio.get_running_loop()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if not self._pending:
            self._loop.call_soon(self._flush)
        chunk = bytes(data)
        self._pending.append(chunk)
        self._size += len(chunk)
        if self._size >= FLUSH_AT:
            # Bulk data goes out at once, so that the transport's buffer limits
            # pause the writers (grpclib's streams) as they would without us.
            self._flush()

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def _flush(self) -> None:
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending.clear()
        self._size = 0
        if not self._transport.is_closing():
            self._transport.write(data)

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending.clear()
        self._size = 0
        self._transport.abort()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + self._size

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()


class _Protocol(asyncio.Protocol):
    def __init__(self, protocol: asyncio.Protocol) -> None:
        self._protocol = protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TLS transport has Transport's methods but not its class.
        self._protocol.connection_made(_Transport(cast(asyncio.Transport, transport)))

    def data_received(self, data: bytes) -> None:
        self._protocol.data_received(data)

    def eof_received(self) -> bool | None:
        return self._protocol.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._protocol.connection_lost(exc)

    def pause_writing(self) -> None:
        self._protocol.pause_writing()

    def resume_writing(self) -> None:
        self._protocol.resume_writing()

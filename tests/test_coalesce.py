"""Coalesced writes, over a real TCP connection on loopback."""

from __future__ import annotations

import asyncio
import socket

from jobs.server._coalesce import FLUSH_AT, coalescing


class _Recorder(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.set_result(exc)


async def _pair() -> tuple[_Recorder, socket.socket]:
    ours, theirs = socket.socketpair()
    loop = asyncio.get_running_loop()
    recorder = _Recorder()
    await loop.connect_accepted_socket(coalescing(lambda: recorder), ours)
    theirs.setblocking(False)
    return recorder, theirs


async def _read_all(sock: socket.socket) -> bytes:
    loop = asyncio.get_running_loop()
    data = bytearray()
    while chunk := await loop.sock_recv(sock, 65536):
        data += chunk
    return bytes(data)


async def test_writes_of_one_iteration_go_out_together_and_in_order() -> None:
    recorder, peer = await _pair()
    transport = recorder.transport
    assert transport is not None
    for n in range(100):
        transport.write(b"%d," % n)
    transport.write(b"")
    transport.writelines([b"a", bytearray(b"b"), memoryview(b"c")])
    # Nothing has reached the socket yet: the writes wait for the end of the iteration.
    assert transport.get_write_buffer_size() == len(b",".join(b"%d" % n for n in range(100))) + 4
    await asyncio.sleep(0)
    assert transport.get_write_buffer_size() == 0
    transport.write(b"last")
    transport.close()  # flushes what is pending before closing
    await recorder.lost
    expected = b"".join(b"%d," % n for n in range(100)) + b"abclast"
    assert await _read_all(peer) == expected
    peer.close()


async def test_bulk_writes_go_out_at_once() -> None:
    recorder, peer = await _pair()
    transport = recorder.transport
    assert transport is not None
    transport.set_write_buffer_limits(high=4 * FLUSH_AT)
    transport.write(b"x" * (FLUSH_AT // 2))
    assert transport.get_write_buffer_size() == FLUSH_AT // 2
    transport.write(b"y" * (FLUSH_AT // 2))
    # Written through (up to what the socket buffer took): none of it waits for the loop.
    assert transport.get_write_buffer_size() < FLUSH_AT
    transport.close()
    await recorder.lost
    assert await _read_all(peer) == b"x" * (FLUSH_AT // 2) + b"y" * (FLUSH_AT // 2)
    peer.close()


async def test_abort_drops_what_is_pending() -> None:
    recorder, peer = await _pair()
    transport = recorder.transport
    assert transport is not None
    transport.write(b"sent")
    await asyncio.sleep(0)
    transport.write(b"dropped")
    transport.abort()
    await recorder.lost
    assert await _read_all(peer) == b"sent"
    peer.close()


async def test_the_wrapped_protocol_sees_the_real_transports_facts() -> None:
    recorder, peer = await _pair()
    transport = recorder.transport
    assert transport is not None
    assert transport.get_extra_info("socket") is not None
    assert transport.get_extra_info("missing", "default") == "default"
    assert not transport.is_closing()
    transport.close()
    assert transport.is_closing()
    await recorder.lost
    peer.close()

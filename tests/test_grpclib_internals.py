"""A canary for the grpclib internals jobs._grpclib relies on (grpclib has no public API
for them): if grpclib renames them, this fails with a clear message."""

from __future__ import annotations

import inspect

from grpclib import protocol
from grpclib.protocol import Peer
from grpclib.server import Server, Stream


def _source(obj: object) -> str:
    return inspect.getsource(obj)  # type: ignore[arg-type]


def test_stream_internals() -> None:
    init = _source(Stream.__init__)
    for attribute in ("self._stream = stream", "self._codec = codec", "self._recv_type"):
        assert attribute in init, f"grpclib.server.Stream no longer sets {attribute}"
    assert callable(protocol.Stream.recv_data), "grpclib.protocol.Stream.recv_data is gone"
    assert "self._stream" in _source(Stream.recv_message)


def test_peer_internals() -> None:
    assert "self._transport = transport" in _source(Peer.__init__)


async def test_server_internals() -> None:
    server = Server([])
    assert server._server is None
    assert callable(server._protocol_factory)
    assert "self._server_closed_fut" in _source(Server.start)

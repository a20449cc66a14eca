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


def test_protocol_internals() -> None:
    """jobs.server._grpclib.check_requests, goaway and max_inbound_frame_size."""
    init = _source(protocol.H2Protocol.__init__)
    assert "self.handler = handler" in init, "H2Protocol no longer keeps its handler"
    made = _source(protocol.H2Protocol.connection_made)
    assert "EventsProcessor(self.handler" in made, "the processor no longer uses .handler"
    assert "self.connection = Connection(" in made
    assert "self._connection = connection" in _source(protocol.Connection.__init__)
    assert "self._h2_connection = h2_connection" in _source(protocol.Stream.__init__)
    accept = inspect.signature(protocol.AbstractHandler.accept)
    assert list(accept.parameters) == ["self", "stream", "headers", "release_stream"]
    assert "self.handler.accept(" in _source(protocol.EventsProcessor.process_request_received)


def test_buffer_ends_as_expected() -> None:
    """jobs.server._grpclib.read_body: a short read asserts, an ended one returns b''."""
    read = _source(protocol.Buffer.read)
    assert "raise AssertionError" in read
    assert "return b''" in read


async def test_h2_frame_size() -> None:
    """jobs.server._http2 reads the advertised SETTINGS_MAX_FRAME_SIZE from h2."""
    from h2.config import H2Configuration
    from h2.connection import H2Connection

    connection = H2Connection(H2Configuration(client_side=False))
    assert connection.max_inbound_frame_size == 16384


async def test_handler_collection() -> None:
    """jobs.server._trim's Reclaimer forgets closed connections with Server.__gc_collect__."""
    server = Server([])
    assert "self._handlers" in _source(Server.__gc_collect__)
    assert "h.closing and h.check_closed()" in _source(Server.__gc_collect__)
    server.__gc_collect__()

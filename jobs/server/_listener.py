"""Accepting connections: the per-address cap, the TLS handshake, and live identities.

The server accepts on its socket itself and starts TLS on each connection
(``loop.connect_accepted_socket``) rather than through ``create_server(ssl=...)``,
for three reasons: a failed handshake is seen here, with the peer's address and the
reason, for the audit log (asyncio and uvloop only log it in debug mode); the
TLS context can be replaced (``reload``) so that new connections use new
material while established ones keep theirs; and every established connection
is known with its client certificate, so that a reload can close those of an
identity it revoked. Only after the handshake is grpclib's protocol made.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Callable
from typing import Any

from cryptography import x509

from ._audit import AuditLog
from ._limits import Connections

__all__ = ["Listener"]

log = logging.getLogger(__name__)


class Listener:
    """Accepts connections on a listening socket and hands them, once their TLS
    handshake is done, to the protocols ``app`` makes (see ``start``)."""

    def __init__(
        self,
        context: ssl.SSLContext,
        *,
        handshake_timeout: float,
        connections: Connections,
        audit: AuditLog | None,
    ) -> None:
        self.context = context
        """The context of new handshakes; replaced on reload."""
        self._app: Callable[[], asyncio.Protocol] | None = None
        self._handshake_timeout = handshake_timeout
        self._connections = connections
        self._audit = audit
        self._handshakes: set[asyncio.Task[None]] = set()
        self._live: set[_Connection] = set()
        self._accepting: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<Listener live={len(self._live)} handshaking={len(self._handshakes)}>"

    async def start(self, sock: socket.socket, app: Callable[[], asyncio.Protocol]) -> Listener:
        """Accept on ``sock`` (listening, non-blocking) from now on; itself, which
        grpclib holds as its server (``close``, ``wait_closed``)."""
        self._app = app
        self._accepting = asyncio.get_running_loop().create_task(self._accept(sock))
        # Closed only once the accepting task is done: the loop stops watching the
        # socket as that task is cancelled, and must not find its fd closed first.
        self._accepting.add_done_callback(lambda _: sock.close())
        return self

    def close_revoked(self, crl: x509.CertificateRevocationList) -> int:
        """Close every connection whose client certificate ``crl`` revokes; how many."""
        closed = 0
        for connection in list(self._live):
            cert = connection.certificate
            if (
                cert is not None
                and cert.issuer == crl.issuer
                and crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None
            ):
                connection.abort()
                closed += 1
        return closed

    def close(self) -> None:
        """Stop accepting and abandon the handshakes in progress (established
        connections are grpclib's to close)."""
        if self._accepting is not None:
            self._accepting.cancel()
        for task in self._handshakes:
            task.cancel()

    async def wait_closed(self) -> None:
        """Wait until the accepting task has ended (after ``close``)."""
        if self._accepting is not None:
            await asyncio.wait([self._accepting])

    async def _accept(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, addr = await loop.sock_accept(sock)
            except OSError as exc:  # out of file descriptors, say: it passes
                log.warning("cannot accept a connection: %s", exc)
                await asyncio.sleep(0.1)
                continue
            host = str(addr[0])
            if not self._connections.acquire(host):
                conn.close()
                continue
            task = loop.create_task(self._handshake(conn, _address(addr), host))
            self._handshakes.add(task)
            task.add_done_callback(self._handshakes.discard)

    async def _handshake(self, conn: socket.socket, peer: str | None, host: str) -> None:
        connection = _Connection(self, host)
        try:
            await asyncio.get_running_loop().connect_accepted_socket(
                lambda: connection,
                conn,
                ssl=self.context,
                ssl_handshake_timeout=self._handshake_timeout,
                # A peer gets as long to close TLS as it had to open it; asyncio's
                # default waits 30 s for a close_notify that a dead or hostile peer
                # never sends, and the connection holds its address's slot meanwhile.
                ssl_shutdown_timeout=self._handshake_timeout,
            )
        except asyncio.CancelledError:
            # The transport that owns the socket closes it.
            self._connections.release(host)
            raise
        except Exception as exc:  # every way a handshake fails: bad certificate, timeout, reset
            self._connections.release(host)
            reason = _reason(exc)
            log.info("TLS handshake with %s failed: %s", peer, reason)
            if self._audit is not None:
                self._audit.handshake_failed(peer, reason)


class _Connection(asyncio.Protocol):
    """A TLS connection: made before its handshake, it makes grpclib's protocol once
    the handshake is done, forwards to it, and is counted until it closes."""

    def __init__(self, listener: Listener, host: str) -> None:
        self._listener = listener
        self._host = host
        self._app: asyncio.Protocol | None = None
        self._transport: asyncio.BaseTransport | None = None
        self.certificate: x509.Certificate | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        listener = self._listener
        assert listener._app is not None
        self._transport = transport
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if der:
            try:
                self.certificate = x509.load_der_x509_certificate(der)
            except ValueError:
                self.certificate = None
        listener._live.add(self)
        self._app = listener._app()
        self._app.connection_made(transport)

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        assert self._app is not None
        self._app.data_received(data)

    def eof_received(self) -> bool | None:
        return self._app.eof_received() if self._app is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        self._listener._live.discard(self)
        self._listener._connections.release(self._host)
        if self._app is not None:
            self._app.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._app is not None:
            self._app.pause_writing()

    def resume_writing(self) -> None:
        if self._app is not None:
            self._app.resume_writing()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return f"{exc.reason}: {exc.verify_message}"  # e.g. "certificate revoked"
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    return str(exc) or type(exc).__name__


def _address(addr: Any) -> str | None:
    if not isinstance(addr, tuple) or len(addr) < 2:
        return None
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

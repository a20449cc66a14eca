"""The plaintext health port: ``grpc.health.v1`` alone, for probes that cannot
present a client certificate (systemd, Nomad, Kubernetes).

It shares the ``Health`` service, and so its status, with the TLS port: SERVING
once the server listens, NOT_SERVING from the moment it begins to shut down.
Plaintext is only safe on a loopback address, so any other is refused unless
forced.
"""

from __future__ import annotations

import ipaddress
import logging
import socket

from grpclib.health.service import Health
from grpclib.server import Server

from ..errors import InvalidArgument

__all__ = ["check_health_address", "start_health_server"]

log = logging.getLogger(__name__)


def check_health_address(host: str, *, force: bool = False) -> None:
    """``InvalidArgument`` unless ``host`` is a loopback address (or ``force``)."""
    if force:
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise InvalidArgument(
            f"the plaintext health port must listen on a loopback address, not {host!r} "
            "(force it to expose health checks without TLS)"
        )


async def start_health_server(health: Health, sock: socket.socket) -> Server:
    """Serve ``health`` in plaintext on the bound, listening ``sock``; the server,
    to close when done."""
    server = Server([health])
    await server.start(sock=sock)
    host, port = sock.getsockname()[:2]
    log.info("health checks (plaintext, grpc.health.v1) on %s:%d", host, port)
    return server

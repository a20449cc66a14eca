"""The server: the job service, health and reflection on grpclib, behind mutual TLS."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import anyio.abc
from grpclib.config import Configuration
from grpclib.health.check import ServiceStatus
from grpclib.health.service import Health
from grpclib.reflection.service import ServerReflection
from grpclib.server import Server

from pki import DEFAULT_ROLE_OID, Role

from .. import JobManager, ManagerSettings
from .._tls import server_context
from . import _grpclib
from ._guard import Guard, Policy
from ._health import check_health_address, start_health_server
from ._identity import ServerIdentity, check_identity, host_name
from ._notify import notify
from ._register import Registration, keep_registered
from ._service import JobService
from ._wire import Codec

__all__ = ["DEFAULT_ADDRESS", "ServerConfig", "Serving", "serve"]

log = logging.getLogger(__name__)

DEFAULT_ADDRESS = ("127.0.0.1", 50051)
MAX_RUN_REQUEST = 1 << 20
MAX_REQUEST = 64 << 10
HANDSHAKE_TIMEOUT = 10.0
LISTEN_BACKLOG = 1024
"""Connections the kernel queues before the server accepts them. The event loop
listens again with its own backlog (asyncio's default, 100, left bursts of new
clients retrying their SYNs for seconds), so it is given this one too."""
KEEPALIVE_TIME = 30.0
"""Seconds of silence before the server pings a client; with the timeout below a
dead peer is found within 50 s."""
KEEPALIVE_TIMEOUT = 20.0
CLOSE_TIMEOUT = 5.0
"""grpclib's own close can hang on a stuck connection: bounded."""

_SERVICE = "/jobs.v1.JobService/"
_ROLES = {
    "Run": Role.FULL,
    "Stop": Role.FULL,
    "Status": Role.READONLY,
    "List": Role.READONLY,
    "Logs": Role.READONLY,
    "Wait": Role.READONLY,
    "Info": Role.READONLY,
}


@dataclass
class ServerConfig:
    """Everything ``serve`` needs; the defaults are the production defaults."""

    cert: Path
    key: Path
    ca: Path
    state_dir: Path
    host: str = DEFAULT_ADDRESS[0]
    port: int = DEFAULT_ADDRESS[1]
    role_oid: str = DEFAULT_ROLE_OID
    manager: ManagerSettings = field(default_factory=ManagerSettings)
    """Caps, grace and history of the job manager."""
    max_run_request: int = MAX_RUN_REQUEST
    max_request: int = MAX_REQUEST
    handshake_timeout: float = HANDSHAKE_TIMEOUT
    keepalive_time: float = KEEPALIVE_TIME
    keepalive_timeout: float = KEEPALIVE_TIMEOUT
    name: str = field(default_factory=host_name)
    """The server's name in Info, in etcd and in a fleet's ``HOST/ID`` job ids."""
    labels: Mapping[str, str] = field(default_factory=dict)
    """The operator's labels; the built-in ``jobs.io/`` ones are added."""
    advertise: str | None = None
    """``host:port`` clients reach this server at, as registered (default: the
    listening address, with the server's name for a wildcard host)."""
    register: Registration | None = None
    """Keep this server registered in etcd."""
    health_listen: tuple[str, int] | None = None
    """Also answer plaintext ``grpc.health.v1`` here (a loopback address)."""
    health_force: bool = False
    """Allow a non-loopback ``health_listen``."""


@dataclass(frozen=True, slots=True)
class Serving:
    """What ``serve`` reports once it listens: the address it bound, its manager,
    its identity and the plaintext health port (0: none)."""

    host: str
    port: int
    manager: JobManager
    identity: ServerIdentity
    health_port: int = 0


def policies(config: ServerConfig) -> tuple[dict[str, Policy], Policy]:
    """Per-method policies, and the default for every other method.

    Health answers any client that passed the TLS handshake (probes carry a CA
    certificate but need no role); reflection, like every other call, needs a
    certificate with a role.
    """
    table = {
        _SERVICE + name: Policy(
            role, config.max_run_request if name == "Run" else config.max_request
        )
        for name, role in _ROLES.items()
    }
    health = Policy(None, config.max_request)
    table["/grpc.health.v1.Health/Check"] = health
    table["/grpc.health.v1.Health/Watch"] = health
    return table, Policy(Role.READONLY, config.max_request)


async def serve(
    config: ServerConfig,
    *,
    setup: Callable[[Server], None] | None = None,
    task_status: anyio.abc.TaskStatus[Serving] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until cancelled; report a ``Serving`` (the address actually bound, the
    job manager) through ``task_status`` once listening.

    ``setup`` is called with the grpclib server before it starts, to add event
    listeners (metrics, tests). Leaving stops the listener, then every running job
    (see ``JobManager``).
    """
    context = server_context(config.cert, config.key, config.ca)
    check_identity(config.name, config.labels)  # before the manager touches anything
    if config.health_listen is not None:
        check_health_address(config.health_listen[0], force=config.health_force)
    sock = _bind(config.host, config.port)
    health_sock = None
    if config.health_listen is not None:
        try:
            health_sock = _bind(*config.health_listen)
        except OSError as exc:
            sock.close()
            host, port = config.health_listen
            raise OSError(exc.errno, f"health port {host}:{port}: {exc.strerror}") from None
    async with JobManager(config.state_dir, config.manager) as manager:
        assert manager.containment is not None  # chosen on entering the manager
        identity = ServerIdentity.build(
            config.name, config.labels, config.cert, manager.containment
        )
        jobs = JobService(manager, identity)
        # SERVING once listening, NOT_SERVING from the start of the shutdown: on
        # both the TLS port and the plaintext health port.
        serving = ServiceStatus()
        health = Health({jobs: [serving]})
        guard = Guard(*policies(config), config.role_oid)
        # Built here, inside the running loop: grpclib binds to the loop it is created in.
        server = Server(
            [guard.guard(s) for s in ServerReflection.extend([jobs, health])],
            codec=Codec(),
            config=Configuration(
                _keepalive_time=config.keepalive_time,
                _keepalive_timeout=config.keepalive_timeout,
                _keepalive_permit_without_calls=True,
                _http2_max_pings_without_data=0,
            ),
        )
        if setup is not None:
            setup(server)
        health_server = None
        if health_sock is not None:
            health_server = await start_health_server(health, health_sock)
        await _grpclib.start_server(server, sock, context, config.handshake_timeout, LISTEN_BACKLOG)
        host, port = sock.getsockname()[:2]
        log.info(
            "listening on %s:%d as %s (state in %s)", host, port, identity.name, config.state_dir
        )
        serving.set(True)
        try:
            async with anyio.create_task_group() as background:
                if config.register is not None:
                    addr = config.advertise or _advertised(host, port, identity.name)
                    background.start_soon(keep_registered, config.register, identity, addr)
                notify("READY=1", f"STATUS=serving on {host}:{port}")
                health_port = health_sock.getsockname()[1] if health_sock is not None else 0
                task_status.started(Serving(host, port, manager, identity, health_port))
                try:
                    await anyio.sleep_forever()
                finally:
                    # First tell the world: the service manager, health probes and
                    # etcd (the registration revokes its lease as it is cancelled).
                    notify("STOPPING=1", "STATUS=stopping every running job")
                    serving.set(False)
                    background.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                # New connections are refused and new jobs too; running jobs are
                # stopped with their grace, so every follower and waiter gets the
                # end of its job and a status. Only then are connections closed.
                _grpclib.stop_listening(server)
                log.info("shutting down: stopping every running job")
                await manager.shutdown()
                server.close()
                with anyio.move_on_after(CLOSE_TIMEOUT):
                    await server.wait_closed()
                if health_server is not None:
                    health_server.close()
                    with anyio.move_on_after(CLOSE_TIMEOUT):
                        await health_server.wait_closed()


def _advertised(host: str, port: int, name: str) -> str:
    """``host:port`` to register: a wildcard listening address is reached by name."""
    if host in ("0.0.0.0", "::", ""):
        host = name
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket; bound here so that port 0 reports the port it got."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(LISTEN_BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock

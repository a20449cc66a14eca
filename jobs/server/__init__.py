"""The gRPC adapter of the job core: ``serve`` and its ``ServerConfig``.

Inside: ``_serve`` (the server and its lifetime), ``_service`` (the servicer:
translation between messages and the core only), ``_wire`` (every byte-level
encoding), ``_guard`` (size caps, authentication, authorization and the one
error table), ``_auth`` (the principal from the client certificate),
``_grpclib`` (every use of grpclib's internals), ``_coalesce`` (one TLS
record per event-loop iteration), ``_identity`` (name, labels, capabilities),
``_register`` (the etcd registration), ``_health`` (the plaintext health port)
and ``_notify`` (systemd's readiness protocol).
"""

from .._etcd import EtcdUrl as EtcdUrl
from ._health import check_health_address as check_health_address
from ._identity import BUILTIN_PREFIX as BUILTIN_PREFIX
from ._identity import Capabilities as Capabilities
from ._identity import ServerIdentity as ServerIdentity
from ._identity import check_name as check_name
from ._identity import host_name as host_name
from ._register import DEFAULT_TTL as DEFAULT_REGISTER_TTL
from ._register import Registration as Registration
from ._serve import DEFAULT_ADDRESS as DEFAULT_ADDRESS
from ._serve import ServerConfig as ServerConfig
from ._serve import Serving as Serving
from ._serve import serve as serve

__all__ = [
    "BUILTIN_PREFIX",
    "DEFAULT_ADDRESS",
    "DEFAULT_REGISTER_TTL",
    "Capabilities",
    "EtcdUrl",
    "Registration",
    "ServerConfig",
    "ServerIdentity",
    "Serving",
    "check_health_address",
    "check_name",
    "host_name",
    "serve",
]

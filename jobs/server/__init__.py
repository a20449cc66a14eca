"""The gRPC adapter of the job core: ``serve`` and its ``ServerConfig``.

Inside: ``_serve`` (the server and its lifetime), ``_service`` (the servicer:
translation between messages and the core only), ``_wire`` (every byte-level
encoding), ``_guard`` (size caps, authentication, authorization and the one
error table), ``_auth`` (the principal from the client certificate),
``_grpclib`` (every use of grpclib's internals) and ``_coalesce`` (one TLS
record per event-loop iteration).
"""

from ._serve import DEFAULT_ADDRESS as DEFAULT_ADDRESS
from ._serve import ServerConfig as ServerConfig
from ._serve import Serving as Serving
from ._serve import serve as serve

__all__ = ["DEFAULT_ADDRESS", "ServerConfig", "Serving", "serve"]

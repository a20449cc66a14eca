"""Certificate authority tooling for jobs: a CA, server and client certificates.

Keys are ECDSA P-256. A client certificate names its account in the subject CN
and its role in a non-critical extension (``ROLE_OID`` by default) whose value is
a DER UTF8String, ``readonly`` or ``full``, defined once in ``_role`` and read by
the server from there. This package depends on ``cryptography`` only.
"""

from ._ca import CLIENT_DAYS as CLIENT_DAYS
from ._ca import SERVER_DAYS as SERVER_DAYS
from ._ca import Identity as Identity
from ._ca import create_ca as create_ca
from ._ca import issue_client as issue_client
from ._ca import issue_server as issue_server
from ._ca import load_identity as load_identity
from ._ca import role_extension as role_extension
from ._ca import write_identity as write_identity
from ._home import ensure_development_pki as ensure_development_pki
from ._home import init_authority as init_authority
from ._home import load_authority as load_authority
from ._role import DEFAULT_ROLE_OID as DEFAULT_ROLE_OID
from ._role import ROLES as ROLES
from ._role import Role as Role
from ._role import decode_role as decode_role
from ._role import encode_role as encode_role

__all__ = [
    "CLIENT_DAYS",
    "DEFAULT_ROLE_OID",
    "ROLES",
    "SERVER_DAYS",
    "Identity",
    "Role",
    "create_ca",
    "decode_role",
    "encode_role",
    "ensure_development_pki",
    "init_authority",
    "issue_client",
    "issue_server",
    "load_authority",
    "load_identity",
    "role_extension",
    "write_identity",
]

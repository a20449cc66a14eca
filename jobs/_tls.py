"""TLS contexts: 1.3 only, ALPN h2, certificates required and verified on both sides.

OpenSSL checks the peer's extended key usage by role: the server accepts only
client certificates that allow clientAuth, the client only server certificates
that allow serverAuth, so each side rejects the other kind at the handshake.
"""

from __future__ import annotations

import ssl
from pathlib import Path

__all__ = ["client_context", "server_context"]


def server_context(cert: Path, key: Path, ca: Path, crl: Path | None = None) -> ssl.SSLContext:
    """A server context that requires a client certificate issued by ``ca`` (and not
    revoked by ``crl``, a PEM CRL of that CA, when given).

    A file that cannot be read raises ``OSError`` naming it (OpenSSL's own error
    does not say which); one that is not what it should be, ``ssl.SSLError``.
    """
    for path in (cert, key, ca, crl):
        if path is not None:
            with open(path, "rb"):
                pass
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _harden(context)
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_cert_chain(cert, key)
    context.load_verify_locations(cafile=ca)
    if crl is not None:
        context.load_verify_locations(cafile=crl)
        context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    return context


def client_context(ca: Path, cert: Path, key: Path) -> ssl.SSLContext:
    """A client context that presents ``cert`` and verifies the server's name against ``ca``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the hostname
    _harden(context)
    context.load_verify_locations(cafile=ca)
    context.load_cert_chain(cert, key)
    return context


def _harden(context: ssl.SSLContext) -> None:
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.set_alpn_protocols(["h2"])

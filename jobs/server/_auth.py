"""Who is calling and what they may do: the principal from the client certificate."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pki import DEFAULT_ROLE_OID, Role, decode_role

__all__ = ["Principal", "Unauthenticated", "principal_from_der"]


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller: its account (the certificate's subject CN) and its role, if any."""

    account: str
    role: Role | None


class Unauthenticated(Exception):
    """The certificate verified, but breaks our rules for a client identity."""


@functools.lru_cache(maxsize=1024)
def principal_from_der(der: bytes, role_oid: str = DEFAULT_ROLE_OID) -> Principal:
    """Read the principal from a DER client certificate already verified by TLS.

    Raises ``Unauthenticated`` when the certificate lacks the clientAuth usage or
    does not name exactly one CN. A missing, malformed or unknown role is not an
    error: the principal just has no role.
    """
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        raise Unauthenticated("the client certificate cannot be parsed") from None
    try:
        extensions = cert.extensions
    except (x509.DuplicateExtension, ValueError) as exc:
        raise Unauthenticated(f"the client certificate's extensions are malformed: {exc}") from None
    try:
        usages = extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        raise Unauthenticated("the client certificate has no extended key usage") from None
    if ExtendedKeyUsageOID.CLIENT_AUTH not in usages:
        raise Unauthenticated("the client certificate does not allow clientAuth")
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(names) != 1 or not isinstance(names[0].value, str) or not names[0].value:
        raise Unauthenticated("the client certificate must name exactly one CN")
    return Principal(names[0].value, _role(extensions, role_oid))


def _role(extensions: x509.Extensions, oid: str) -> Role | None:
    try:
        extension = extensions.get_extension_for_oid(x509.ObjectIdentifier(oid))
    except x509.ExtensionNotFound:
        return None
    value = extension.value
    if not isinstance(value, x509.UnrecognizedExtension):
        return None
    return decode_role(value.value)
